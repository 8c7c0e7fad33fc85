//! LLB messages as Go's `encoding/json` writes BuildKit v0.24's generated structs, byte
//! for byte: fields in declaration order under their `json` tags, `omitempty` zero
//! values left out, enums and 64-bit integers as plain numbers, `[]byte` in base64,
//! strings with Go's HTML-safe escaping, and the oneofs as `solver/pb/json.go` spells
//! them. BuildKit digests this text for its cache keys (`solver/llbsolver/ops`), so a
//! difference of one byte is a cache miss against a BuildKit cache.

use kiln_llb::pb;

/// One JSON object being written, its fields in the order they are added.
pub(crate) struct Object(String);

impl Object {
    pub(crate) fn new() -> Self {
        Self(String::from("{"))
    }

    fn key(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_string(&mut self.0, name);
        self.0.push(':');
    }

    /// A field holding already encoded JSON.
    pub(crate) fn raw(mut self, name: &str, json: &str) -> Self {
        self.key(name);
        self.0.push_str(json);
        self
    }

    pub(crate) fn string(mut self, name: &str, value: &str) -> Self {
        self.key(name);
        push_string(&mut self.0, value);
        self
    }

    /// `string` with `omitempty`.
    pub(crate) fn some_string(self, name: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.string(name, value)
        }
    }

    /// Any integer (Go enums are integers too) with `omitempty`.
    pub(crate) fn some_int(self, name: &str, value: impl Into<i64>) -> Self {
        let value = value.into();
        if value == 0 {
            self
        } else {
            self.raw(name, &value.to_string())
        }
    }

    pub(crate) fn some_uint(self, name: &str, value: u32) -> Self {
        self.some_int(name, i64::from(value))
    }

    /// `bool` with `omitempty`.
    pub(crate) fn some_bool(self, name: &str, value: bool) -> Self {
        if value { self.raw(name, "true") } else { self }
    }

    /// `[]string` with `omitempty`.
    pub(crate) fn some_strings(self, name: &str, values: &[String]) -> Self {
        if values.is_empty() {
            return self;
        }
        let items: Vec<String> = values.iter().map(|v| string(v)).collect();
        self.raw(name, &array(&items))
    }

    /// `[]byte` with `omitempty`.
    pub(crate) fn some_bytes(self, name: &str, value: &[u8]) -> Self {
        if value.is_empty() {
            self
        } else {
            self.raw(name, &bytes(value))
        }
    }

    /// A pointer or slice field with `omitempty`, already encoded when present.
    pub(crate) fn some(self, name: &str, json: Option<String>) -> Self {
        match json {
            Some(json) => self.raw(name, &json),
            None => self,
        }
    }

    pub(crate) fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A JSON array of encoded items.
pub(crate) fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// A slice field with `omitempty`: `None` when empty.
fn some_array<T>(values: &[T], encode: impl Fn(&T) -> String) -> Option<String> {
    (!values.is_empty()).then(|| array(&values.iter().map(encode).collect::<Vec<_>>()))
}

/// A Go string: `"`, `\` and control characters escaped, and, as `json.Marshal`'s
/// HTML-safe default does, `<`, `>`, `&`, U+2028 and U+2029.
pub(crate) fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_string(&mut out, value);
    out
}

fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A Go `[]byte`: standard base64 with padding, as a string.
pub(crate) fn bytes(value: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(value.len().div_ceil(3) * 4 + 2);
    out.push('"');
    for chunk in value.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('"');
    out
}

pub(crate) fn exec_op(exec: &pb::ExecOp) -> String {
    Object::new()
        .some("meta", exec.meta.as_ref().map(meta))
        .some("mounts", some_array(&exec.mounts, mount))
        .some_int("network", exec.network)
        .some_int("security", exec.security)
        .some(
            "secretenv",
            some_array(&exec.secretenv, |s| {
                Object::new()
                    .some_string("ID", &s.id)
                    .some_string("name", &s.name)
                    .some_bool("optional", s.optional)
                    .finish()
            }),
        )
        .some(
            "cdiDevices",
            some_array(&exec.cdi_devices, |d| {
                Object::new()
                    .some_string("name", &d.name)
                    .some_bool("optional", d.optional)
                    .finish()
            }),
        )
        .finish()
}

