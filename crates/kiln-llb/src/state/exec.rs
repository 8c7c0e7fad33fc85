//! `run`: an exec op with its mounts, secrets, ssh sockets, network and security modes
//! (`client/llb/exec.go`).

use std::sync::Arc;

use super::{Node, OpKind, OpOptions, Output, State};
use crate::{caps, pb};

/// Network mode of a `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetMode {
    /// The worker's default (BuildKit's `sandbox`).
    #[default]
    Sandbox,
    /// The host's network.
    Host,
    /// Loopback only.
    None,
}

/// Security mode of a `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// Default capabilities, seccomp, no new privileges.
    #[default]
    Sandbox,
    /// Privileged.
    Insecure,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheSharing {
    /// Concurrent users share it.
    #[default]
    Shared,
    /// Each concurrent user gets its own.
    Private,
    /// Users take turns.
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MountKind {
    Bind,
    Cache { id: String, sharing: CacheSharing },
    Tmpfs { size: i64 },
}

/// A filesystem mounted into a `run`.
#[derive(Debug, Clone)]
pub struct Mount {
    target: String,
    source: Option<State>,
    selector: String,
    readonly: bool,
    no_output: bool,
    kind: MountKind,
}

impl Mount {
    /// A state mounted at `target` (writable: its changes become an output).
    pub fn bind(target: impl Into<String>, source: &State) -> Self {
        Self {
            target: target.into(),
            source: Some(source.clone()),
            selector: String::new(),
            readonly: false,
            no_output: false,
            kind: MountKind::Bind,
        }
    }

    /// A persistent cache directory at `target`, named `id`.
    pub fn cache(target: impl Into<String>, id: impl Into<String>, sharing: CacheSharing) -> Self {
        Self {
            target: target.into(),
            source: None,
            selector: String::new(),
            readonly: false,
            no_output: false,
            kind: MountKind::Cache {
                id: id.into(),
                sharing,
            },
        }
    }

    /// An in-memory filesystem at `target`; `size` 0 means the default.
    pub fn tmpfs(target: impl Into<String>, size: i64) -> Self {
        Self {
            target: target.into(),
            source: None,
            selector: String::new(),
            readonly: false,
            no_output: false,
            kind: MountKind::Tmpfs { size },
        }
    }

    /// Mounts read-only (no output).
    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }

    /// Mounts only this path of the source.
    pub fn selector(mut self, path: impl Into<String>) -> Self {
        self.selector = path.into();
        self
    }

    /// Seeds a cache mount from a state.
    pub fn source(mut self, state: &State) -> Self {
        self.source = Some(state.clone());
        self
    }

    /// Writable, but its changes are thrown away.
    pub fn no_output(mut self) -> Self {
        self.no_output = true;
        self
    }

    fn has_output(&self) -> bool {
        !self.no_output && !self.readonly && self.kind == MountKind::Bind
    }
}

/// A secret mounted as a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretMount {
    /// The secret's id.
    pub id: String,
    /// Where the file appears.
    pub target: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// File mode.
    pub mode: u32,
    /// Missing secrets are not an error.
    pub optional: bool,
}

/// A secret given as an environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretEnv {
    /// The secret's id.
    pub id: String,
    /// The variable's name.
    pub name: String,
    /// Missing secrets are not an error.
    pub optional: bool,
}

/// An ssh-agent socket forwarded into a `run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshMount {
    /// The agent's id (`default`).
    pub id: String,
    /// Where the socket appears; empty means `/run/buildkit/ssh_agent.<n>`.
    pub target: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Socket mode.
    pub mode: u32,
    /// A missing agent is not an error.
    pub optional: bool,
}

/// What to run, and with what; see [`State::run`].
#[derive(Debug, Clone, Default)]
pub struct Run {
    args: Vec<String>,
    mounts: Vec<Mount>,
    secrets: Vec<SecretMount>,
    secret_env: Vec<SecretEnv>,
    ssh: Vec<SshMount>,
    proxy_env: Option<pb::ProxyEnv>,
    network: Option<NetMode>,
    security: Option<SecurityMode>,
    valid_exit_codes: Vec<i32>,
    readonly_root: bool,
    options: OpOptions,
}

impl Run {
    /// Runs `args` (no shell is added).
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds a mount.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Mounts a secret as a file.
    pub fn secret(mut self, secret: SecretMount) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Exposes a secret as an environment variable.
    pub fn secret_env(mut self, secret: SecretEnv) -> Self {
        self.secret_env.push(secret);
        self
    }

    /// Forwards an ssh agent.
    pub fn ssh(mut self, ssh: SshMount) -> Self {
        self.ssh.push(ssh);
        self
    }

    /// Proxy variables, kept out of the cache key.
    pub fn proxy_env(mut self, proxy: pb::ProxyEnv) -> Self {
        self.proxy_env = Some(proxy);
        self
    }

    /// Overrides the state's network mode.
    pub fn network(mut self, network: NetMode) -> Self {
        self.network = Some(network);
        self
    }

