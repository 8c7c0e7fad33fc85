//! Ops that transform inputs: file actions, exec, merge, diff.

pub(crate) mod diff;
pub(crate) mod exec;
pub(crate) mod file;
mod owner;
pub(crate) mod session;

use kiln_llb::pb;

use crate::Ref;

/// Merge: the inputs' layers stacked in order (a layer already present stays where it
/// first appeared).
pub(crate) fn merge(merge: &pb::MergeOp, inputs: &[Ref]) -> Ref {
    let mut chain: Vec<u64> = Vec::new();
    for input in &merge.inputs {
        if let Some(r) = usize::try_from(input.input)
            .ok()
            .and_then(|i| inputs.get(i))
        {
            for id in &r.chain {
                if !chain.contains(id) {
                    chain.push(*id);
                }
            }
        }
    }
    Ref::unkeyed(chain)
}
