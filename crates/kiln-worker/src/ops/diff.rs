//! Diff: the changes that turn `lower` into `upper`, as layers a merge can stack on
//! anything. When lower's layers are the bottom of upper's (a state and a later state
//! of it, the usual case), the diff is upper's remaining layers, reused as they are, as
//! BuildKit does. Otherwise the two trees are compared and the changes written to a
//! new layer: what upper adds or changes, and a whiteout for each path it lacks.

use kiln_llb::pb;
use kiln_store::tree::{Hardlinks, write_diff};

use crate::{Error, Ref, Worker};

/// Runs a diff op.
pub(crate) fn run(worker: &Worker, diff: &pb::DiffOp, inputs: &[Ref]) -> Result<Ref, Error> {
    let input = |index: Option<i64>| -> Result<Ref, Error> {
        match index {
            None | Some(-1) => Ok(Ref::default()),
            Some(i) => usize::try_from(i)
                .ok()
                .and_then(|i| inputs.get(i))
                .cloned()
                .ok_or_else(|| Error::Unsupported(format!("diff input {i} does not exist"))),
        }
    };
    let lower = input(diff.lower.map(|l| l.input))?;
    let upper = input(diff.upper.map(|u| u.input))?;
    if upper.chain.starts_with(&lower.chain) {
        return Ok(Ref::unkeyed(upper.chain[lower.chain.len()..].to_vec()));
    }
    let lower_mount = lower
        .snapshot()
        .map(|s| worker.snapshots.mount_readonly(&s))
        .transpose()?;
    let upper_mount = upper
        .snapshot()
        .map(|s| worker.snapshots.mount_readonly(&s))
        .transpose()?;
    let layer = worker.snapshots.create_on(&[])?;
    // It holds the changes from lower (whiteouts included): exported as a diff from it.
    worker.snapshots.set_parents(layer.id(), &lower.chain)?;
    let written = write_diff(
        lower_mount.as_ref().map(|m| m.path()),
        upper_mount.as_ref().map(|m| m.path()),
        &worker.snapshots.layer_dir(layer.id()),
        &mut Hardlinks::new(),
    );
    if let Err(e) = written {
        let _ = worker.snapshots.remove_layer(layer.id());
        return Err(e.into());
    }
    Ok(Ref::unkeyed(layer.chain))
}
