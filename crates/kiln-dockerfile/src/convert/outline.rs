//! What a build target can be given, as BuildKit's `frontend.outline` subrequest
//! reports it: the build args, secrets and ssh sockets of the target stage and of every
//! stage it builds on or copies from (BuildKit's `outlineCapture`).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::SourceRange;

/// The outline of a target stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    /// The target's `AS` name (lower-cased; empty for an unnamed stage).
    pub name: String,
    /// The `# name description` comment before its FROM.
    pub description: String,
    /// The build args it uses, in the order they are declared.
    pub args: Vec<OutlineArg>,
    /// The secrets its RUN steps mount.
    pub secrets: Vec<OutlineMount>,
    /// The ssh sockets its RUN steps mount.
    pub ssh: Vec<OutlineMount>,
}

/// A build arg of an outline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlineArg {
    /// The arg's name.
    pub name: String,
    /// The `# NAME description` comment before its ARG.
    pub description: String,
    /// Its value in this build (a `--build-arg`, or the default expanded).
    pub value: String,
    /// The ARG declaring it.
    pub location: SourceRange,
}

/// A secret or ssh socket of an outline, named by its id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlineMount {
    /// The id.
    pub name: String,
    /// Whether the build fails without it.
    pub required: bool,
    /// The first RUN mounting it.
    pub location: SourceRange,
}

/// An ARG as the outline knows it: what it reports, and what orders and links it.
#[derive(Debug, Clone)]
pub(super) struct ArgInfo {
    pub(super) arg: OutlineArg,
    /// The args its default's expansion read (for a global ARG).
    pub(super) deps: BTreeSet<String>,
    /// Declaration order, which orders args declared on one line.
    pub(super) order: usize,
}

/// What one stage captured (BuildKit's `outlineCapture`): every ARG it can see, the
/// ones it uses, and its RUN mounts' secrets and ssh sockets in first-use order.
#[derive(Debug, Clone, Default)]
pub(super) struct OutlineCapture {
    pub(super) all_args: BTreeMap<String, ArgInfo>,
    pub(super) used_args: BTreeSet<String>,
    pub(super) secrets: Vec<OutlineMount>,
    pub(super) ssh: Vec<OutlineMount>,
}

impl OutlineCapture {
    /// The args `used` reads, directly or through other args' defaults.
    fn used_with_deps(&self) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        let mut pending: Vec<&String> = self.used_args.iter().collect();
        while let Some(name) = pending.pop() {
            if used.insert(name.clone())
                && let Some(info) = self.all_args.get(name)
            {
                pending.extend(&info.deps);
            }
        }
        used
    }

    /// Records a secret (`secret == true`) or ssh mount; the first use of an id wins.
    pub(super) fn mount(&mut self, secret: bool, id: &str, required: bool, location: SourceRange) {
        let list = if secret {
            &mut self.secrets
        } else {
            &mut self.ssh
        };
        if !list.iter().any(|m| m.name == id) {
            list.push(OutlineMount {
                name: id.to_owned(),
                required,
                location,
            });
        }
    }
}

/// A stage's capture and the stages it reads, as the outline walks them.
pub(super) struct StageLinks<'a> {
    pub(super) capture: &'a OutlineCapture,
    pub(super) base: Option<usize>,
    pub(super) deps: &'a BTreeSet<usize>,
}

/// The outline of stage `target`: what it and the stages it reads (its base first,
/// then those it copies or mounts from) capture, each name once, sorted by line.
pub(super) fn outline(
    stages: &[StageLinks<'_>],
    target: usize,
    name: &str,
    description: &str,
) -> Outline {
    let mut args = Vec::new();
    let mut secrets = Vec::new();
    let mut ssh = Vec::new();
    let (mut seen_args, mut seen_secrets, mut seen_ssh) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut visited = BTreeSet::new();
    let mut pending = vec![target];
    while let Some(i) = pending.pop() {
        if !visited.insert(i) {
            continue;
        }
        let stage = &stages[i];
        for used in stage.capture.used_with_deps() {
            if let Some(info) = stage.capture.all_args.get(&used)
                && seen_args.insert(used.clone())
            {
                args.push(info);
            }
        }
        for (list, seen, from) in [
            (&mut secrets, &mut seen_secrets, &stage.capture.secrets),
            (&mut ssh, &mut seen_ssh, &stage.capture.ssh),
        ] {
            for mount in from {
                if seen.insert(mount.name.clone()) {
                    list.push(mount.clone());
                }
            }
        }
        // Walked depth first: the base, then the dependencies.
        pending.extend(stage.deps.iter().rev());
        pending.extend(stage.base);
    }
    args.sort_by_key(|a| (a.arg.location.start.line, a.order));
    // Stable: mounts of one RUN keep their order.
    secrets.sort_by_key(|m: &OutlineMount| m.location.start.line);
    ssh.sort_by_key(|m: &OutlineMount| m.location.start.line);
    Outline {
        name: name.to_owned(),
        description: description.to_owned(),
        args: args.into_iter().map(|a| a.arg.clone()).collect(),
        secrets,
        ssh,
    }
}
