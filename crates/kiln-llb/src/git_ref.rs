//! A git repository named by a URL, read as BuildKit's `dfgitutil.ParseGitRef` reads
//! it: the build context argument of buildx, a named context, a Dockerfile's `ADD`.
//!
//! - `https://host/repo.git#ref:subdir` and `http://…` (the path must end in `.git`),
//!   `git://host/repo`, `ssh://user@host/repo`, `user@host:repo` (scp-like);
//! - `github.com/owner/repo`, which could also be a local path (the Dockerfile frontend
//!   takes it for contexts only: see [`GitRef::indistinguishable_from_local`]);
//! - options in the fragment (`#ref:subdir`) or the query (`?ref=…&tag=…&branch=…&
//!   subdir=…&checksum=…&keep-git-dir=…&submodules=…`).

use thiserror::Error;

/// A git repository at a ref.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitRef {
    /// The repository's URL without options (`github.com/o/r` stays without a scheme).
    pub remote: String,
    /// The repository's directory name (`repo` for `…/repo.git`).
    pub short_name: String,
    /// A commit, tag or branch (`refs/tags/…`, `refs/heads/…` from the query); empty
    /// for the default branch.
    pub reference: String,
    /// The commit the ref must resolve to.
    pub checksum: String,
    /// A directory inside the repository.
    pub subdir: String,
    /// `github.com/…`: also a valid local path.
    pub indistinguishable_from_local: bool,
    /// `git://` and `http://`: fetched without encryption.
    pub unencrypted_tcp: bool,
    /// `keep-git-dir` of the query.
    pub keep_git_dir: Option<bool>,
    /// `submodules` of the query.
    pub submodules: Option<bool>,
}

/// A git URL whose options do not hold together (the messages are BuildKit's).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GitRefError {
    /// `?ref=a#b`, `?tag=…&ref=…`: two refs.
    #[error("ref conflicts: {0:?} vs {1:?}")]
    RefConflict(String, String),
    /// `?subdir=a#:b`.
    #[error("subdir conflicts: {0:?} vs {1:?}")]
    SubdirConflict(String, String),
    /// `?tag=…&branch=…`.
    #[error("branch conflicts with tag")]
    BranchAndTag,
    /// A query key given twice.
    #[error("query {0:?} has multiple values")]
    MultipleValues(String),
    /// `?ref=` and the like.
    #[error("query {0:?} has no value")]
    NoValue(String),
    /// A query key BuildKit does not know.
    #[error("unexpected query {0:?}")]
    UnexpectedQuery(String),
    /// `keep-git-dir=` or `submodules=` that is not a Go boolean.
    #[error("invalid {0} value: {1:?}")]
    NotABool(&'static str, String),
}

impl GitRef {
    /// `Ok(None)` when `spec` names no git repository; an error when it does but its
    /// options are wrong.
    pub fn parse(spec: &str) -> Result<Option<GitRef>, GitRefError> {
        if spec.starts_with("./") || spec.starts_with("../") {
            return Ok(None);
        }
        let Some(url) = split_url(spec) else {
            return Ok(None);
        };
        let mut git = GitRef {
            indistinguishable_from_local: url.scheme.is_empty(),
            unencrypted_tcp: matches!(url.scheme.as_str(), "http" | "git"),
            remote: url.remote,
            ..GitRef::default()
        };
        if matches!(url.scheme.as_str(), "http" | "https") && !url.path.ends_with(".git") {
            return Ok(None);
        }
        if let Some(fragment) = url.fragment.filter(|f| !f.is_empty()) {
            let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
            git.reference = reference.to_owned();
            git.subdir = subdir.to_owned();
        }
        let last = git.remote.rsplit('/').next().unwrap_or_default();
        git.short_name = last.strip_suffix(".git").unwrap_or(last).to_owned();
        if let Some(query) = url.query {
            git.load_query(query)?;
        }
        Ok(Some(git))
    }

    /// The URL to fetch from (`https://` before the `github.com/…` form).
    pub fn fetch_url(&self) -> String {
        if self.indistinguishable_from_local {
            format!("https://{}", self.remote)
        } else {
            self.remote.clone()
        }
    }

