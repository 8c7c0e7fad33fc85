//! Build contexts that are not a local directory, fetched into one: a git repository
//! at a ref (what buildx and BuildKit's Dockerfile frontend take as a git context), an
//! http(s) URL or a client's upload (`http://buildkit-session/ID`), either a tar
//! archive to unpack or a Dockerfile with an empty context.
//!
//! The embedded engine fetches on the client's machine; `kilnd` fetches what a client
//! names in its `context` attribute, as buildkitd does.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use kiln_llb::{GitRef, GitRefError};
use thiserror::Error;

/// A context that is not a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteContext {
    /// A git repository.
    Git(GitRef),
    /// A URL to download.
    Http(String),
}

impl RemoteContext {
    /// The context as a named context's value: a source the build fetches itself.
    pub fn into_named_context(self) -> crate::build::BuildContext {
        match self {
            RemoteContext::Git(git) => crate::build::BuildContext::Git {
                url: git.fetch_url(),
                reference: match git.subdir.as_str() {
                    "" => git.reference,
                    subdir => format!("{}:{subdir}", git.reference),
                },
            },
            RemoteContext::Http(url) => crate::build::BuildContext::Http(url),
        }
    }
}

/// What went wrong fetching a context.
#[derive(Debug, Error)]
pub enum ContextError {
    /// A git URL whose options do not hold together.
    #[error("build context {spec}")]
    GitRef {
        /// The context as given.
        spec: String,
        /// What is wrong with it.
        #[source]
        source: GitRefError,
    },
    /// The git binary could not be run.
    #[error("running git (is it installed?)")]
    GitMissing(#[source] io::Error),
    /// A git command failed.
    #[error("git {command} ({url}): {stderr}")]
    Git {
        /// The subcommand.
        command: String,
        /// The repository.
        url: String,
        /// What git said.
        stderr: String,
    },
    /// The checked-out commit is not the one the URL's checksum names.
    #[error("{url}: expected checksum to match {wanted}, got {found}")]
    Checksum {
        /// The repository.
        url: String,
        /// The checksum asked for.
        wanted: String,
        /// The commit fetched.
        found: String,
    },
    /// The subdirectory is missing or leaves the repository.
    #[error("{url}: {subdir:?} is not a directory inside the repository")]
    Subdir {
        /// The repository.
        url: String,
        /// The subdirectory asked for.
        subdir: String,
    },
    /// The download failed.
    #[error("downloading the build context {url}")]
    Download {
        /// The URL.
        url: String,
        /// The client's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// An archive kiln cannot decompress.
    #[error(
        "{what} is an archive compressed with {format}; kiln unpacks plain and gzip-compressed tar contexts: recompress it with gzip"
    )]
    Compression {
        /// Where the archive came from.
        what: String,
        /// `bzip2` or `xz`.
        format: &'static str,
    },
    /// The archive could not be unpacked.
    #[error("unpacking the build context {what}")]
    Unpack {
        /// Where the archive came from.
        what: String,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// Writing the fetched context.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A fetched context: its directory, and the Dockerfile when the download was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile the URL named (the context is then empty).
    pub dockerfile: Option<PathBuf>,
}

/// What a build context argument names, when it is remote: a git repository as
/// BuildKit's `ParseGitRef` reads one, else an http(s) URL.
pub fn detect(spec: &str) -> Result<Option<RemoteContext>, ContextError> {
    match GitRef::parse(spec) {
        Ok(Some(git)) => Ok(Some(RemoteContext::Git(git))),
        Err(source) => Err(ContextError::GitRef {
            spec: spec.to_owned(),
            source,
        }),
        Ok(None) if spec.starts_with("http://") || spec.starts_with("https://") => {
            Ok(Some(RemoteContext::Http(spec.to_owned())))
        }
        Ok(None) => Ok(None),
    }
}

/// Fetches a remote context under `root` (a fresh directory).
pub fn fetch(remote: &RemoteContext, root: &Path) -> Result<Fetched, ContextError> {
    fs_err::create_dir_all(root)?;
    match remote {
        RemoteContext::Git(git) => {
            let checkout = root.join("repo");
            git_checkout(git, &checkout)?;
            let context =
                subdir_of(&checkout, &git.subdir).ok_or_else(|| ContextError::Subdir {
                    url: git.fetch_url(),
                    subdir: git.subdir.clone(),
                })?;
            Ok(Fetched {
                context,
                dockerfile: None,
            })
        }
        RemoteContext::Http(url) => {
            let download = root.join("download");
            let mut response = ureq::get(url).call().map_err(|e| ContextError::Download {
                url: url.clone(),
                source: Box::new(e),
            })?;
            let mut file = fs_err::File::create(&download)?;
            io::copy(&mut response.body_mut().as_reader(), &mut file).map_err(|e| {
                ContextError::Download {
                    url: url.clone(),
                    source: Box::new(ureq::Error::Io(e)),
                }
            })?;
            drop(file);
            unpack_or_dockerfile(&download, url, root)
        }
    }
}

/// The directory `subdir` names inside `root` (a leading `/` is `root`'s): `None` when
/// it is missing, is no directory, or leaves `root` (by `..` or a symlink).
pub fn subdir_of(root: &Path, subdir: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let dir = root
        .join(subdir.trim_start_matches('/'))
        .canonicalize()
        .ok()?;
    (dir.starts_with(&root) && dir.is_dir()).then_some(dir)
}

/// A downloaded or uploaded context file at `file`: a tar archive (plain or gzip) is
/// unpacked into `root/context`; anything else is the Dockerfile, with an empty
/// context (BuildKit's Dockerfile frontend decides by the same first bytes).
pub fn unpack_or_dockerfile(file: &Path, what: &str, root: &Path) -> Result<Fetched, ContextError> {
    let context = root.join("context");
    fs_err::create_dir_all(&context)?;
    let mut head = Vec::with_capacity(1024);
    fs_err::File::open(file)?
        .take(1024)
        .read_to_end(&mut head)?;
    let compression = match head.as_slice() {
        [0x42, 0x5a, 0x68, ..] => Some("bzip2"),
        [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ..] => Some("xz"),
        _ => None,
    };
    if let Some(format) = compression {
        return Err(ContextError::Compression {
            what: what.to_owned(),
            format,
        });
    }
    let gzip = head.starts_with(&[0x1f, 0x8b, 0x08]);
    if !gzip && !is_tar_header(&head) {
        let dockerfile = root.join("Dockerfile");
        fs_err::rename(file, &dockerfile)?;
        return Ok(Fetched {
            context,
            dockerfile: Some(dockerfile),
        });
    }
    let reader = io::BufReader::new(fs_err::File::open(file)?);
    let reader: Box<dyn io::Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    // The tar crate refuses entries that would land outside `context`.
    tar::Archive::new(reader)
        .unpack(&context)
        .map_err(|source| ContextError::Unpack {
            what: what.to_owned(),
            source,
        })?;
    fs_err::remove_file(file)?;
    Ok(Fetched {
        context,
        dockerfile: None,
    })
}

/// Whether `head` starts with a tar header whose checksum holds (Go's `tar.Reader`
/// accepts the first entry of any archive that passes it).
fn is_tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    let mut header = tar::Header::new_old();
    header.as_mut_bytes().copy_from_slice(block);
    let Ok(recorded) = header.cksum() else {
        return false;
    };
    header.set_cksum();
    header.cksum().is_ok_and(|computed| computed == recorded)
}