fn meta(meta: &pb::Meta) -> String {
    Object::new()
        .some_strings("args", &meta.args)
        .some_strings("env", &meta.env)
        .some_string("cwd", &meta.cwd)
        .some_string("user", &meta.user)
        .some(
            "proxy_env",
            meta.proxy_env.as_ref().map(|p| {
                Object::new()
                    .some_string("http_proxy", &p.http_proxy)
                    .some_string("https_proxy", &p.https_proxy)
                    .some_string("ftp_proxy", &p.ftp_proxy)
                    .some_string("no_proxy", &p.no_proxy)
                    .some_string("all_proxy", &p.all_proxy)
                    .finish()
            }),
        )
        .some(
            "extraHosts",
            some_array(&meta.extra_hosts, |h| {
                Object::new()
                    .some_string("Host", &h.host)
                    .some_string("IP", &h.ip)
                    .finish()
            }),
        )
        .some_string("hostname", &meta.hostname)
        .some(
            "ulimit",
            some_array(&meta.ulimit, |u| {
                Object::new()
                    .some_string("Name", &u.name)
                    .some_int("Soft", u.soft)
                    .some_int("Hard", u.hard)
                    .finish()
            }),
        )
        .some_string("cgroupParent", &meta.cgroup_parent)
        .some_bool(
            "removeMountStubsRecursive",
            meta.remove_mount_stubs_recursive,
        )
        .some(
            "validExitCodes",
            some_array(&meta.valid_exit_codes, |c| c.to_string()),
        )
        .finish()
}

fn mount(mount: &pb::Mount) -> String {
    let owned = |id: &str, uid: u32, gid: u32, mode: u32, optional: bool| {
        Object::new()
            .some_string("ID", id)
            .some_uint("uid", uid)
            .some_uint("gid", gid)
            .some_uint("mode", mode)
            .some_bool("optional", optional)
            .finish()
    };
    Object::new()
        .some_int("input", mount.input)
        .some_string("selector", &mount.selector)
        .some_string("dest", &mount.dest)
        .some_int("output", mount.output)
        .some_bool("readonly", mount.readonly)
        .some_int("mountType", mount.mount_type)
        .some(
            "TmpfsOpt",
            mount
                .tmpfs_opt
                .as_ref()
                .map(|t| Object::new().some_int("size", t.size).finish()),
        )
        .some(
            "cacheOpt",
            mount.cache_opt.as_ref().map(|c| {
                Object::new()
                    .some_string("ID", &c.id)
                    .some_int("sharing", c.sharing)
                    .finish()
            }),
        )
        .some(
            "secretOpt",
            mount
                .secret_opt
                .as_ref()
                .map(|s| owned(&s.id, s.uid, s.gid, s.mode, s.optional)),
        )
        .some(
            "SSHOpt",
            mount
                .ssh_opt
                .as_ref()
                .map(|s| owned(&s.id, s.uid, s.gid, s.mode, s.optional)),
        )
        .some_string("resultID", &mount.result_id)
        .some_int("contentCache", mount.content_cache)
        .finish()
}

fn chown(owner: &pb::ChownOpt) -> String {
    // `solver/pb/json.go`: a user is `{"User":{"byName":…,"byId":…}}`.
    let user = |user: &pb::UserOpt| {
        use pb::user_opt::User;
        let (by_name, by_id) = match &user.user {
            Some(User::ByName(name)) => (
                Some(
                    Object::new()
                        .some_string("name", &name.name)
                        .some_int("input", name.input)
                        .finish(),
                ),
                0,
            ),
            Some(User::ById(id)) => (None, *id),
            None => (None, 0),
        };
        let inner = Object::new()
            .some("byName", by_name)
            .some_uint("byId", by_id)
            .finish();
        Object::new().raw("User", &inner).finish()
    };
    Object::new()
        .some("user", owner.user.as_ref().map(user))
        .some("group", owner.group.as_ref().map(user))
        .finish()
}

