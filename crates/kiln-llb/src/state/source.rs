//! Source states: scratch, image, local context, git, http and OCI layout, with the
//! identifiers, attributes and caps BuildKit gives them (`client/llb/source.go`).

use std::collections::BTreeMap;

use kiln_oci::{Platform, Reference};

use super::{Node, OpKind, OpOptions, State};
use crate::caps;

/// A source op before marshalling.
#[derive(Debug)]
pub(crate) struct SourceSpec {
    pub(crate) identifier: String,
    pub(crate) attrs: BTreeMap<String, String>,
}

impl SourceSpec {
    /// Images and OCI layouts are per platform; the op records one. Other sources do not.
    pub(crate) fn platform_specific(&self) -> bool {
        self.identifier.starts_with("docker-image://")
            || self.identifier.starts_with("oci-layout://")
    }

    /// A local source without a session gets a unique id at marshal time.
    pub(crate) fn needs_unique_id(&self) -> bool {
        self.identifier.starts_with("local://") && !self.attrs.contains_key("local.session")
    }
}

fn source_state(identifier: String, attrs: BTreeMap<String, String>, options: OpOptions) -> State {
    State::from_node(
        Node {
            kind: OpKind::Source(SourceSpec { identifier, attrs }),
            options,
        },
        0,
    )
}

/// How an image reference is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// The default: use a local copy if there is one.
    #[default]
    Default,
    /// Always ask the registry.
    ForcePull,
    /// Only use what is local.
    PreferLocal,
}

/// Options of [`State::image`].
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// Op options (platform, metadata, …).
    pub op: OpOptions,
    /// Resolution mode.
    pub resolve_mode: ResolveMode,
    /// `image.recordtype`, e.g. `internal`.
    pub record_type: Option<String>,
    /// Only the first N layers.
    pub layer_limit: Option<i32>,
}

/// Options of [`State::local`].
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Op options.
    pub op: OpOptions,
    /// The client session that serves the directory.
    pub session_id: Option<String>,
    /// Only these patterns are transferred.
    pub include_patterns: Vec<String>,
    /// These patterns are not transferred (`.dockerignore`).
    pub exclude_patterns: Vec<String>,
    /// Only these paths (and what symlinks in them point to) are transferred.
    pub follow_paths: Vec<String>,
    /// Shares the transfer cache between sources with the same hint.
    pub shared_key_hint: Option<String>,
    /// A fixed unique id instead of the marshal-time one.
    pub unique_id: Option<String>,
}

/// Options of [`State::git`].
#[derive(Debug, Clone)]
pub struct GitOptions {
    /// Op options.
    pub op: OpOptions,
    /// Keep the `.git` directory.
    pub keep_git_dir: bool,
    /// Secret holding a token for HTTP auth.
    pub auth_token_secret: String,
    /// Secret holding a full HTTP auth header.
    pub auth_header_secret: String,
    /// `known_hosts` content for ssh remotes.
    pub known_ssh_hosts: Option<String>,
    /// ssh agent id to mount for ssh remotes (`default` by default).
    pub mount_ssh_sock: Option<String>,
    /// Expected commit checksum.
    pub checksum: Option<String>,
    /// Do not fetch submodules.
    pub skip_submodules: bool,
}

impl Default for GitOptions {
    fn default() -> Self {
        Self {
            op: OpOptions::default(),
            keep_git_dir: false,
            auth_token_secret: "GIT_AUTH_TOKEN".to_owned(),
            auth_header_secret: "GIT_AUTH_HEADER".to_owned(),
            known_ssh_hosts: None,
            mount_ssh_sock: None,
            checksum: None,
            skip_submodules: false,
        }
    }
}

/// Options of [`State::http`].
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Op options.
    pub op: OpOptions,
    /// Expected digest of the content.
    pub checksum: Option<String>,
    /// The file name to write.
    pub filename: Option<String>,
    /// File permissions.
    pub perm: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
    /// The secret whose value is sent as the `Authorization` header.
    pub auth_header_secret: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

/// Options of [`State::oci_layout`].
#[derive(Debug, Clone, Default)]
pub struct OciLayoutOptions {
    /// Op options.
    pub op: OpOptions,
    /// The client session that serves the layout.
    pub session_id: Option<String>,
    /// The store id within the session.
    pub store_id: Option<String>,
    /// Only the first N layers.
    pub layer_limit: Option<i32>,
}

fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_default()
}

