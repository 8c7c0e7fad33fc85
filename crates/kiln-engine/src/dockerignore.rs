//! Which ignore file applies to a build context, and its patterns, as BuildKit's
//! `frontend/dockerui` and moby's `patternmatcher/ignorefile` read them.

use kiln_oci::go::clean_path;
use std::path::Path;

use fs_err as fs;

/// The exclude patterns of the build context: those of the Dockerfile's own ignore
/// file (`<Dockerfile name>.dockerignore` beside it) when there is one, which wins
/// (even when empty), else those of the context's `.dockerignore`.
pub(crate) fn context_excludes(context: &Path, dockerfile: &Path) -> Vec<String> {
    let own = dockerfile.file_name().map(|name| {
        let mut name = name.to_os_string();
        name.push(".dockerignore");
        dockerfile.with_file_name(name)
    });
    own.and_then(|path| read(&path))
        .or_else(|| read(&context.join(".dockerignore")))
        .unwrap_or_default()
}

/// The patterns of a directory's `.dockerignore` (none when it has none).
pub(crate) fn dir_excludes(dir: &Path) -> Vec<String> {
    read(&dir.join(".dockerignore")).unwrap_or_default()
}

/// An ignore file's patterns; `None` when it cannot be read.
fn read(path: &Path) -> Option<Vec<String>> {
    fs::read(path).ok().map(|bytes| parse(&bytes))
}

/// An ignore file's patterns as moby's `ignorefile.ReadAll` reads them: a UTF-8
/// byte-order mark dropped; lines starting with `#` skipped (before trimming: an
/// indented `#` is a pattern); each pattern trimmed, cleaned as a path (a leading `/`
/// dropped), a `!` prefix kept apart from it.
pub fn parse(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() {
                return None;
            }
            let (invert, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut pattern = if pattern.is_empty() {
                String::new()
            } else {
                clean_path(pattern)
            };
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
            Some(if invert {
                format!("!{pattern}")
            } else {
                pattern
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_as_ignorefile_reads_them() {
        let text = "\u{feff}# comment\n  # not a comment\n\n/abs/path/\n./rel//x/../y\n! keep \n!\n*.log\n";
        assert_eq!(
            parse(text.as_bytes()),
            [
                "# not a comment",
                "abs/path",
                "rel/y",
                "!keep",
                "!",
                "*.log"
            ]
        );
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("../a/.."), "..");
    }

    #[test]
    fn the_dockerfile_own_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path();
        fs::write(context.join(".dockerignore"), "from-context\n").unwrap();
        let dockerfile = context.join("app.Dockerfile");
        assert_eq!(context_excludes(context, &dockerfile), ["from-context"]);
        fs::write(context.join("app.Dockerfile.dockerignore"), "").unwrap();
        assert!(context_excludes(context, &dockerfile).is_empty());
        fs::write(context.join("app.Dockerfile.dockerignore"), "own\n").unwrap();
        assert_eq!(context_excludes(context, &dockerfile), ["own"]);
        // Another Dockerfile's is not this one's.
        assert_eq!(
            context_excludes(context, &context.join("Dockerfile")),
            ["from-context"]
        );
    }
}
