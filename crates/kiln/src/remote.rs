//! Remote build contexts, as buildx takes them: a git repository
//! (`https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://…`) is fetched with
//! git at that ref (a branch, tag or commit; `.git` left out); another http(s) URL is
//! a tarball (gzip or plain), or else a Dockerfile with an empty context.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// A context that is not a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Remote {
    /// A git repository at a ref, optionally a subdirectory of it.
    Git {
        url: String,
        reference: String,
        subdir: String,
    },
    /// A URL to download.
    Http(String),
}

/// What a build context argument names, when it is remote.
pub(crate) fn detect(spec: &str) -> Option<Remote> {
    let (url, fragment) = spec.split_once('#').unwrap_or((spec, ""));
    let is_http = url.starts_with("http://") || url.starts_with("https://");
    let is_git = url.starts_with("git://")
        || url.starts_with("git@")
        || url.starts_with("ssh://")
        || url.starts_with("github.com/")
        || (is_http && (url.ends_with(".git") || !fragment.is_empty()));
    if is_git {
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let url = if url.starts_with("github.com/") {
            format!("https://{url}")
        } else {
            url.to_owned()
        };
        return Some(Remote::Git {
            url,
            reference: reference.to_owned(),
            subdir: subdir.trim_matches('/').to_owned(),
        });
    }
    is_http.then(|| Remote::Http(spec.to_owned()))
}

/// Fetches a remote context under `root` (a fresh directory); returns the context
/// directory and, when the URL named a Dockerfile, that file.
pub(crate) fn fetch(remote: &Remote, root: &Path) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    fs_err::create_dir_all(root)?;
    match remote {
        Remote::Git {
            url,
            reference,
            subdir,
        } => {
            let checkout = root.join("repo");
            git_checkout(url, reference, &checkout)?;
            let wanted = if reference.is_empty() {
                "HEAD"
            } else {
                reference
            };
            let context = checkout.join(subdir);
            // The subdirectory must stay inside the checkout.
            let resolved = context
                .canonicalize()
                .with_context(|| format!("{url}: no directory {subdir:?} at {wanted}"))?;
            if !resolved.starts_with(checkout.canonicalize()?) || !resolved.is_dir() {
                bail!("{url}: {subdir:?} is not a directory inside the repository");
            }
            Ok((resolved, None))
        }
        Remote::Http(url) => {
            let mut response = ureq::get(url)
                .call()
                .with_context(|| format!("downloading the build context {url}"))?;
            let mut body = Vec::new();
            response
                .body_mut()
                .as_reader()
                .read_to_end(&mut body)
                .with_context(|| format!("downloading the build context {url}"))?;
            let context = root.join("context");
            fs_err::create_dir_all(&context)?;
            let tar: Option<Vec<u8>> = if body.starts_with(&[0x1f, 0x8b]) {
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(body.as_slice())
                    .read_to_end(&mut plain)
                    .with_context(|| format!("{url}: not a valid gzip archive"))?;
                Some(plain)
            } else if body.get(257..262) == Some(b"ustar".as_slice()) {
                Some(body.clone())
            } else {
                None
            };
            match tar {
                Some(tar) => {
                    tar::Archive::new(tar.as_slice())
                        .unpack(&context)
                        .with_context(|| format!("unpacking {url}"))?;
                    Ok((context, None))
                }
                None => {
                    let dockerfile = root.join("Dockerfile");
                    fs_err::write(&dockerfile, body)?;
                    Ok((context, Some(dockerfile)))
                }
            }
        }
    }
}

/// Checks `url` out at `reference` into `dest` with the git binary (shallow when the
/// server can), without `.git`: what buildx's gitutil does on the client. (LLB git
/// sources are fetched by the worker, which has its own copy of these steps.)
fn git_checkout(url: &str, reference: &str, dest: &Path) -> anyhow::Result<()> {
    fs_err::create_dir_all(dest)?;
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dest)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .context("running git (is it installed?)")?;
        if !output.status.success() {
            bail!(
                "git {} ({url}): {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    };
    git(&["init", "-q"])?;
    let wanted = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    // Dumb-HTTP servers cannot fetch shallow: then the whole history.
    if git(&["fetch", "-q", "--depth=1", url, wanted]).is_err() {
        git(&["fetch", "-q", url, wanted])?;
    }
    git(&["checkout", "-q", "FETCH_HEAD"])?;
    fs_err::remove_dir_all(dest.join(".git"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_git_and_http_contexts() {
        assert_eq!(
            detect("https://example.com/app.git#v1.2:docker/app"),
            Some(Remote::Git {
                url: "https://example.com/app.git".into(),
                reference: "v1.2".into(),
                subdir: "docker/app".into(),
            })
        );
        assert_eq!(
            detect("git@github.com:me/app.git"),
            Some(Remote::Git {
                url: "git@github.com:me/app.git".into(),
                reference: String::new(),
                subdir: String::new(),
            })
        );
        assert_eq!(
            detect("https://example.com/ctx.tar.gz"),
            Some(Remote::Http("https://example.com/ctx.tar.gz".into()))
        );
        assert_eq!(detect("./app"), None);
        assert_eq!(detect("."), None);
    }
}
