//! Remote sources: a file over http(s) (`ADD https://…`) and a git repository
//! (`ADD git@…`, `git://…#ref:subdir`), each into a snapshot of its own. Their cache
//! keys name the content: the download's digest (or the `--checksum` given), and the
//! commit the ref resolves to.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use fs_err as fs;
use kiln_llb::pb;
use sha2::{Digest as _, Sha256};

use crate::{Error, Ref, Secrets, Worker, sha256_hex};

fn attr<'a>(source: &'a pb::SourceOp, key: &str) -> Option<&'a str> {
    source.attrs.get(key).map(String::as_str)
}

/// How an http source asks for its file: the request headers it may set (BuildKit
/// sends only `Accept` and `User-Agent` of the `http.header.*` attributes, by their
/// canonical names, sorted) and the secret whose value is the `Authorization` header.
struct Request {
    url: String,
    headers: Vec<(String, String)>,
    auth_secret: Option<String>,
}

impl Request {
    fn of(source: &pb::SourceOp) -> Self {
        let mut headers: Vec<(String, String)> = source
            .attrs
            .iter()
            .filter_map(|(key, value)| {
                let name = canonical_header_key(key.strip_prefix("http.header.")?);
                ["Accept", "User-Agent"]
                    .contains(&name.as_str())
                    .then(|| (name, value.clone()))
            })
            .collect();
        headers.sort();
        Self {
            url: source.identifier.clone(),
            headers,
            auth_secret: attr(source, "http.authheadersecret")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }
    }

    /// The `Authorization` header's value, from the build's secrets.
    fn authorization(&self, secrets: &dyn Secrets) -> Result<Option<Vec<u8>>, Error> {
        let Some(id) = &self.auth_secret else {
            return Ok(None);
        };
        secrets.secret(id).map(Some).ok_or_else(|| {
            Error::Source(format!(
                "{}: the authorization header's secret {id} was not given (--secret id={id},…)",
                self.url
            ))
        })
    }

    /// Where the download is kept between computing the key and making the snapshot:
    /// one file per URL and headers.
    fn download_path(&self, worker: &Worker) -> PathBuf {
        let mut parts: Vec<&[u8]> = vec![self.url.as_bytes()];
        for (name, value) in &self.headers {
            parts.extend([name.as_bytes(), value.as_bytes()]);
        }
        worker
            .config
            .root
            .join("downloads")
            .join(sha256_hex(&parts))
    }

    /// The headers and secret as BuildKit's key names them (`AuthHeaderSecret`,
    /// `Header`), each left out when empty.
    fn key_fields(&self, json: crate::go_json::Object) -> crate::go_json::Object {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| {
                crate::go_json::Object::new()
                    .string("Name", name)
                    .string("Value", value)
                    .finish()
            })
            .collect();
        json.some_string(
            "AuthHeaderSecret",
            self.auth_secret.as_deref().unwrap_or(""),
        )
        .some(
            "Header",
            (!headers.is_empty()).then(|| crate::go_json::array(&headers)),
        )
    }
}

/// Go's `http.CanonicalHeaderKey`: each word's first letter upper case, the rest lower
/// (a key with a character outside a token is kept as it is).
fn canonical_header_key(key: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !key.bytes().all(token) {
        return key.to_owned();
    }
    let mut upper = true;
    key.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Downloads the source's file (to a temp file, renamed when complete and verified)
/// and returns its content digest.
fn download(
    worker: &Worker,
    request: &Request,
    secrets: &dyn Secrets,
    expected: Option<&str>,
) -> Result<String, Error> {
    let url = &request.url;
    let target = request.download_path(worker);
    fs::create_dir_all(target.parent().unwrap_or(Path::new("/")))?;
    let failed = |message: String| Error::Source(format!("downloading {url}: {message}"));
    let mut call = ureq::get(url);
    for (name, value) in &request.headers {
        call = call.header(name, value);
    }
    if let Some(authorization) = request.authorization(secrets)? {
        call = call.header("Authorization", authorization.as_slice());
    }
    let mut response = call.call().map_err(|e| failed(e.to_string()))?;
    let modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let temp = target.with_extension("part");
    let mut file = fs::File::create(&temp)?;
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut file, &buf[..n])?;
    }
    drop(file);
    let digest = format!("sha256:{}", kiln_store::sha256_hex(hasher));
    if let Some(expected) = expected.filter(|e| *e != digest) {
        let _ = fs::remove_file(&temp);
        return Err(failed(format!("digest mismatch {expected}: {digest}")));
    }
    fs::rename(&temp, &target)?;
    // The file keeps the server's Last-Modified time, as BuildKit's does.
    let stamp = target.with_extension("modified");
    match modified {
        Some(value) => fs::write(stamp, value)?,
        None => {
            let _ = fs::remove_file(stamp);
        }
    }
    Ok(digest)
}