/// A git remote split the way BuildKit's `gitutil.ParseURL` does.
fn git_remote(url: &str) -> (String, Option<String>, bool) {
    // scp-like `user@host:path` is ssh.
    let scp_like = !url.contains("://")
        && url
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
    if scp_like {
        let (user_host, path) = url.split_once(':').unwrap_or((url, ""));
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
        return (
            url.to_owned(),
            Some(format!("{host}{}", super::clean_path(&format!("/{path}")))),
            true,
        );
    }
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    let Some((scheme, rest)) = full.split_once("://") else {
        return (full, None, false);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let id = format!("{host}{}", super::clean_path(&format!("/{path}")));
    (full.clone(), Some(id), scheme == "ssh")
}

impl State {
    /// An image from a registry, `docker-image://<normalised ref>`. A reference that does
    /// not parse is kept as written (the solver reports it).
    pub fn image(reference: &str, mut options: ImageOptions) -> State {
        let reference = match reference.parse::<Reference>() {
            Ok(parsed) => parsed.tag_name_only().to_string(),
            Err(_) => reference.to_owned(),
        };
        options.op.add_cap(caps::SOURCE_IMAGE);
        let mut attrs = BTreeMap::new();
        match options.resolve_mode {
            ResolveMode::Default => {}
            ResolveMode::ForcePull => {
                attrs.insert("image.resolvemode".to_owned(), "pull".to_owned());
                options.op.add_cap(caps::SOURCE_IMAGE_RESOLVE_MODE);
            }
            ResolveMode::PreferLocal => {
                attrs.insert("image.resolvemode".to_owned(), "local".to_owned());
            }
        }
        if let Some(record_type) = options.record_type {
            attrs.insert("image.recordtype".to_owned(), record_type);
        }
        if let Some(limit) = options.layer_limit {
            attrs.insert("image.layerlimit".to_owned(), limit.to_string());
            options.op.add_cap(caps::SOURCE_IMAGE_LAYER_LIMIT);
        }
        let platform = options.op.platform.clone();
        let state = source_state(format!("docker-image://{reference}"), attrs, options.op);
        match platform {
            Some(p) => state.platform(p),
            None => state,
        }
    }

    /// A directory the client sends, `local://<name>`.
    pub fn local(name: &str, mut options: LocalOptions) -> State {
        options.op.add_cap(caps::SOURCE_LOCAL);
        let mut attrs = BTreeMap::new();
        let mut set = |key: &str, value: String, cap: &str, op: &mut OpOptions| {
            attrs.insert(key.to_owned(), value);
            op.add_cap(cap);
        };
        if let Some(session) = options.session_id {
            set(
                "local.session",
                session,
                caps::SOURCE_LOCAL_SESSION_ID,
                &mut options.op,
            );
        }
        if !options.include_patterns.is_empty() {
            set(
                "local.includepattern",
                json_list(&options.include_patterns),
                caps::SOURCE_LOCAL_INCLUDE_PATTERNS,
                &mut options.op,
            );
        }
        if !options.follow_paths.is_empty() {
            set(
                "local.followpaths",
                json_list(&options.follow_paths),
                caps::SOURCE_LOCAL_FOLLOW_PATHS,
                &mut options.op,
            );
        }
        if !options.exclude_patterns.is_empty() {
            set(
                "local.excludepatterns",
                json_list(&options.exclude_patterns),
                caps::SOURCE_LOCAL_EXCLUDE_PATTERNS,
                &mut options.op,
            );
        }
        if let Some(hint) = options.shared_key_hint {
            set(
                "local.sharedkeyhint",
                hint,
                caps::SOURCE_LOCAL_SHARED_KEY_HINT,
                &mut options.op,
            );
        }
        if let Some(unique) = options.unique_id {
            set(
                "local.unique",
                unique,
                caps::SOURCE_LOCAL_UNIQUE,
                &mut options.op,
            );
        }
        source_state(format!("local://{name}"), attrs, options.op)
    }

    /// A git repository at `reference` (branch, tag, commit, optionally `:subdir`).
    pub fn git(url: &str, reference: &str, mut options: GitOptions) -> State {
        let (full_url, id, ssh) = git_remote(url);
        let mut identifier = id.unwrap_or_else(|| url.to_owned());
        if !reference.is_empty() {
            identifier.push('#');
            identifier.push_str(reference);
        }
        let mut attrs = BTreeMap::new();
        if options.keep_git_dir {
            attrs.insert("git.keepgitdir".to_owned(), "true".to_owned());
            options.op.add_cap(caps::SOURCE_GIT_KEEP_DIR);
        }
        attrs.insert("git.fullurl".to_owned(), full_url);
        options.op.add_cap(caps::SOURCE_GIT_FULL_URL);
        if !options.auth_token_secret.is_empty() {
            attrs.insert("git.authtokensecret".to_owned(), options.auth_token_secret);
        }
        if !options.auth_header_secret.is_empty() {
            attrs.insert(
                "git.authheadersecret".to_owned(),
                options.auth_header_secret,
            );
        }
        if ssh {
            if let Some(hosts) = options.known_ssh_hosts {
                attrs.insert("git.knownsshhosts".to_owned(), hosts);
            }
            options.op.add_cap(caps::SOURCE_GIT_KNOWN_SSH_HOSTS);
            attrs.insert(
                "git.mountsshsock".to_owned(),
                options
                    .mount_ssh_sock
                    .unwrap_or_else(|| "default".to_owned()),
            );
            options.op.add_cap(caps::SOURCE_GIT_MOUNT_SSH_SOCK);
        }
        if let Some(checksum) = options.checksum {
            attrs.insert("git.checksum".to_owned(), checksum);
            options.op.add_cap(caps::SOURCE_GIT_CHECKSUM);
        }
        if options.skip_submodules {
            attrs.insert("git.skipsubmodules".to_owned(), "true".to_owned());
            options.op.add_cap(caps::SOURCE_GIT_SKIP_SUBMODULES);
        }
        options.op.add_cap(caps::SOURCE_GIT);
        source_state(format!("git://{identifier}"), attrs, options.op)
    }

    /// A file downloaded over http(s).
    pub fn http(url: &str, mut options: HttpOptions) -> State {
        let mut attrs = BTreeMap::new();
        if let Some(checksum) = options.checksum {
            attrs.insert("http.checksum".to_owned(), checksum);
            options.op.add_cap(caps::SOURCE_HTTP_CHECKSUM);
        }
        if let Some(filename) = options.filename {
            attrs.insert("http.filename".to_owned(), filename);
        }
        if let Some(perm) = options.perm {
            attrs.insert("http.perm".to_owned(), format!("0{perm:o}"));
            options.op.add_cap(caps::SOURCE_HTTP_PERM);
        }
        if let Some(uid) = options.uid {
            attrs.insert("http.uid".to_owned(), uid.to_string());
            options.op.add_cap(caps::SOURCE_HTTP_UIDGID);
        }
        if let Some(gid) = options.gid {
            attrs.insert("http.gid".to_owned(), gid.to_string());
            options.op.add_cap(caps::SOURCE_HTTP_UIDGID);
        }
        if let Some(secret) = options.auth_header_secret {
            attrs.insert("http.authheadersecret".to_owned(), secret);
            options.op.add_cap(caps::SOURCE_HTTP_AUTH);
        }
        let headers = [
            ("accept", options.accept),
            ("user-agent", options.user_agent),
        ];
        for (name, value) in headers {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                attrs.insert(format!("http.header.{name}"), value);
                options.op.add_cap(caps::SOURCE_HTTP_HEADER);
            }
        }
        options.op.add_cap(caps::SOURCE_HTTP);
        source_state(url.to_owned(), attrs, options.op)
    }

    /// An image from an OCI layout the client serves, `oci-layout://<ref>`.
    pub fn oci_layout(reference: &str, mut options: OciLayoutOptions) -> State {
        options.op.add_cap(caps::SOURCE_OCI_LAYOUT);
        let mut attrs = BTreeMap::new();
        if let Some(session) = options.session_id {
            attrs.insert("oci.session".to_owned(), session);
        }
        if let Some(store) = options.store_id {
            attrs.insert("oci.store".to_owned(), store);
        }
        if let Some(limit) = options.layer_limit {
            attrs.insert("oci.layerlimit".to_owned(), limit.to_string());
        }
        let platform: Option<Platform> = options.op.platform.clone();
        let state = source_state(format!("oci-layout://{reference}"), attrs, options.op);
        match platform {
            Some(p) => state.platform(p),
            None => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::git_remote;

    #[test]
    fn git_identifiers() {
        assert_eq!(
            git_remote("https://github.com/moby/buildkit.git"),
            (
                "https://github.com/moby/buildkit.git".to_owned(),
                Some("github.com/moby/buildkit.git".to_owned()),
                false
            )
        );
        assert_eq!(
            git_remote("git@github.com:acme/private.git"),
            (
                "git@github.com:acme/private.git".to_owned(),
                Some("github.com/acme/private.git".to_owned()),
                true
            )
        );
        assert_eq!(
            git_remote("github.com/a/b").1.as_deref(),
            Some("github.com/a/b")
        );
    }
}
