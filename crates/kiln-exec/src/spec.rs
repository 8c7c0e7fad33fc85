//! The OCI runtime spec (`config.json`) for one process, with Docker's defaults.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::User;

/// The network a process sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The host's network namespace.
    #[default]
    Host,
    /// A namespace of its own with loopback only.
    None,
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Process {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// Who runs it.
    pub user: User,
    /// Hostname.
    pub hostname: String,
    /// Network namespace.
    pub network: NetworkMode,
    /// Run privileged (all capabilities, no seccomp, no masked paths).
    pub privileged: bool,
    /// The rootfs is read-only to the process (runc still sets up mount points in it
    /// first, so the caller passes a writable directory).
    pub readonly_rootfs: bool,
    /// Extra `/etc/hosts` entries: (name, address).
    pub extra_hosts: Vec<(String, String)>,
    /// Resource limits: (name as in `--ulimit`, e.g. `nofile`; soft; hard).
    pub ulimits: Vec<(String, i64, i64)>,
    /// The cgroup the container's own goes under (`--cgroup-parent`); `None`: runc's
    /// default place.
    pub cgroup_parent: Option<String>,
    /// The build's own cancellation (a remote client that went away), besides the
    /// executor's: when set, the container is killed.
    pub cancelled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// How a mount is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host directory or file bound in.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Mounted read-only.
        readonly: bool,
    },
    /// A fresh tmpfs; `size` 0 means the default.
    Tmpfs {
        /// Size limit in bytes.
        size: i64,
        /// Mounted read-only.
        readonly: bool,
    },
}

/// A mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it appears in the container.
    pub destination: String,
    /// What it is.
    pub kind: MountKind,
}

/// Every capability, in the kernel's bit order, for privileged processes
/// (`--security=insecure`), limited to this process's bounding set as Docker does.
const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// This process's capability bounding set (`CapBnd` in /proc/self/status).
fn bounding_set() -> u64 {
    fs_err::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapBnd:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .unwrap_or(0)
}

/// Docker's default capability set.
const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/kcore",
];

/// Builds `config.json` for `process` on `rootfs` with `mounts` (plus the standard
/// `/proc`, `/dev`, `/sys` and the generated `/etc/hosts` and `/etc/resolv.conf`).
pub(crate) fn runtime_spec(
    id: &str,
    rootfs: &std::path::Path,
    process: &Process,
    mounts: &[Mount],
    etc: &std::path::Path,
) -> Value {
    let caps: Vec<&str> = if process.privileged {
        let bounding = bounding_set();
        ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(bit, _)| bounding & (1 << bit) != 0)
            .map(|(_, cap)| *cap)
            .collect()
    } else {
        DEFAULT_CAPS.to_vec()
    };
    let rlimits: Vec<Value> = process
        .ulimits
        .iter()
        .map(|(name, soft, hard)| {
            json!({"type": format!("RLIMIT_{}", name.to_ascii_uppercase()), "soft": soft, "hard": hard})
        })
        .collect();
    let mut spec_mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": etc.join("resolv.conf"), "options": ["rbind", "ro"]}),
        json!({"destination": "/etc/hosts", "type": "bind", "source": etc.join("hosts"), "options": ["rbind", "ro"]}),
    ];
    for mount in mounts {
        let spec_mount = match &mount.kind {
            MountKind::Bind { source, readonly } => json!({
                "destination": mount.destination,
                "type": "bind",
                "source": source,
                "options": if *readonly { vec!["rbind", "ro"] } else { vec!["rbind"] },
            }),
            // BuildKit's tmpfs mount options (`solver/llbsolver/mounts`): no `nodev`,
            // `noexec` or mode; the kernel's default size unless one is given.
            MountKind::Tmpfs { size, readonly } => {
                let mut options = vec!["nosuid".to_owned()];
                if *readonly {
                    options.push("ro".to_owned());
                }
                if *size > 0 {
                    options.push(format!("size={size}"));
                }
                json!({"destination": mount.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            }
        };
        // A mount on a destination that already has one replaces it where it is (as
        // BuildKit's `dedupMounts`): `--mount=type=tmpfs,target=/dev/shm` is the only
        // `/dev/shm`, not one stacked over the default.
        match spec_mounts
            .iter_mut()
            .find(|m| m["destination"] == spec_mount["destination"])
        {
            Some(existing) => *existing = spec_mount,
            None => spec_mounts.push(spec_mount),
        }
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if process.network == NetworkMode::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
    });
    if let Some(parent) = &process.cgroup_parent {
        // As BuildKit places it: `/<parent>/<container id>` (cgroupfs layout).
        linux["cgroupsPath"] = json!(format!("/{}/{id}", parent.trim_matches('/')));
    }
    if !process.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        linux["seccomp"] = crate::seccomp::default_profile();
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {
                "uid": process.user.uid,
                "gid": process.user.gid,
                "additionalGids": process.user.additional_gids,
            },
            "args": process.args,
            "env": process.env,
            "cwd": if process.cwd.is_empty() { "/" } else { process.cwd.as_str() },
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": !process.privileged,
            "rlimits": rlimits,
        },
        "root": {"path": rootfs, "readonly": process.readonly_rootfs},
        "hostname": if process.hostname.is_empty() { "buildkitsandbox" } else { process.hostname.as_str() },
        "mounts": spec_mounts,
        "linux": linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_mounts(mounts: &[Mount]) -> Vec<Value> {
        let spec = runtime_spec(
            "t",
            std::path::Path::new("/rootfs"),
            &Process::default(),
            mounts,
            std::path::Path::new("/etc-dir"),
        );
        spec["mounts"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn a_tmpfs_on_dev_shm_replaces_the_default_in_place() {
        let tmpfs = |destination: &str, size, readonly| Mount {
            destination: destination.to_owned(),
            kind: MountKind::Tmpfs { size, readonly },
        };
        let mounts = spec_mounts(&[tmpfs("/dev/shm", 0, false), tmpfs("/cache", 1 << 20, true)]);
        let shm: Vec<&Value> = mounts
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["options"], json!(["nosuid"]));
        // Still mounted after /dev, where the default was.
        let position = |d: &str| mounts.iter().position(|m| m["destination"] == d);
        assert!(position("/dev") < position("/dev/shm"));
        assert!(position("/dev/shm") < position("/sys"));
        let cache = mounts
            .iter()
            .find(|m| m["destination"] == "/cache")
            .unwrap();
        assert_eq!(cache["options"], json!(["nosuid", "ro", "size=1048576"]));
    }
}