    /// Overrides the state's security mode.
    pub fn security(mut self, security: SecurityMode) -> Self {
        self.security = Some(security);
        self
    }

    /// Exit codes that count as success (default: 0).
    pub fn valid_exit_codes(mut self, codes: Vec<i32>) -> Self {
        self.valid_exit_codes = codes;
        self
    }

    /// Mounts the root filesystem read-only.
    pub fn readonly_root(mut self) -> Self {
        self.readonly_root = true;
        self
    }

    /// Op options (custom name, ignore-cache, locations, …).
    pub fn options(mut self, options: OpOptions) -> Self {
        self.options = options;
        self
    }
}

/// An exec op before marshalling: the mounts sorted by target, each writable bind mount
/// with its output index.
#[derive(Debug)]
pub(crate) struct ExecSpec {
    pub(crate) meta: pb::Meta,
    pub(crate) mounts: Vec<ExecMount>,
    pub(crate) secrets: Vec<SecretMount>,
    pub(crate) secret_env: Vec<SecretEnv>,
    pub(crate) ssh: Vec<SshMount>,
    pub(crate) network: NetMode,
    pub(crate) security: SecurityMode,
}

#[derive(Debug)]
pub(crate) struct ExecMount {
    pub(crate) target: String,
    pub(crate) source: Option<Output>,
    selector: String,
    readonly: bool,
    output: i64,
    kind: MountKind,
}

/// The result of [`State::run`]: the root filesystem and the writable mounts.
#[derive(Debug, Clone)]
pub struct ExecState {
    node: Arc<Node>,
    base: State,
    outputs: Vec<(String, i64)>,
}

impl ExecState {
    /// The root filesystem after the run, with the metadata of the state it ran on.
    pub fn root(&self) -> State {
        self.mount_output("/")
            .unwrap_or_else(|| self.base.with_output_of(&State::scratch()))
    }

    /// A writable mount's content after the run.
    pub fn mount_output(&self, target: &str) -> Option<State> {
        let index = self.outputs.iter().find(|(t, _)| t == target)?.1;
        Some(State {
            output: Some(Output {
                node: Arc::clone(&self.node),
                index,
            }),
            meta: Arc::clone(&self.base.meta),
        })
    }
}

impl State {
    /// Runs a command on this state's filesystem (mounted at `/`) with its metadata.
    pub fn run(&self, run: Run) -> ExecState {
        let meta = &self.meta;
        let mut options = run.options;
        let mut env = meta.env.clone();
        let mut ssh = run.ssh;
        for (i, s) in ssh.iter_mut().enumerate() {
            if s.target.is_empty() {
                s.target = format!("/run/buildkit/ssh_agent.{i}");
            }
        }
        if let Some(first) = ssh.first()
            && !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK")
        {
            env.push(("SSH_AUTH_SOCK".to_owned(), first.target.clone()));
        }
        // The solver adds a default PATH when the image has none (this cap says so).
        options.add_cap(caps::EXEC_META_SETS_DEFAULT_PATH);
        let mut pb_meta = pb::Meta {
            args: run.args,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            // Every BuildKit state starts in `/` (`NewState(…).Dir("/")`).
            cwd: meta.dir.clone().unwrap_or_else(|| "/".to_owned()),
            user: meta.user.clone().unwrap_or_default(),
            hostname: meta.hostname.clone().unwrap_or_default(),
            extra_hosts: meta
                .extra_hosts
                .iter()
                .map(|(host, ip)| pb::HostIp {
                    host: host.clone(),
                    ip: ip.clone(),
                })
                .collect(),
            ulimit: meta.ulimits.clone(),
            cgroup_parent: meta.cgroup_parent.clone().unwrap_or_default(),
            remove_mount_stubs_recursive: true,
            valid_exit_codes: run.valid_exit_codes,
            proxy_env: run.proxy_env,
        };
        if !pb_meta.ulimit.is_empty() {
            options.add_cap(caps::EXEC_META_ULIMIT);
        }
        if !pb_meta.cgroup_parent.is_empty() {
            options.add_cap(caps::EXEC_META_CGROUP_PARENT);
        }
        if !pb_meta.valid_exit_codes.is_empty() {
            options.add_cap(caps::EXEC_VALID_EXIT_CODE);
        }
        if pb_meta.proxy_env.is_some() {
            options.add_cap(caps::EXEC_META_PROXY);
        }
        let network = run.network.unwrap_or(meta.network);
        let security = run.security.unwrap_or(meta.security);
        if network != NetMode::Sandbox {
            options.add_cap(caps::EXEC_META_NETWORK);
        }
        if security != SecurityMode::Sandbox {
            options.add_cap(caps::EXEC_META_SECURITY);
        }
        options.add_cap(caps::EXEC_META_BASE);

        let mut root = Mount::bind("/", self);
        root.readonly = run.readonly_root;
        if self.is_scratch() {
            root.source = None;
        }
        let mut mounts = vec![root];
        mounts.extend(run.mounts);
        mounts.sort_by(|a, b| a.target.cmp(&b.target));
        let mut next_output = 0;
        let mut exec_mounts = Vec::with_capacity(mounts.len());
        let mut outputs = Vec::new();
        for m in mounts {
            if !m.selector.is_empty() {
                options.add_cap(caps::EXEC_MOUNT_SELECTOR);
            }
            match &m.kind {
                MountKind::Cache { .. } => {
                    options.add_cap(caps::EXEC_MOUNT_CACHE);
                    options.add_cap(caps::EXEC_MOUNT_CACHE_SHARING);
                }
                MountKind::Tmpfs { size } => {
                    options.add_cap(caps::EXEC_MOUNT_TMPFS);
                    if *size > 0 {
                        options.add_cap(caps::EXEC_MOUNT_TMPFS_SIZE);
                    }
                }
                MountKind::Bind if m.source.as_ref().is_some_and(|s| !s.is_scratch()) => {
                    options.add_cap(caps::EXEC_MOUNT_BIND);
                }
                MountKind::Bind => {}
            }
            let output = if m.has_output() {
                next_output += 1;
                outputs.push((m.target.clone(), next_output - 1));
                next_output - 1
            } else {
                -1
            };
            exec_mounts.push(ExecMount {
                source: m.source.and_then(|s| s.output),
                target: m.target,
                selector: m.selector,
                readonly: m.readonly,
                output,
                kind: m.kind,
            });
        }
        if !run.secrets.is_empty() || !run.secret_env.is_empty() {
            options.add_cap(caps::EXEC_MOUNT_SECRET);
        }
        if !run.secret_env.is_empty() {
            options.add_cap(caps::EXEC_SECRET_ENV);
        }
        if !ssh.is_empty() {
            options.add_cap(caps::EXEC_MOUNT_SSH);
        }
        if options.platform.is_none() {
            options.platform = meta.platform.clone();
        }
        let spec = ExecSpec {
            meta: std::mem::take(&mut pb_meta),
            mounts: exec_mounts,
            secrets: run.secrets,
            secret_env: run.secret_env,
            ssh,
            network,
            security,
        };
        let node = Arc::new(Node {
            kind: OpKind::Exec(Box::new(spec)),
            options,
        });
        ExecState {
            node,
            base: self.clone(),
            outputs,
        }
    }
}