pub(crate) fn copy(copy: &pb::FileActionCopy) -> String {
    Object::new()
        .some_string("src", &copy.src)
        .some_string("dest", &copy.dest)
        .some("owner", copy.owner.as_ref().map(chown))
        .some_int("mode", copy.mode)
        .some_bool("followSymlink", copy.follow_symlink)
        .some_bool("dirCopyContents", copy.dir_copy_contents)
        .some_bool(
            "attemptUnpackDockerCompatibility",
            copy.attempt_unpack_docker_compatibility,
        )
        .some_bool("createDestPath", copy.create_dest_path)
        .some_bool("allowWildcard", copy.allow_wildcard)
        .some_bool("allowEmptyWildcard", copy.allow_empty_wildcard)
        .some_int("timestamp", copy.timestamp)
        .some_strings("include_patterns", &copy.include_patterns)
        .some_strings("exclude_patterns", &copy.exclude_patterns)
        .some_bool(
            "alwaysReplaceExistingDestPaths",
            copy.always_replace_existing_dest_paths,
        )
        .some_string("modeStr", &copy.mode_str)
        // Newer than v0.24 (which never sends it): keyed as later BuildKit's struct
        // would write it, so a copy requiring other paths is another step.
        .some_strings("required_paths", &copy.required_paths)
        .finish()
}

pub(crate) fn mkfile(mkfile: &pb::FileActionMkFile) -> String {
    Object::new()
        .some_string("path", &mkfile.path)
        .some_int("mode", mkfile.mode)
        .some_bytes("data", &mkfile.data)
        .some("owner", mkfile.owner.as_ref().map(chown))
        .some_int("timestamp", mkfile.timestamp)
        .finish()
}

pub(crate) fn mkdir(mkdir: &pb::FileActionMkDir) -> String {
    Object::new()
        .some_string("path", &mkdir.path)
        .some_int("mode", mkdir.mode)
        .some_bool("makeParents", mkdir.make_parents)
        .some("owner", mkdir.owner.as_ref().map(chown))
        .some_int("timestamp", mkdir.timestamp)
        .finish()
}

pub(crate) fn rm(rm: &pb::FileActionRm) -> String {
    Object::new()
        .some_string("path", &rm.path)
        .some_bool("allowNotFound", rm.allow_not_found)
        .some_bool("allowWildcard", rm.allow_wildcard)
        .finish()
}

pub(crate) fn symlink(symlink: &pb::FileActionSymlink) -> String {
    Object::new()
        .some_string("oldpath", &symlink.oldpath)
        .some_string("newpath", &symlink.newpath)
        .some("owner", symlink.owner.as_ref().map(chown))
        .some_int("timestamp", symlink.timestamp)
        .finish()
}

pub(crate) fn merge_op(merge: &pb::MergeOp) -> String {
    Object::new()
        .some(
            "inputs",
            some_array(&merge.inputs, |i| {
                Object::new().some_int("input", i.input).finish()
            }),
        )
        .finish()
}

pub(crate) fn diff_op(diff: &pb::DiffOp) -> String {
    Object::new()
        .some(
            "lower",
            diff.lower
                .as_ref()
                .map(|l| Object::new().some_int("input", l.input).finish()),
        )
        .some(
            "upper",
            diff.upper
                .as_ref()
                .map(|u| Object::new().some_int("input", u.input).finish()),
        )
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        assert_eq!(
            string("a\"b\\c\n<x>&\u{1}\u{2028}é"),
            r#""a\"b\\c\n\u003cx\u003e\u0026\u0001\u2028é""#
        );
    }

    #[test]
    fn bytes_are_standard_base64() {
        assert_eq!(bytes(b""), r#""""#);
        assert_eq!(bytes(b"f"), r#""Zg==""#);
        assert_eq!(bytes(b"fo"), r#""Zm8=""#);
        assert_eq!(bytes(b"foo"), r#""Zm9v""#);
        assert_eq!(bytes(b"hello\n"), r#""aGVsbG8K""#);
    }

    #[test]
    fn zero_values_are_left_out_and_present_messages_kept() {
        let mount = pb::Mount {
            dest: "/".to_owned(),
            output: 0,
            cache_opt: Some(pb::CacheOpt::default()),
            ..Default::default()
        };
        assert_eq!(super::mount(&mount), r#"{"dest":"/","cacheOpt":{}}"#);
    }
}
