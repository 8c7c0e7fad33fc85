//! LLB messages as protobuf's canonical JSON, with the field names written in BuildKit's
//! `ops.proto` (`secondaryInput`, `include_patterns`, `Architecture`, …): zero values
//! left out, 64-bit integers as strings, enums by name, bytes in base64, a present
//! message always shown (even `{}`), a oneof as its one key.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::pb;

/// Builds one JSON object, leaving out zero values.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn str(mut self, key: &str, value: &str) -> Self {
        if !value.is_empty() {
            self.0.insert(key.to_owned(), json!(value));
        }
        self
    }

    fn i64(mut self, key: &str, value: i64) -> Self {
        if value != 0 {
            self.0.insert(key.to_owned(), json!(value.to_string()));
        }
        self
    }

    fn i32(mut self, key: &str, value: impl Into<i64>) -> Self {
        let value = value.into();
        if value != 0 {
            self.0.insert(key.to_owned(), json!(value));
        }
        self
    }

    fn bool(mut self, key: &str, value: bool) -> Self {
        if value {
            self.0.insert(key.to_owned(), json!(true));
        }
        self
    }

    fn strs(mut self, key: &str, values: &[String]) -> Self {
        if !values.is_empty() {
            self.0.insert(key.to_owned(), json!(values));
        }
        self
    }

    fn bytes(mut self, key: &str, value: &[u8]) -> Self {
        if !value.is_empty() {
            self.0.insert(key.to_owned(), json!(base64(value)));
        }
        self
    }

    fn enumeration(mut self, key: &str, value: i32, name: Option<&str>) -> Self {
        if value != 0 {
            self.0.insert(
                key.to_owned(),
                name.map_or_else(|| json!(value), |n| json!(n)),
            );
        }
        self
    }

    fn msg<T>(mut self, key: &str, value: Option<&T>, f: impl Fn(&T) -> Value) -> Self {
        if let Some(value) = value {
            self.0.insert(key.to_owned(), f(value));
        }
        self
    }

    fn list<T>(mut self, key: &str, values: &[T], f: impl Fn(&T) -> Value) -> Self {
        if !values.is_empty() {
            self.0
                .insert(key.to_owned(), values.iter().map(f).collect());
        }
        self
    }

    fn map<T>(mut self, key: &str, values: &BTreeMap<String, T>, f: impl Fn(&T) -> Value) -> Self {
        if !values.is_empty() {
            let map: Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), f(v))).collect();
            self.0.insert(key.to_owned(), Value::Object(map));
        }
        self
    }

    fn value(self) -> Value {
        Value::Object(self.0)
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `Op` as JSON.
pub fn op_to_json(op: &pb::Op) -> Value {
    use pb::op::Op as Kind;
    let obj = Obj::default()
        .list("inputs", &op.inputs, |i| {
            Obj::default()
                .str("digest", &i.digest)
                .i64("index", i.index)
                .value()
        })
        .msg("platform", op.platform.as_ref(), platform)
        .msg("constraints", op.constraints.as_ref(), |c| {
            Obj::default().strs("filter", &c.filter).value()
        });
    match &op.op {
        Some(Kind::Exec(e)) => obj.msg("exec", Some(e), exec),
        Some(Kind::Source(s)) => obj.msg("source", Some(s), |s| {
            Obj::default()
                .str("identifier", &s.identifier)
                .map("attrs", &s.attrs, |v| json!(v))
                .value()
        }),
        Some(Kind::File(f)) => obj.msg("file", Some(f), |f| {
            Obj::default()
                .list("actions", &f.actions, file_action)
                .value()
        }),
        Some(Kind::Build(b)) => obj.msg("build", Some(b), |b| {
            Obj::default()
                .i64("builder", b.builder)
                .map("inputs", &b.inputs, |i| {
                    Obj::default().i64("input", i.input).value()
                })
                .msg("def", b.def.as_ref(), definition_to_json)
                .map("attrs", &b.attrs, |v| json!(v))
                .value()
        }),
        Some(Kind::Merge(m)) => obj.msg("merge", Some(m), |m| {
            Obj::default()
                .list("inputs", &m.inputs, |i| {
                    Obj::default().i64("input", i.input).value()
                })
                .value()
        }),
        Some(Kind::Diff(d)) => obj.msg("diff", Some(d), |d| {
            Obj::default()
                .msg("lower", d.lower.as_ref(), |l| {
                    Obj::default().i64("input", l.input).value()
                })
                .msg("upper", d.upper.as_ref(), |u| {
                    Obj::default().i64("input", u.input).value()
                })
                .value()
        }),
        None => obj,
    }
    .value()
}

fn platform(p: &pb::Platform) -> Value {
    Obj::default()
        .str("Architecture", &p.architecture)
        .str("OS", &p.os)
        .str("Variant", &p.variant)
        .str("OSVersion", &p.os_version)
        .strs("OSFeatures", &p.os_features)
        .value()
}

fn exec(e: &pb::ExecOp) -> Value {
    Obj::default()
        .msg("meta", e.meta.as_ref(), meta)
        .list("mounts", &e.mounts, mount)
        .enumeration(
            "network",
            e.network,
            pb::NetMode::try_from(e.network)
                .ok()
                .map(|m| m.as_str_name()),
        )
        .enumeration(
            "security",
            e.security,
            pb::SecurityMode::try_from(e.security)
                .ok()
                .map(|m| m.as_str_name()),
        )
        .list("secretenv", &e.secretenv, |s| {
            Obj::default()
                .str("ID", &s.id)
                .str("name", &s.name)
                .bool("optional", s.optional)
                .value()
        })
        .list("cdiDevices", &e.cdi_devices, |d| {
            Obj::default()
                .str("name", &d.name)
                .bool("optional", d.optional)
                .value()
        })
        .value()
}

fn meta(m: &pb::Meta) -> Value {
    Obj::default()
        .strs("args", &m.args)
        .strs("env", &m.env)
        .str("cwd", &m.cwd)
        .str("user", &m.user)
        .msg("proxy_env", m.proxy_env.as_ref(), |p| {
            Obj::default()
                .str("http_proxy", &p.http_proxy)
                .str("https_proxy", &p.https_proxy)
                .str("ftp_proxy", &p.ftp_proxy)
                .str("no_proxy", &p.no_proxy)
                .str("all_proxy", &p.all_proxy)
                .value()
        })
        .list("extraHosts", &m.extra_hosts, |h| {
            Obj::default().str("Host", &h.host).str("IP", &h.ip).value()
        })
        .str("hostname", &m.hostname)
        .list("ulimit", &m.ulimit, |u| {
            Obj::default()
                .str("Name", &u.name)
                .i64("Soft", u.soft)
                .i64("Hard", u.hard)
                .value()
        })
        .str("cgroupParent", &m.cgroup_parent)
        .bool("removeMountStubsRecursive", m.remove_mount_stubs_recursive)
        .list("validExitCodes", &m.valid_exit_codes, |c| json!(c))
        .value()
}

fn mount(m: &pb::Mount) -> Value {
    let secret_like = |id: &str, uid: u32, gid: u32, mode: u32, optional: bool| {
        Obj::default()
            .str("ID", id)
            .i32("uid", uid)
            .i32("gid", gid)
            .i32("mode", mode)
            .bool("optional", optional)
            .value()
    };
    Obj::default()
        .i64("input", m.input)
        .str("selector", &m.selector)
        .str("dest", &m.dest)
        .i64("output", m.output)
        .bool("readonly", m.readonly)
        .enumeration(
            "mountType",
            m.mount_type,
            pb::MountType::try_from(m.mount_type)
                .ok()
                .map(|t| t.as_str_name()),
        )
        .msg("TmpfsOpt", m.tmpfs_opt.as_ref(), |t| {
            Obj::default().i64("size", t.size).value()
        })
        .msg("cacheOpt", m.cache_opt.as_ref(), |c| {
            Obj::default()
                .str("ID", &c.id)
                .enumeration(
                    "sharing",
                    c.sharing,
                    pb::CacheSharingOpt::try_from(c.sharing)
                        .ok()
                        .map(|s| s.as_str_name()),
                )
                .value()
        })
        .msg("secretOpt", m.secret_opt.as_ref(), |s| {
            secret_like(&s.id, s.uid, s.gid, s.mode, s.optional)
        })
        .msg("SSHOpt", m.ssh_opt.as_ref(), |s| {
            secret_like(&s.id, s.uid, s.gid, s.mode, s.optional)
        })
        .str("resultID", &m.result_id)
        .enumeration(
            "contentCache",
            m.content_cache,
            pb::MountContentCache::try_from(m.content_cache)
                .ok()
                .map(|c| c.as_str_name()),
        )
        .value()
}

fn chown(c: &pb::ChownOpt) -> Value {
    let user = |u: &pb::UserOpt| match &u.user {
        Some(pb::user_opt::User::ByName(n)) => {
            json!({ "byName": Obj::default().str("name", &n.name).i64("input", n.input).value() })
        }
        Some(pb::user_opt::User::ById(id)) => json!({ "byID": id }),
        None => json!({}),
    };
    Obj::default()
        .msg("user", c.user.as_ref(), user)
        .msg("group", c.group.as_ref(), user)
        .value()
}

fn file_action(a: &pb::FileAction) -> Value {
    use pb::file_action::Action;
    let obj = Obj::default()
        .i64("input", a.input)
        .i64("secondaryInput", a.secondary_input)
        .i64("output", a.output);
    match &a.action {
        Some(Action::Copy(c)) => obj.msg("copy", Some(c), |c| {
            Obj::default()
                .str("src", &c.src)
                .str("dest", &c.dest)
                .msg("owner", c.owner.as_ref(), chown)
                .i32("mode", c.mode)
                .bool("followSymlink", c.follow_symlink)
                .bool("dirCopyContents", c.dir_copy_contents)
                .bool(
                    "attemptUnpackDockerCompatibility",
                    c.attempt_unpack_docker_compatibility,
                )
                .bool("createDestPath", c.create_dest_path)
                .bool("allowWildcard", c.allow_wildcard)
                .bool("allowEmptyWildcard", c.allow_empty_wildcard)
                .i64("timestamp", c.timestamp)
                .strs("include_patterns", &c.include_patterns)
                .strs("exclude_patterns", &c.exclude_patterns)
                .bool(
                    "alwaysReplaceExistingDestPaths",
                    c.always_replace_existing_dest_paths,
                )
                .str("modeStr", &c.mode_str)
                .strs("required_paths", &c.required_paths)
                .value()
        }),
        Some(Action::Mkfile(m)) => obj.msg("mkfile", Some(m), |m| {
            Obj::default()
                .str("path", &m.path)
                .i32("mode", m.mode)
                .bytes("data", &m.data)
                .msg("owner", m.owner.as_ref(), chown)
                .i64("timestamp", m.timestamp)
                .value()
        }),
        Some(Action::Mkdir(m)) => obj.msg("mkdir", Some(m), |m| {
            Obj::default()
                .str("path", &m.path)
                .i32("mode", m.mode)
                .bool("makeParents", m.make_parents)
                .msg("owner", m.owner.as_ref(), chown)
                .i64("timestamp", m.timestamp)
                .value()
        }),
        Some(Action::Rm(r)) => obj.msg("rm", Some(r), |r| {
            Obj::default()
                .str("path", &r.path)
                .bool("allowNotFound", r.allow_not_found)
                .bool("allowWildcard", r.allow_wildcard)
                .value()
        }),
        Some(Action::Symlink(s)) => obj.msg("symlink", Some(s), |s| {
            Obj::default()
                .str("oldpath", &s.oldpath)
                .str("newpath", &s.newpath)
                .msg("owner", s.owner.as_ref(), chown)
                .i64("timestamp", s.timestamp)
                .value()
        }),
        None => obj,
    }
    .value()
}

/// An `OpMetadata` as JSON.
pub fn op_metadata_to_json(m: &pb::OpMetadata) -> Value {
    Obj::default()
        .bool("ignore_cache", m.ignore_cache)
        .map("description", &m.description, |v| json!(v))
        .msg("export_cache", m.export_cache.as_ref(), |e| {
            Obj::default().bool("Value", e.value).value()
        })
        .map("caps", &m.caps, |v| json!(v))
        .msg("progress_group", m.progress_group.as_ref(), |g| {
            Obj::default()
                .str("id", &g.id)
                .str("name", &g.name)
                .bool("weak", g.weak)
                .value()
        })
        .value()
}

fn position(p: &pb::Position) -> Value {
    Obj::default()
        .i32("line", p.line)
        .i32("character", p.character)
        .value()
}

/// A `Definition` as JSON (ops as base64 bytes, as protobuf's mapping has them).
pub fn definition_to_json(d: &pb::Definition) -> Value {
    Obj::default()
        .list("def", &d.def, |op| json!(base64(op)))
        .map("metadata", &d.metadata, op_metadata_to_json)
        .msg("Source", d.source.as_ref(), |s| {
            Obj::default()
                .map("locations", &s.locations, |l| {
                    Obj::default()
                        .list("locations", &l.locations, |l| {
                            Obj::default()
                                .i32("sourceIndex", l.source_index)
                                .list("ranges", &l.ranges, |r| {
                                    Obj::default()
                                        .msg("start", r.start.as_ref(), position)
                                        .msg("end", r.end.as_ref(), position)
                                        .value()
                                })
                                .value()
                        })
                        .value()
                })
                .list("infos", &s.infos, |i| {
                    Obj::default()
                        .str("filename", &i.filename)
                        .bytes("data", &i.data)
                        .msg("definition", i.definition.as_ref(), definition_to_json)
                        .str("language", &i.language)
                        .value()
                })
                .value()
        })
        .value()
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