impl ExecSpec {
    /// The `ExecOp`, given how to turn an output into an input index.
    pub(crate) fn to_pb(&self, mut input_index: impl FnMut(&Output) -> i64) -> pb::ExecOp {
        let mut mounts: Vec<pb::Mount> = self
            .mounts
            .iter()
            .map(|m| {
                let mut mount = pb::Mount {
                    input: m.source.as_ref().map_or(-1, &mut input_index),
                    selector: m.selector.clone(),
                    dest: m.target.clone(),
                    output: m.output,
                    readonly: m.readonly,
                    ..pb::Mount::default()
                };
                match &m.kind {
                    MountKind::Bind => {}
                    MountKind::Cache { id, sharing } => {
                        mount.mount_type = pb::MountType::Cache as i32;
                        mount.cache_opt = Some(pb::CacheOpt {
                            id: id.clone(),
                            sharing: match sharing {
                                CacheSharing::Shared => pb::CacheSharingOpt::Shared,
                                CacheSharing::Private => pb::CacheSharingOpt::Private,
                                CacheSharing::Locked => pb::CacheSharingOpt::Locked,
                            } as i32,
                        });
                    }
                    MountKind::Tmpfs { size } => {
                        mount.mount_type = pb::MountType::Tmpfs as i32;
                        mount.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                    }
                }
                mount
            })
            .collect();
        for s in &self.secrets {
            mounts.push(pb::Mount {
                input: -1,
                dest: s.target.clone(),
                mount_type: pb::MountType::Secret as i32,
                secret_opt: Some(pb::SecretOpt {
                    id: s.id.clone(),
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    optional: s.optional,
                }),
                ..pb::Mount::default()
            });
        }
        for s in &self.ssh {
            mounts.push(pb::Mount {
                input: -1,
                dest: s.target.clone(),
                mount_type: pb::MountType::Ssh as i32,
                ssh_opt: Some(pb::SshOpt {
                    id: s.id.clone(),
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    optional: s.optional,
                }),
                ..pb::Mount::default()
            });
        }
        pb::ExecOp {
            meta: Some(self.meta.clone()),
            mounts,
            network: match self.network {
                NetMode::Sandbox => pb::NetMode::Unset,
                NetMode::Host => pb::NetMode::Host,
                NetMode::None => pb::NetMode::None,
            } as i32,
            security: match self.security {
                SecurityMode::Sandbox => pb::SecurityMode::Sandbox,
                SecurityMode::Insecure => pb::SecurityMode::Insecure,
            } as i32,
            secretenv: self
                .secret_env
                .iter()
                .map(|s| pb::SecretEnv {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    optional: s.optional,
                })
                .collect(),
            cdi_devices: Vec::new(),
        }
    }
}
