//! `RUN --mount=…`: the CSV option list of each mount type, checked as BuildKit checks it
//! (`instructions/commands_runmount.go`).

use std::fmt;

use crate::error::Error;

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    /// A read-only (by default) view of the context, a stage or an image.
    #[default]
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An in-memory filesystem.
    Tmpfs,
    /// A secret file or environment variable from the client.
    Secret,
    /// The client's ssh-agent socket.
    Ssh,
}

impl MountType {
    const ALL: [(&'static str, MountType); 5] = [
        ("bind", Self::Bind),
        ("cache", Self::Cache),
        ("tmpfs", Self::Tmpfs),
        ("secret", Self::Secret),
        ("ssh", Self::Ssh),
    ];

    /// The name used in `type=`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("bind", |(n, _)| n)
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Everyone uses the same directory at once.
    Shared,
    /// Each concurrent user gets its own copy.
    Private,
    /// Users take turns.
    Locked,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: a stage, image or named context to mount from.
    pub from: String,
    /// `source=`/`src=`: the path inside `from`, or the secret id for secrets.
    pub source: String,
    /// `target=`/`dst=`/`destination=`.
    pub target: String,
    /// Read-only (defaults: true for bind, secret and ssh; false for cache and tmpfs).
    pub read_only: bool,
    /// `size=` of a tmpfs, in bytes.
    pub size_limit: Option<i64>,
    /// `id=`: the cache id, or the secret/ssh id.
    pub cache_id: String,
    /// `sharing=` of a cache mount.
    pub cache_sharing: Option<CacheSharing>,
    /// `required=` for secret and ssh mounts.
    pub required: bool,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `env=`: expose a secret as this environment variable.
    pub env: Option<String>,
}

/// What to do with option values, which may hold `$VAR`s.
pub enum MountValues<'a> {
    /// Parse time, as BuildKit's parse without an expander: only `from` is read (it
    /// must not use variables: the stage it names is needed before expansion); every
    /// other option waits for conversion.
    Deferred,
    /// Conversion time: expand every value with this function, then check the mount.
    Expand(&'a dyn Fn(&str) -> Result<String, Error>),
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    kiln_oci::go::parse_bool(value)
        .ok_or_else(|| Error::new(format!("invalid value for {key}: {value}")))
}

fn parse_id(key: &str, value: &str) -> Result<u32, Error> {
    value
        .parse()
        .map_err(|_| Error::new(format!("invalid value {value} for {key}")))
}

/// Every option name, in the order BuildKit looks for a suggestion among them.
const ALL_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

const SHARING_MODES: [(&str, CacheSharing); 3] = [
    ("locked", CacheSharing::Locked),
    ("private", CacheSharing::Private),
    ("shared", CacheSharing::Shared),
];

/// Parses one `--mount` value. With [`MountValues::Deferred`] only `from` is read.
pub fn parse_mount(value: &str, values: &MountValues<'_>) -> Result<Mount, Error> {
    let fields = kiln_oci::go::csv_fields(value)
        .map_err(|e| Error::new(format!("failed to parse csv mounts: {e}")))?;
    let mut mount = Mount::default();
    let mut read_only_auto = true;
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key.to_ascii_lowercase(), Some(value)),
            None => (field.to_ascii_lowercase(), None),
        };
        let expand = match values {
            MountValues::Expand(expand) => expand,
            MountValues::Deferred => {
                if let (Some(value), "from") = (value, key.as_str()) {
                    // A trailing `$` is not a variable.
                    if value.find('$').is_some_and(|i| i != value.len() - 1) {
                        return Err(Error::new(format!(
                            "'{key}' doesn't support variable expansion, define alias stage instead"
                        )));
                    }
                    mount.from = value.to_owned();
                }
                continue;
            }
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => mount.read_only = true,
                "readwrite" | "rw" => mount.read_only = false,
                "required" if matches!(mount.kind, MountType::Secret | MountType::Ssh) => {
                    mount.required = true;
                    continue;
                }
                "required" => {
                    return Err(Error::new(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        mount.kind
                    )));
                }
                _ => {
                    return Err(Error::new(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )));
                }
            }
            read_only_auto = false;
            continue;
        };
        let value = expand(value)?;
        let unexpected_for_type = || {
            Error::new(format!(
                "unexpected key '{key}' for mount type '{}'",
                mount.kind
            ))
        };
        match key.as_str() {
            "type" => {
                let lower = value.to_ascii_lowercase();
                let Some((_, kind)) = MountType::ALL.iter().find(|(name, _)| *name == lower) else {
                    return Err(Error::new(crate::suggest::with_hint(
                        format!("unsupported mount type {}", crate::go_quote(&value)),
                        &value,
                        MountType::ALL.iter().map(|(name, _)| *name),
                        true,
                    )));
                };
                mount.kind = *kind;
            }
            "from" => mount.from = value,
            "source" | "src" => mount.source = value,
            "target" | "dst" | "destination" => mount.target = value,
            "readonly" | "ro" => {
                mount.read_only = parse_bool(&key, &value)?;
                read_only_auto = false;
            }
            "readwrite" | "rw" => {
                mount.read_only = !parse_bool(&key, &value)?;
                read_only_auto = false;
            }
            "required" => {
                if !matches!(mount.kind, MountType::Secret | MountType::Ssh) {
                    return Err(unexpected_for_type());
                }
                mount.required = parse_bool(&key, &value)?;
            }
            "size" => {
                if mount.kind != MountType::Tmpfs {
                    return Err(unexpected_for_type());
                }
                mount.size_limit = Some(
                    kiln_oci::go::ram_in_bytes(&value)
                        .map_err(|_| Error::new(format!("invalid value for {key}: {value}")))?,
                );
            }
            "id" => mount.cache_id = value,
            "sharing" => {
                let lower = value.to_ascii_lowercase();
                let Some((_, sharing)) = SHARING_MODES.iter().find(|(name, _)| *name == lower)
                else {
                    return Err(Error::new(crate::suggest::with_hint(
                        format!("unsupported sharing value {}", crate::go_quote(&value)),
                        &value,
                        SHARING_MODES.iter().map(|(name, _)| *name),
                        true,
                    )));
                };
                mount.cache_sharing = Some(*sharing);
            }
            "mode" => {
                mount.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| Error::new(format!("invalid value {value} for mode")))?,
                );
            }
            "uid" => mount.uid = Some(parse_id("uid", &value)?),
            "gid" => mount.gid = Some(parse_id("gid", &value)?),
            "env" => mount.env = Some(value),
            _ => {
                return Err(Error::new(crate::suggest::with_hint(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    ALL_KEYS,
                    true,
                )));
            }
        }
    }
    if matches!(values, MountValues::Expand(_)) {
        validate_mount(&mut mount, read_only_auto)?;
    }
    Ok(mount)
}