/// Checks `git` out into `dest` with the git binary (shallow when the server can),
/// verifying its checksum, with submodules unless they are turned off, and without
/// `.git` unless it is to be kept: what BuildKit's git source does for a context.
fn git_checkout(git_ref: &GitRef, dest: &Path) -> Result<(), ContextError> {
    fs_err::create_dir_all(dest)?;
    let url = git_ref.fetch_url();
    let git = |args: &[&str]| -> Result<String, ContextError> {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(dest)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(ContextError::GitMissing)?;
        if !output.status.success() {
            return Err(ContextError::Git {
                command: args.first().copied().unwrap_or_default().to_owned(),
                url: url.clone(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    git(&["init", "-q"])?;
    let wanted = match git_ref.reference.as_str() {
        "" => "HEAD",
        reference => reference,
    };
    // Dumb-HTTP servers cannot fetch shallow: then the whole history.
    if git(&["fetch", "-q", "--depth=1", &url, wanted]).is_err() {
        git(&["fetch", "-q", &url, wanted])?;
    }
    git(&["checkout", "-q", "FETCH_HEAD"])?;
    if !git_ref.checksum.is_empty() {
        let commit = git(&["rev-parse", "HEAD"])?;
        if !commit.starts_with(&git_ref.checksum) {
            return Err(ContextError::Checksum {
                url,
                wanted: git_ref.checksum.clone(),
                found: commit,
            });
        }
    }
    if git_ref.submodules != Some(false) && dest.join(".gitmodules").is_file() {
        git(&["submodule", "update", "--init", "--recursive", "--depth=1"])?;
    }
    if git_ref.keep_git_dir != Some(true) {
        fs_err::remove_dir_all(dest.join(".git"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_git_and_http_contexts() {
        let Some(RemoteContext::Git(git)) =
            detect("https://example.com/app.git#v1.2:docker/app").unwrap()
        else {
            panic!("a git context");
        };
        assert_eq!(
            (
                git.remote.as_str(),
                git.reference.as_str(),
                git.subdir.as_str()
            ),
            ("https://example.com/app.git", "v1.2", "docker/app")
        );
        assert!(matches!(
            detect("git@github.com:me/app.git").unwrap(),
            Some(RemoteContext::Git(_))
        ));
        // Not `.git`: a download, as in BuildKit (kiln once took a fragment for git).
        assert_eq!(
            detect("https://example.com/ctx.tar.gz#main").unwrap(),
            Some(RemoteContext::Http(
                "https://example.com/ctx.tar.gz#main".into()
            ))
        );
        assert_eq!(detect("./app").unwrap(), None);
        assert_eq!(detect(".").unwrap(), None);
        assert!(detect("https://h/r.git?tag=a&branch=b").is_err());
    }

    #[test]
    fn a_download_is_an_archive_or_a_dockerfile() {
        let root = tempfile::tempdir().unwrap();
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        archive
            .append_data(&mut header, "dir/a.txt", b"abc".as_slice())
            .unwrap();
        let tar_bytes = archive.into_inner().unwrap();
        let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        io::Write::write_all(&mut gzipped, &tar_bytes).unwrap();
        for (name, body) in [
            ("plain", tar_bytes.clone()),
            ("gzip", gzipped.finish().unwrap()),
        ] {
            let dir = root.path().join(name);
            fs_err::create_dir_all(&dir).unwrap();
            fs_err::write(dir.join("download"), body).unwrap();
            let fetched = unpack_or_dockerfile(&dir.join("download"), name, &dir).unwrap();
            assert_eq!(fetched.dockerfile, None, "{name}");
            assert_eq!(
                fs_err::read_to_string(fetched.context.join("dir/a.txt")).unwrap(),
                "abc"
            );
        }
        let dir = root.path().join("dockerfile");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("download"), "FROM scratch\n").unwrap();
        let fetched = unpack_or_dockerfile(&dir.join("download"), "a URL", &dir).unwrap();
        assert_eq!(
            fs_err::read_to_string(fetched.dockerfile.unwrap()).unwrap(),
            "FROM scratch\n"
        );
        assert_eq!(fs_err::read_dir(&fetched.context).unwrap().count(), 0);
        fs_err::write(
            dir.join("download"),
            [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1],
        )
        .unwrap();
        let error = unpack_or_dockerfile(&dir.join("download"), "stdin", &dir).unwrap_err();
        assert!(error.to_string().contains("compressed with xz"), "{error}");
    }
}
