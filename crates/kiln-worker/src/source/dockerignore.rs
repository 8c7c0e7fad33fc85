//! `.dockerignore` patterns with Docker's semantics (moby/patternmatcher): `*`, `?`,
//! `[…]`, `**` for any number of directories, `!` to re-include, the last matching
//! pattern wins, and a pattern that matches a directory matches everything under it.

use crate::fsutil::match_component;

#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<String>,
    exclusion: bool,
}

/// A parsed list of ignore patterns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    patterns: Vec<Pattern>,
}

fn clean(pattern: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(part.to_owned()),
        }
    }
    out
}

fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => {
            (0..=path.len()).any(|skip| segments_match(&pattern[1..], &path[skip..]))
        }
        Some(p) => {
            !path.is_empty()
                && match_component(p, path[0])
                && segments_match(&pattern[1..], &path[1..])
        }
    }
}

impl Matcher {
    pub(crate) fn new(patterns: &[String]) -> Self {
        let patterns = patterns
            .iter()
            .filter_map(|p| {
                let p = p.trim();
                let (exclusion, p) = match p.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, p),
                };
                let segments = clean(p);
                (!segments.is_empty()).then_some(Pattern {
                    segments,
                    exclusion,
                })
            })
            .collect();
        Self { patterns }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is ignored.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut ignored = false;
        for pattern in &self.patterns {
            // The path itself, or one of its parent directories.
            let hit = (1..=parts.len()).any(|n| segments_match(&pattern.segments, &parts[..n]));
            if hit {
                ignored = !pattern.exclusion;
            }
        }
        ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> Matcher {
        Matcher::new(&patterns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn docker_semantics() {
        let ig = m(&[
            "*.log",
            "build/",
            "!build/keep.txt",
            "**/node_modules",
            "/secret",
        ]);
        assert!(ig.matches("a.log"));
        assert!(!ig.matches("dir/a.log"));
        assert!(ig.matches("build/out.o"));
        assert!(!ig.matches("build/keep.txt"));
        assert!(ig.matches("a/b/node_modules/x.js"));
        assert!(ig.matches("secret"));
        assert!(!ig.matches("src/main.c"));
        let all_but = m(&["*", "!src"]);
        assert!(all_but.matches("README"));
        assert!(!all_but.matches("src/main.c"));
    }
}