fn validate_mount(mount: &mut Mount, read_only_auto: bool) -> Result<(), Error> {
    let kind = mount.kind;
    if !matches!(kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
        for (name, set) in [
            ("mode", mount.mode.is_some()),
            ("uid", mount.uid.is_some()),
            ("gid", mount.gid.is_some()),
        ] {
            if set {
                return Err(Error::new(format!(
                    "{name} not allowed for \"{kind}\" type mounts"
                )));
            }
        }
    }
    if read_only_auto {
        mount.read_only = !matches!(kind, MountType::Cache | MountType::Tmpfs);
    }
    if kind == MountType::Secret {
        if !mount.from.is_empty() {
            return Err(Error::new("secret mount should not have a from"));
        }
        if mount.cache_sharing.is_some() {
            return Err(Error::new("secret mount should not define sharing"));
        }
        if mount.source.is_empty() && mount.target.is_empty() && mount.cache_id.is_empty() {
            return Err(Error::new(
                "invalid secret mount. one of source, target required",
            ));
        }
        if !mount.source.is_empty() && !mount.cache_id.is_empty() {
            return Err(Error::new("both source and id can't be set"));
        }
    }
    if mount.cache_sharing.is_some() && kind != MountType::Cache {
        return Err(Error::new(format!(
            "invalid cache sharing set for {kind} mount"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(v: &str) -> Result<Mount, Error> {
        parse_mount(v, &MountValues::Expand(&|s| Ok(s.to_owned())))
    }

    #[test]
    fn mount_types_and_defaults() {
        let m = literal("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert!(!m.read_only);
        assert_eq!(
            (m.mode, m.uid, m.cache_sharing),
            (Some(0o755), Some(1), Some(CacheSharing::Locked))
        );
        let m = literal("target=/src,from=build,rw").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(!m.read_only);
        assert!(literal("type=bind,target=/x").unwrap().read_only);
        let m = literal("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert_eq!((m.env.as_deref(), m.required), (Some("TOKEN"), true));
        assert_eq!(
            literal("type=tmpfs,target=/t,size=64m").unwrap().size_limit,
            Some(64 << 20)
        );
    }

    #[test]
    fn buildkit_errors() {
        let err = |v: &str| literal(v).unwrap_err().message;
        assert_eq!(err("type=volume"), "unsupported mount type \"volume\"");
        assert_eq!(
            err("type=tmpf"),
            "unsupported mount type \"tmpf\" (did you mean tmpfs?)"
        );
        assert_eq!(
            err("type=cache,sharing=lock"),
            "unsupported sharing value \"lock\" (did you mean locked?)"
        );
        assert_eq!(
            err("type=bind,envv=1"),
            "unexpected key 'envv' in 'envv=1' (did you mean env?)"
        );
        assert_eq!(
            err("type=secret,env=FOO"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            literal("type=bind,target=/x,env=FOO")
                .unwrap()
                .env
                .as_deref(),
            Some("FOO")
        );
        assert_eq!(
            err("type=bind,mode=0700"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            err("type=cache,size=1m"),
            "unexpected key 'size' for mount type 'cache'"
        );
        assert_eq!(
            err("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            err("type=bind,sharing=locked"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            err("target"),
            "invalid field 'target' must be a key=value pair"
        );
        assert_eq!(
            err("type=cache,taget=/x"),
            "unexpected key 'taget' in 'taget=/x' (did you mean target?)"
        );
        assert_eq!(err("type=cache,uid=x"), "invalid value x for uid");
    }

    #[test]
    fn parse_time_reads_only_from() {
        let deferred = |v| parse_mount(v, &MountValues::Deferred);
        let m = deferred("type=secret,id=$ID,from=build").unwrap();
        assert_eq!((m.kind, m.from.as_str()), (MountType::Bind, "build"));
        // Anything else, variables or mistakes, waits for conversion.
        assert!(deferred("type=nope,size=x,rw,bogus").is_ok());
        assert!(deferred("from=$STAGE").is_err());
        assert!(deferred("from=${STAGE}").is_err());
        assert_eq!(deferred("from=stage$").unwrap().from, "stage$");
    }

    #[test]
    fn conversion_expands_every_value() {
        let vars = |v: &str| {
            Ok(v.replace("$T", "tmpfs")
                .replace("$S", "1m")
                .replace("$RO", "true"))
        };
        let m = parse_mount(
            "type=$T,target=/x,size=$S,ro=$RO",
            &MountValues::Expand(&vars),
        )
        .unwrap();
        assert_eq!(
            (m.kind, m.size_limit, m.read_only),
            (MountType::Tmpfs, Some(1 << 20), true)
        );
    }
}