/// The cache key of an http source, as BuildKit's `formatCacheKey` makes it: the file's
/// name, mode and owner, its checksum (given, or of the download), for a download the
/// server's Last-Modified, and the request's authorization secret and headers.
pub(crate) fn http_key(
    worker: &Worker,
    source: &pb::SourceOp,
    secrets: &dyn Secrets,
) -> Result<String, Error> {
    let request = Request::of(source);
    let (checksum, modified) = match attr(source, "http.checksum") {
        // Known beforehand: no download unless the step runs.
        Some(checksum) => (checksum.to_owned(), String::new()),
        None => {
            let digest = download(worker, &request, secrets, None)?;
            let stamp = request.download_path(worker).with_extension("modified");
            let modified = fs::read_to_string(stamp).unwrap_or_default();
            (digest, modified.trim().to_owned())
        }
    };
    let id = |key| {
        attr(source, key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let json = crate::go_json::Object::new()
        .string("Filename", &file_name(source))
        .raw("Perm", &perm(source).unwrap_or(0).to_string())
        .raw("UID", &id("http.uid").to_string())
        .raw("GID", &id("http.gid").to_string())
        .string("Checksum", &checksum)
        .some_string("LastModTime", &modified);
    let json = request.key_fields(json).finish();
    Ok(kiln_solver::cache_key::digest_of(json.as_bytes()))
}

/// The downloaded file's name: the one given, else the URL's last path segment, else
/// `download` (BuildKit's `getFileName`).
fn file_name(source: &pb::SourceOp) -> String {
    let url = &source.identifier;
    let from_url = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .unwrap_or("download");
    attr(source, "http.filename")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .unwrap_or(from_url)
        .to_owned()
}

/// The mode asked for the file (`http.perm`, octal as LLB writes it).
fn perm(source: &pb::SourceOp) -> Option<u32> {
    attr(source, "http.perm").and_then(|p| u32::from_str_radix(p, 8).ok())
}

/// Go's `http.ParseTime` for the usual Last-Modified format
/// (`Mon, 02 Jan 2006 15:04:05 GMT`), as Unix seconds.
fn http_time(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let days = kiln_oci::days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Puts the downloaded file into a new snapshot as `/<filename>`.
pub(crate) fn http_load(
    worker: &Worker,
    source: &pb::SourceOp,
    secrets: &dyn Secrets,
) -> Result<Ref, Error> {
    let url = &source.identifier;
    let request = Request::of(source);
    let path = request.download_path(worker);
    if !path.is_file() {
        download(worker, &request, secrets, attr(source, "http.checksum"))?;
    } else if let Some(expected) = attr(source, "http.checksum") {
        // A download left by an earlier key computation is checked like a new one.
        let actual = format!(
            "sha256:{}",
            kiln_store::sha256_hex(Sha256::new_with_prefix(fs::read(&path)?))
        );
        if actual != expected {
            return Err(Error::Source(format!(
                "downloading {url}: digest mismatch {expected}: {actual}"
            )));
        }
    }
    let name = file_name(source);
    let (snapshot, ()) = crate::new_layer(worker, None, |snapshot| {
        let dest = worker.snapshots.layer_dir(snapshot.id()).join(&name);
        fs::copy(&path, &dest)?;
        let perm = perm(source).unwrap_or(0o600);
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(perm))?;
        let id = |key| attr(source, key).and_then(|v| v.parse().ok()).unwrap_or(0);
        std::os::unix::fs::lchown(&dest, Some(id("http.uid")), Some(id("http.gid")))?;
        let modified = fs::read_to_string(path.with_extension("modified"))
            .ok()
            .and_then(|v| http_time(v.trim()));
        if let Some(seconds) = modified {
            crate::fsutil::set_times(&dest, seconds, 0)?;
        }
        Ok(())
    })?;
    Ok(Ref {
        chain: snapshot.chain,
        key: String::new(),
    })
}

/// A git source's parts: the URL to fetch, the ref and the subdirectory.
fn git_parts(source: &pb::SourceOp) -> (String, String, String) {
    let id = source.identifier.trim_start_matches("git://");
    let (remote, fragment) = id.split_once('#').unwrap_or((id, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let url = attr(source, "git.fullurl")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("https://{remote}"));
    (
        url,
        reference.to_owned(),
        subdir.trim_matches('/').to_owned(),
    )
}

fn git(dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output, Error> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| Error::Source(format!("running git (is it installed?): {e}")))
}

/// Whether `text` is a full commit hash as git prints it (BuildKit's `IsCommitSHA`).
fn is_commit(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The commit a git source's ref names and the ref the remote listed it under, as
/// BuildKit's git source resolves it: no ref is the remote's default branch (from
/// `ls-remote --symref HEAD`); then `ls-remote REF REF^{}` and, in order, the ref under
/// `refs/` as written, the branch, the tag (peeled when annotated).
fn resolve_git_ref(url: &str, reference: &str) -> Result<(String, String), Error> {
    let ls_remote = |args: &[&str]| -> Result<String, Error> {
        let mut all = vec!["ls-remote"];
        all.extend_from_slice(args);
        let output = git(None, &all)?;
        if !output.status.success() {
            return Err(Error::Source(format!(
                "failed to fetch remote {url}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let mut reference = reference.to_owned();
    if reference.is_empty() {
        let listed = ls_remote(&["--symref", url, "HEAD"])?;
        reference = listed
            .split_whitespace()
            .find_map(|word| word.strip_prefix("refs/heads/"))
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::Source(format!(
                    "could not find default branch for repository: {url}"
                ))
            })?;
    }
    let peeled = format!("{reference}^{{}}");
    let listed = ls_remote(&[url, &reference, &peeled])?;
    let partial_ref = format!("refs/{}", reference.trim_start_matches("refs/"));
    let head_ref = format!("refs/heads/{}", reference.trim_start_matches("refs/heads/"));
    let tag_ref = format!("refs/tags/{}", reference.trim_start_matches("refs/tags/"));
    let annotated_tag_ref = format!("{tag_ref}^{{}}");
    let (mut exact, mut head, mut tag) = (None, None, None);
    for line in listed.lines() {
        let (sha, name) = line.split_once('\t').unwrap_or((line, ""));
        if name == head_ref {
            head = Some(sha);
        } else if name == tag_ref || name == annotated_tag_ref {
            tag = Some(sha);
        } else if name == partial_ref {
            exact = Some(sha);
        }
    }
    // git checkout prefers a branch to a tag of the same name.
    let (sha, used) = exact
        .map(|sha| (sha, partial_ref))
        .or_else(|| head.map(|sha| (sha, head_ref)))
        .or_else(|| tag.map(|sha| (sha, tag_ref)))
        .ok_or_else(|| {
            Error::Source(format!(
                "repository does not contain ref {reference}, output: {listed:?}"
            ))
        })?;
    if !is_commit(sha) {
        return Err(Error::Source(format!("invalid commit sha {sha:?}")));
    }
    Ok((sha.to_owned(), used))
}

/// The cache key of a git source, BuildKit's: the commit (the checksum when it is one
/// and `.git` goes), with `.git` and the ref it was listed under when `.git` stays, the
/// subdirectory and whether submodules are skipped.
pub(crate) fn git_key(source: &pb::SourceOp) -> Result<String, Error> {
    let (url, reference, _) = git_parts(source);
    let keep_git_dir = attr(source, "git.keepgitdir") == Some("true");
    let checksum = attr(source, "git.checksum").unwrap_or_default();
    if !checksum.is_empty() && !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Source(format!(
            "invalid checksum {checksum} for Git URL, expected hex commit hash"
        )));
    }
    let (commit, listed_as) = if is_commit(checksum) && !keep_git_dir {
        (checksum.to_owned(), String::new())
    } else if is_commit(&reference) {
        (reference.clone(), String::new())
    } else {
        let (commit, listed_as) = resolve_git_ref(&url, &reference)?;
        if !commit.starts_with(checksum) {
            return Err(Error::Source(format!(
                "expected checksum to match {checksum}, got {commit}"
            )));
        }
        (commit, listed_as)
    };
    let fragment = source.identifier.split_once('#').map_or("", |(_, f)| f);
    let raw_subdir = fragment.split_once(':').map_or("", |(_, d)| d);
    Ok(buildkit_git_key(
        &commit,
        keep_git_dir.then_some(listed_as.as_str()),
        raw_subdir,
        attr(source, "git.skipsubmodules") == Some("true"),
    ))
}

/// BuildKit's key of a git source (`shaToCacheKey`): the commit; `.git` and the ref it
/// was listed under (`kept_as`) when `.git` stays; the subdirectory as written (none for
/// `/` or `.`); and whether submodules are skipped. Not the URL: the same commit from a
/// mirror is the same source.
fn buildkit_git_key(
    commit: &str,
    kept_as: Option<&str>,
    subdir: &str,
    skip_submodules: bool,
) -> String {
    let mut key = commit.to_owned();
    if let Some(listed_as) = kept_as {
        key.push_str(".git");
        if !listed_as.is_empty() {
            key.push('#');
            key.push_str(listed_as);
        }
    }
    let clean = kiln_oci::go::clean_path(subdir);
    if !subdir.is_empty() && clean != "/" && clean != "." {
        key.push(':');
        key.push_str(subdir);
    }
    if skip_submodules {
        key.push_str("(skip-submodules)");
    }
    key
}

/// Fetches `url` at `reference` into `dest` (shallow when the server can); `.git` is
/// removed unless `keep_git_dir`.
pub fn fetch_git(url: &str, reference: &str, dest: &Path, keep_git_dir: bool) -> Result<(), Error> {
    fs::create_dir_all(dest)?;
    let run = |args: &[&str]| -> Result<(), Error> {
        let output = git(Some(dest), args)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Source(format!(
                "git {} ({url}): {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    };
    run(&["init", "-q"])?;
    let wanted = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    // Dumb-HTTP servers cannot fetch shallow: then the whole history.
    if run(&["fetch", "-q", "--depth=1", url, wanted]).is_err() {
        run(&["fetch", "-q", url, wanted])?;
    }
    run(&["checkout", "-q", "FETCH_HEAD"])?;
    if !keep_git_dir {
        fs::remove_dir_all(dest.join(".git"))?;
    }
    Ok(())
}

/// Checks a git source out into a new snapshot (its subdirectory, when it names one).
pub(crate) fn git_load(worker: &Worker, source: &pb::SourceOp) -> Result<Ref, Error> {
    let (url, reference, subdir) = git_parts(source);
    let keep = attr(source, "git.keepgitdir") == Some("true");
    let (snapshot, ()) = crate::new_layer(worker, None, |snapshot| {
        let layer = worker.snapshots.layer_dir(snapshot.id());
        let checkout = worker
            .config
            .root
            .join("downloads")
            .join(format!("git-{}", snapshot.id()));
        let _ = fs::remove_dir_all(&checkout);
        let copied = fetch_git(&url, &reference, &checkout, keep).and_then(|()| {
            let from = crate::fsutil::resolve_in_root(&checkout, &subdir, true)?;
            if !from.is_dir() {
                return Err(Error::Source(format!(
                    "{url}: no directory {subdir:?} at {reference}"
                )));
            }
            Ok(crate::fsutil::copy_dir_contents(&from, &layer)?)
        });
        let _ = fs::remove_dir_all(&checkout);
        copied
    })?;
    Ok(Ref {
        chain: snapshot.chain,
        key: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_keys_are_buildkits() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(buildkit_git_key(commit, None, "", false), commit);
        assert_eq!(buildkit_git_key(commit, None, "/", false), commit);
        assert_eq!(buildkit_git_key(commit, None, ".", false), commit);
        assert_eq!(
            buildkit_git_key(commit, None, "docs/", true),
            format!("{commit}:docs/(skip-submodules)")
        );
        assert_eq!(
            buildkit_git_key(commit, Some("refs/heads/main"), "docs", false),
            format!("{commit}.git#refs/heads/main:docs")
        );
        assert_eq!(
            buildkit_git_key(commit, Some(""), "", false),
            format!("{commit}.git")
        );
    }

    #[test]
    fn header_keys_are_gos_canonical_ones() {
        assert_eq!(canonical_header_key("user-agent"), "User-Agent");
        assert_eq!(canonical_header_key("ACCEPT"), "Accept");
        assert_eq!(canonical_header_key("x y"), "x y");
    }

    #[test]
    fn only_accept_and_user_agent_are_sent_and_keyed_sorted() {
        let source = pb::SourceOp {
            identifier: "https://example.com/f".to_owned(),
            attrs: [
                ("http.header.user-agent", "kiln"),
                ("http.header.accept", "text/plain"),
                ("http.header.x-other", "dropped"),
                ("http.authheadersecret", "TOKEN"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        let request = Request::of(&source);
        assert_eq!(
            request.headers,
            [
                ("Accept".to_owned(), "text/plain".to_owned()),
                ("User-Agent".to_owned(), "kiln".to_owned())
            ]
        );
        assert_eq!(
            request.key_fields(crate::go_json::Object::new()).finish(),
            r#"{"AuthHeaderSecret":"TOKEN","Header":[{"Name":"Accept","Value":"text/plain"},{"Name":"User-Agent","Value":"kiln"}]}"#
        );
    }

    #[test]
    fn last_modified_times() {
        assert_eq!(
            http_time("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(http_time("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_time("yesterday"), None);
    }
}
