//! Property tests: encoding is stable (encode, decode, encode gives the same bytes) and a
//! graph's definition does not depend on the order in which it was built.

use std::collections::BTreeMap;

use kiln_llb::{
    CopyOptions, FileAction, ImageOptions, MarshalOptions, Mount, OpOptions, Platform, Run, State,
    pb, wire,
};
use proptest::prelude::*;

fn small_string() -> impl Strategy<Value = String> {
    "[a-z/._-]{0,12}"
}

fn op_strategy() -> impl Strategy<Value = pb::Op> {
    let input = (small_string(), -2i64..4).prop_map(|(digest, index)| pb::Input { digest, index });
    let source = (
        small_string(),
        prop::collection::btree_map(small_string(), small_string(), 0..4),
    )
        .prop_map(|(identifier, attrs)| pb::op::Op::Source(pb::SourceOp { identifier, attrs }));
    let exec = (
        prop::collection::vec(small_string(), 0..4),
        prop::collection::vec(small_string(), 0..3),
        small_string(),
        prop::collection::vec(
            (-1i64..3, small_string(), -1i64..3, any::<bool>(), 0i32..5),
            0..4,
        ),
        0i32..3,
    )
        .prop_map(|(args, env, cwd, mounts, network)| {
            pb::op::Op::Exec(pb::ExecOp {
                meta: Some(pb::Meta {
                    args,
                    env,
                    cwd,
                    remove_mount_stubs_recursive: true,
                    ..pb::Meta::default()
                }),
                mounts: mounts
                    .into_iter()
                    .map(|(input, dest, output, readonly, mount_type)| pb::Mount {
                        input,
                        dest,
                        output,
                        readonly,
                        mount_type,
                        cache_opt: (mount_type == 3).then(|| pb::CacheOpt {
                            id: "x".into(),
                            sharing: 1,
                        }),
                        ..pb::Mount::default()
                    })
                    .collect(),
                network,
                ..pb::ExecOp::default()
            })
        });
    let file = prop::collection::vec(
        (
            -1i64..3,
            -1i64..3,
            small_string(),
            any::<i32>(),
            any::<i64>(),
        ),
        1..4,
    )
    .prop_map(|actions| {
        pb::op::Op::File(pb::FileOp {
            actions: actions
                .into_iter()
                .map(
                    |(input, secondary_input, path, mode, timestamp)| pb::FileAction {
                        input,
                        secondary_input,
                        output: 0,
                        action: Some(pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                            path,
                            mode,
                            make_parents: true,
                            owner: None,
                            timestamp,
                        })),
                    },
                )
                .collect(),
        })
    });
    let kind = prop_oneof![
        source,
        exec,
        file,
        Just(pb::op::Op::Merge(pb::MergeOp::default()))
    ];
    (
        prop::collection::vec(input, 0..3),
        prop::option::of(kind),
        any::<bool>(),
    )
        .prop_map(|(inputs, op, platform)| pb::Op {
            inputs,
            platform: platform.then(|| pb::Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..pb::Platform::default()
            }),
            constraints: Some(pb::WorkerConstraints::default()),
            op,
        })
}

/// A random DAG: node `i` is a run on an earlier node, a merge of earlier nodes, or a
/// copy between earlier nodes. Node 0 is an image.
#[derive(Debug, Clone)]
enum Spec {
    Run(usize, String, bool),
    Merge(Vec<usize>),
    Copy(usize, usize, String),
}

fn graph_strategy() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            0usize..100,
            0usize..100,
            0u8..3,
            "[a-z]{1,6}",
            any::<bool>(),
        ),
        1..12,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (a, b, kind, word, flag))| {
                let n = i + 1; // nodes before this one
                match kind {
                    0 => Spec::Run(a % n, word, flag),
                    1 => Spec::Merge(vec![a % n, b % n]),
                    _ => Spec::Copy(a % n, b % n, word),
                }
            })
            .collect()
    })
}

fn build(specs: &[Spec], i: usize, cache: &mut BTreeMap<usize, State>) -> State {
    if let Some(state) = cache.get(&i) {
        return state.clone();
    }
    let state = if i == 0 {
        State::image("busybox:1.36", ImageOptions::default()).dir("/")
    } else {
        match &specs[i - 1] {
            Spec::Run(base, word, cache_mount) => {
                let base = build(specs, *base, cache);
                let mut run = Run::new(["sh", "-c", word.as_str()]);
                if *cache_mount {
                    run = run.mount(Mount::cache("/cache", word.clone(), Default::default()));
                }
                base.run(run).root()
            }
            Spec::Merge(inputs) => {
                let states: Vec<State> = inputs.iter().map(|j| build(specs, *j, cache)).collect();
                State::merge(&states, OpOptions::default())
            }
            Spec::Copy(from, to, word) => {
                let from = build(specs, *from, cache);
                let to = build(specs, *to, cache);
                to.file(
                    FileAction::copy(&from, format!("/{word}"), "/dest/", CopyOptions::default()),
                    OpOptions::default(),
                )
            }
        }
    };
    cache.insert(i, state.clone());
    state
}

fn options() -> MarshalOptions {
    MarshalOptions {
        platform: Some(Platform::linux("amd64")),
        local_unique_id: Some("fixed".into()),
    }
}

proptest! {
    #[test]
    fn op_encoding_is_stable(op in op_strategy()) {
        let bytes = wire::encode_op(&op);
        let decoded = wire::decode_op(&bytes).unwrap();
        prop_assert_eq!(wire::encode_op(&decoded), bytes);
    }

    #[test]
    fn build_order_does_not_change_digests(specs in graph_strategy(), seed in any::<u64>()) {
        let last = specs.len();
        let in_order = build(&specs, last, &mut BTreeMap::new()).marshal(&options());
        // Build the nodes in a shuffled order first, then the result.
        let mut order: Vec<usize> = (0..=last).collect();
        let mut s = seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut cache = BTreeMap::new();
        for i in order {
            build(&specs, i, &mut cache);
        }
        let shuffled = build(&specs, last, &mut cache).marshal(&options());
        let a = wire::encode_definition(&in_order);
        prop_assert_eq!(&a, &wire::encode_definition(&shuffled));
        let decoded = wire::decode_definition(&a).unwrap();
        prop_assert_eq!(wire::encode_definition(&decoded), a);
    }
}