    fn load_query(&mut self, query: &str) -> Result<(), GitRefError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(GitRefError::MultipleValues(key.into_owned()));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        let (mut tag, mut branch) = (String::new(), String::new());
        for (key, value) in pairs {
            if value.is_empty() && !matches!(key.as_str(), "submodules" | "keep-git-dir") {
                return Err(GitRefError::NoValue(key));
            }
            match key.as_str() {
                "ref" => {
                    if !self.reference.is_empty() && self.reference != value {
                        return Err(GitRefError::RefConflict(self.reference.clone(), value));
                    }
                    self.reference = value;
                }
                "tag" => tag = value,
                "branch" => branch = value,
                "subdir" => {
                    if !self.subdir.is_empty() && self.subdir != value {
                        return Err(GitRefError::SubdirConflict(self.subdir.clone(), value));
                    }
                    self.subdir = value;
                }
                "checksum" | "commit" => self.checksum = value,
                "keep-git-dir" => self.keep_git_dir = Some(query_bool("keep-git-dir", &value)?),
                "submodules" => self.submodules = Some(query_bool("submodules", &value)?),
                _ => return Err(GitRefError::UnexpectedQuery(key)),
            }
        }
        let tagged = !tag.is_empty();
        if tagged {
            self.set_ref(prefixed("refs/tags/", tag))?;
        }
        if !branch.is_empty() {
            if tagged {
                return Err(GitRefError::BranchAndTag);
            }
            self.set_ref(prefixed("refs/heads/", branch))?;
        }
        Ok(())
    }

    fn set_ref(&mut self, reference: String) -> Result<(), GitRefError> {
        if !self.reference.is_empty() && self.reference != reference {
            return Err(GitRefError::RefConflict(self.reference.clone(), reference));
        }
        self.reference = reference;
        Ok(())
    }
}

fn prefixed(prefix: &str, name: String) -> String {
    if name.starts_with(prefix) {
        name
    } else {
        format!("{prefix}{name}")
    }
}

/// A query flag: present without a value is true, else Go's `strconv.ParseBool`.
fn query_bool(key: &'static str, value: &str) -> Result<bool, GitRefError> {
    if value.is_empty() {
        return Ok(true);
    }
    kiln_oci::go::parse_bool(value).ok_or_else(|| GitRefError::NotABool(key, value.to_owned()))
}

/// A URL split as gitutil reads it: `scheme` is empty for `github.com/…` and `ssh` for
/// the scp-like form.
struct SplitUrl<'a> {
    scheme: String,
    remote: String,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn split_url(spec: &str) -> Option<SplitUrl<'_>> {
    if spec.starts_with("github.com/") {
        let (rest, query, fragment) = split_options(spec);
        return Some(SplitUrl {
            scheme: String::new(),
            remote: rest.to_owned(),
            path: &rest["github.com".len()..],
            query,
            fragment,
        });
    }
    // `[a-zA-Z0-9]+://`
    if let Some((scheme, after)) = spec.split_once("://") {
        if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let scheme = scheme.to_ascii_lowercase();
            if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
                return None;
            }
            let (rest, query, fragment) = split_options(after);
            let path = rest.find('/').map_or("", |slash| &rest[slash..]);
            return Some(SplitUrl {
                remote: format!("{scheme}://{rest}"),
                scheme,
                path,
                query,
                fragment,
            });
        }
    }
    scp_like(spec)
}

/// `user@host:path[?query][#fragment]`, with `user` of `[A-Za-z0-9_-]` and `host` of
/// `[A-Za-z0-9.-]` (sshutil's pattern).
fn scp_like(spec: &str) -> Option<SplitUrl<'_>> {
    let (user, rest) = spec.split_once('@')?;
    let (host, _) = rest.split_once(':')?;
    let user_ok = !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !user_ok || !host_ok {
        return None;
    }
    let (whole, query, fragment) = split_options(spec);
    let path = &whole[user.len() + 1 + host.len() + 1..];
    Some(SplitUrl {
        scheme: "ssh".to_owned(),
        remote: whole.to_owned(),
        path,
        query,
        fragment,
    })
}

