//! Image references, normalised as Docker does (`alpine` is
//! `docker.io/library/alpine:latest`).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A normalised image reference: registry domain, repository path, tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The registry, e.g. `docker.io`, `localhost:5000`.
    pub domain: String,
    /// The repository path, e.g. `library/alpine`.
    pub path: String,
    /// The tag, if given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), if given.
    pub digest: Option<String>,
}

/// A reference that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid reference format {input:?}: {reason}")]
pub struct ReferenceError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Reference {
    /// The repository with its domain, e.g. `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The reference with `:latest` added when it has neither tag nor digest
    /// (Docker's `TagNameOnly`).
    pub fn tag_name_only(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_owned());
        }
        self
    }

    /// The short form Docker shows: `alpine:3.20` rather than `docker.io/library/alpine:3.20`.
    pub fn familiar(&self) -> String {
        let mut out = if self.domain == "docker.io" {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.name()
        };
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

fn is_path_component(c: &str) -> bool {
    // [a-z0-9]+ separated by `.`, `_`, `__` or one or more `-`.
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let dashes = sep.bytes().all(|b| b == b'-');
        if !(sep == "." || sep == "_" || sep == "__" || dashes) {
            return false;
        }
    }
    true
}

fn is_domain(d: &str) -> bool {
    let host = match d.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || d.starts_with('[') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            host
        }
        _ => d,
    };
    if host.starts_with('[') {
        return host.ends_with(']') && host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Docker's `ParseNormalizedNamed`.
    fn from_str(input: &str) -> Result<Self, ReferenceError> {
        let error = |reason| ReferenceError {
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(error("empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let (algo, hex) = digest
                    .split_once(':')
                    .ok_or_else(|| error("invalid digest"))?;
                let valid = !algo.is_empty()
                    && algo.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                    })
                    && hex.len() >= 32
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                if !valid {
                    return Err(error("invalid digest"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (input, None),
        };
        // A tag is after the last `:` that follows the last `/`.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.as_bytes()[0] != b'.'
                && tag.as_bytes()[0] != b'-'
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !valid {
                return Err(error("invalid tag"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io".to_owned()
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(error("repository name must be lowercase"));
        }
        if !is_domain(&domain) {
            return Err(error("invalid domain"));
        }
        if !path.split('/').all(is_path_component) {
            return Err(error("invalid repository path"));
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(error(
                "repository name must not be more than 255 characters",
            ));
        }
        Ok(Self {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().tag_name_only().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(norm("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b:latest");
        assert_eq!(
            norm(
                "ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            "ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            "docker.io/library/alpine:3.20"
                .parse::<Reference>()
                .unwrap()
                .familiar(),
            "alpine:3.20"
        );
        for bad in ["", "Alpine", "a:b:c", "a@sha256:xyz", "a//b", "-a"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
