//! Vertex names as BuildKit's solver gives them (`llbOpName`), shown in progress and
//! errors: the op's custom name (`llb.customname`), else one made of the op: a source's
//! identifier, an exec's arguments, a file op's actions, a merge or diff of its inputs'
//! names.

use std::collections::HashMap;

use kiln_llb::{Vertex, pb};

/// The names of `ops` (inputs before their users), by index; `position` finds an op by
/// digest.
pub(crate) fn vertex_names(ops: &[&Vertex], position: &HashMap<String, usize>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(ops.len());
    for vertex in ops {
        let custom = vertex
            .metadata
            .as_ref()
            .and_then(|m| m.description.get("llb.customname"))
            .cloned();
        let name = custom.unwrap_or_else(|| {
            // An input named before this op; one that is not (never in a loaded
            // definition) by its digest.
            let input = |i: usize| -> String {
                let digest = vertex.op.inputs.get(i).map_or("", |input| &input.digest);
                position
                    .get(digest)
                    .and_then(|&at| names.get(at))
                    .cloned()
                    .unwrap_or_else(|| digest.to_owned())
            };
            op_name(&vertex.op, &input)
        });
        names.push(name);
    }
    names
}

fn op_name(op: &pb::Op, input: &dyn Fn(usize) -> String) -> String {
    use pb::file_action::Action;
    use pb::op::Op;
    match &op.op {
        Some(Op::Source(source)) => source.identifier.clone(),
        Some(Op::Exec(exec)) => exec
            .meta
            .as_ref()
            .map(|meta| meta.args.join(" "))
            .unwrap_or_default(),
        Some(Op::File(file)) => file
            .actions
            .iter()
            .filter_map(|action| {
                Some(match action.action.as_ref()? {
                    Action::Mkdir(mkdir) => format!("mkdir {}", mkdir.path),
                    Action::Mkfile(mkfile) => format!("mkfile {}", mkfile.path),
                    Action::Symlink(link) => {
                        format!("symlink {} -> {}", link.newpath, link.oldpath)
                    }
                    Action::Rm(rm) => format!("rm {}", rm.path),
                    Action::Copy(copy) => format!("copy {} {}", copy.src, copy.dest),
                })
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(Op::Build(_)) => "build".to_owned(),
        Some(Op::Merge(_)) => {
            let inputs: Vec<String> = (0..op.inputs.len()).map(input).collect();
            format!("merge ({})", inputs.join(", "))
        }
        Some(Op::Diff(diff)) => {
            let side = |input_index: Option<i64>| match input_index {
                Some(i) if i != -1 => format!("({})", input(usize::try_from(i).unwrap_or(0))),
                _ => "scratch".to_owned(),
            };
            format!(
                "diff {} -> {}",
                side(diff.lower.as_ref().map(|l| l.input)),
                side(diff.upper.as_ref().map(|u| u.input))
            )
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(op: pb::op::Op, inputs: &[&str], digest: &str) -> Vertex {
        Vertex {
            digest: digest.parse().unwrap(),
            op: pb::Op {
                inputs: inputs
                    .iter()
                    .map(|d| pb::Input {
                        digest: (*d).to_owned(),
                        index: 0,
                    })
                    .collect(),
                op: Some(op),
                ..pb::Op::default()
            },
            bytes: Vec::new(),
            metadata: None,
        }
    }

    #[test]
    fn names_are_buildkits() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = format!("sha256:{}", "c".repeat(64));
        let d = format!("sha256:{}", "d".repeat(64));
        let source = vertex(
            pb::op::Op::Source(pb::SourceOp {
                identifier: "https://example.com/f".to_owned(),
                ..pb::SourceOp::default()
            }),
            &[],
            &a,
        );
        let exec = vertex(
            pb::op::Op::Exec(pb::ExecOp {
                meta: Some(pb::Meta {
                    args: vec!["sh".to_owned(), "-c".to_owned(), "true".to_owned()],
                    ..pb::Meta::default()
                }),
                ..pb::ExecOp::default()
            }),
            &[&a],
            &b,
        );
        let merge = vertex(pb::op::Op::Merge(pb::MergeOp::default()), &[&a, &b], &c);
        let diff = vertex(
            pb::op::Op::Diff(pb::DiffOp {
                lower: Some(pb::LowerDiffInput { input: -1 }),
                upper: Some(pb::UpperDiffInput { input: 0 }),
            }),
            &[&c],
            &d,
        );
        let ops = [&source, &exec, &merge, &diff];
        let position: HashMap<String, usize> = ops
            .iter()
            .enumerate()
            .map(|(i, v)| (v.digest.to_string(), i))
            .collect();
        assert_eq!(
            vertex_names(&ops, &position),
            [
                "https://example.com/f",
                "sh -c true",
                "merge (https://example.com/f, sh -c true)",
                "diff scratch -> (merge (https://example.com/f, sh -c true))",
            ]
        );
    }
}