/// `rest?query#fragment` → its three parts (the fragment from the first `#`).
fn split_options(spec: &str) -> (&str, Option<&str>, Option<&str>) {
    let (before, fragment) = match spec.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (spec, None),
    };
    match before.split_once('?') {
        Some((rest, query)) => (rest, Some(query), fragment),
        None => (before, None, fragment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(remote: &str, short_name: &str, reference: &str, subdir: &str) -> GitRef {
        GitRef {
            remote: remote.to_owned(),
            short_name: short_name.to_owned(),
            reference: reference.to_owned(),
            subdir: subdir.to_owned(),
            ..GitRef::default()
        }
    }

    /// BuildKit v0.24's `TestParseGitRef` table.
    #[test]
    fn parses_as_buildkit_does() {
        let not_git = [
            "https://example.com/",
            "https://example.com/foo",
            "https://example.com/foo.git/",
            "https://example.com/foo.git.bar",
            "custom.xyz/moby/buildkit.git",
            "https://github.com/moby/buildkit",
            "http://github.com/docker/docker.git:#branch",
            "./.git",
            ".git",
            "./app",
            "oci-layout:///tmp/x",
        ];
        for spec in not_git {
            assert_eq!(GitRef::parse(spec), Ok(None), "{spec}");
        }
        let https = |remote: &str, short: &str, r: &str, sub: &str| git(remote, short, r, sub);
        let cases = [
            (
                "https://example.com/foo.git",
                https("https://example.com/foo.git", "foo", "", ""),
            ),
            (
                "https://example.com/foo.git#deadbeef",
                https("https://example.com/foo.git", "foo", "deadbeef", ""),
            ),
            (
                "https://example.com/foo.git#release/1.2",
                https("https://example.com/foo.git", "foo", "release/1.2", ""),
            ),
            (
                "git://example.com/foo",
                GitRef {
                    unencrypted_tcp: true,
                    ..git("git://example.com/foo", "foo", "", "")
                },
            ),
            (
                "github.com/moby/buildkit#master",
                GitRef {
                    indistinguishable_from_local: true,
                    ..git("github.com/moby/buildkit", "buildkit", "master", "")
                },
            ),
            (
                "https://foo:bar@github.com/moby/buildkit.git",
                https(
                    "https://foo:bar@github.com/moby/buildkit.git",
                    "buildkit",
                    "",
                    "",
                ),
            ),
            (
                "git@github.com:moby/buildkit",
                git("git@github.com:moby/buildkit", "buildkit", "", ""),
            ),
            (
                "git@bitbucket.org:atlassianlabs/atlassian-docker.git",
                git(
                    "git@bitbucket.org:atlassianlabs/atlassian-docker.git",
                    "atlassian-docker",
                    "",
                    "",
                ),
            ),
            (
                "https://github.com/foo/bar.git#baz/qux:quux/quuz",
                https(
                    "https://github.com/foo/bar.git",
                    "bar",
                    "baz/qux",
                    "quux/quuz",
                ),
            ),
            (
                "https://github.com/docker/docker.git#:myfolder",
                https(
                    "https://github.com/docker/docker.git",
                    "docker",
                    "",
                    "myfolder",
                ),
            ),
            (
                "https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir",
                https(
                    "https://github.com/docker/docker.git",
                    "docker",
                    "v1.0.0",
                    "/subdir",
                ),
            ),
            (
                "https://github.com/moby/buildkit.git?subdir=/subdir#v1.0.0",
                https(
                    "https://github.com/moby/buildkit.git",
                    "buildkit",
                    "v1.0.0",
                    "/subdir",
                ),
            ),
            (
                "https://github.com/moby/buildkit.git?tag=v1.0.0",
                https(
                    "https://github.com/moby/buildkit.git",
                    "buildkit",
                    "refs/tags/v1.0.0",
                    "",
                ),
            ),
            (
                "https://github.com/moby/buildkit.git?branch=v1.0",
                https(
                    "https://github.com/moby/buildkit.git",
                    "buildkit",
                    "refs/heads/v1.0",
                    "",
                ),
            ),
            (
                "git@github.com:moby/buildkit.git?subdir=/subdir#v1.0.0",
                git(
                    "git@github.com:moby/buildkit.git",
                    "buildkit",
                    "v1.0.0",
                    "/subdir",
                ),
            ),
        ];
        for (spec, want) in cases {
            let want = GitRef {
                unencrypted_tcp: want.unencrypted_tcp || spec.starts_with("http://"),
                ..want
            };
            assert_eq!(GitRef::parse(spec), Ok(Some(want)), "{spec}");
        }
        let tagged = GitRef::parse("github.com/moby/buildkit?tag=v1.0.0").unwrap();
        assert_eq!(tagged.unwrap().reference, "refs/tags/v1.0.0");
        let flags = GitRef::parse("https://h/r.git?keep-git-dir&submodules=false&checksum=abc")
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                flags.keep_git_dir,
                flags.submodules,
                flags.checksum.as_str()
            ),
            (Some(true), Some(false), "abc")
        );
        assert_eq!(flags.fetch_url(), "https://h/r.git");
        assert_eq!(
            GitRef::parse("github.com/o/r")
                .unwrap()
                .unwrap()
                .fetch_url(),
            "https://github.com/o/r"
        );
    }

    #[test]
    fn conflicting_options_are_errors() {
        let errors = [
            (
                "https://github.com/moby/buildkit.git?ref=v1.0.0#v1.2.3",
                "ref conflicts",
            ),
            (
                "https://github.com/moby/buildkit.git?ref=v1.0.0&tag=v1.2.3",
                "ref conflicts",
            ),
            (
                "https://github.com/moby/buildkit.git?tag=v1.0.0&branch=v1.0",
                "branch conflicts with tag",
            ),
            (
                "https://github.com/moby/buildkit.git?invalid=123",
                "unexpected query \"invalid\"",
            ),
            ("https://h/r.git?ref=a&ref=b", "has multiple values"),
            ("https://h/r.git?ref=", "has no value"),
            (
                "https://h/r.git?submodules=maybe",
                "invalid submodules value",
            ),
        ];
        for (spec, message) in errors {
            let error = GitRef::parse(spec).unwrap_err().to_string();
            assert!(error.contains(message), "{spec}: {error}");
        }
    }
}
