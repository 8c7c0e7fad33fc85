//! `git://…` sources (and `git@…`, `https://…#ref` git URLs): a repository at a ref into
//! a snapshot of its own, keyed by the commit the ref resolves to, as BuildKit keys it.

use std::path::Path;
use std::process::Command;

use fs_err as fs;
use kiln_llb::pb;

use super::attr;
use crate::{Error, Ref, Worker};

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
    Ok(Ref::unkeyed(snapshot.chain))
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
}
