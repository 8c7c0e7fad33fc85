//! Path patterns of LLB's local sources and copy actions, with Docker's semantics
//! (moby/patternmatcher, Go's `filepath.Match` per component): `*`, `?`, `[…]`, `**`
//! for any number of directories, `!` to re-include, the last matching pattern wins,
//! and a pattern that matches a directory matches everything under it.

/// A pattern moby/patternmatcher refuses, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub &'static str);

/// Go's `filepath.Match` for one path component, with its algorithm: the pattern is
/// cut into chunks after each run of `*`, and each chunk is matched at the leftmost
/// place it fits, never revisited, so a pattern of many `*` costs one pass per chunk
/// rather than a backtracking search that grows exponentially.
pub fn match_component(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (pattern.as_slice(), name.as_slice());
    'chunks: while !p.is_empty() {
        let (star, chunk, rest) = scan_chunk(p);
        p = rest;
        // A trailing `*` takes the rest of the component.
        if star && chunk.is_empty() {
            return true;
        }
        if let Some(left) = match_chunk(chunk, n) {
            // The last chunk must end the name.
            if left.is_empty() || !p.is_empty() {
                n = left;
                continue;
            }
        }
        if star {
            for skip in 1..=n.len() {
                if let Some(left) = match_chunk(chunk, &n[skip..]) {
                    if p.is_empty() && !left.is_empty() {
                        continue;
                    }
                    n = left;
                    continue 'chunks;
                }
            }
        }
        return false;
    }
    n.is_empty()
}

/// The next chunk of a pattern: whether a `*` comes before it, the chunk (up to the
/// next `*` outside a class), and the rest.
fn scan_chunk(mut pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while pattern.first() == Some(&'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_class = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '*' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches a chunk (no `*`) at the start of `name`; returns what is left of it.
fn match_chunk<'n>(mut chunk: &[char], mut name: &'n [char]) -> Option<&'n [char]> {
    while let Some(&first) = chunk.first() {
        match first {
            '[' => {
                let close = chunk.iter().skip(1).position(|c| *c == ']')? + 1;
                let &c = name.first()?;
                let class = &chunk[1..close];
                let (negate, class) = match class.first() {
                    Some('^' | '!') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut found = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        found |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        found |= class[i] == c;
                        i += 1;
                    }
                }
                if found == negate {
                    return None;
                }
                chunk = &chunk[close + 1..];
                name = &name[1..];
            }
            '?' => {
                name.first()?;
                chunk = &chunk[1..];
                name = &name[1..];
            }
            '\\' if chunk.len() > 1 => {
                if name.first() != Some(&chunk[1]) {
                    return None;
                }
                chunk = &chunk[2..];
                name = &name[1..];
            }
            literal => {
                if name.first() != Some(&literal) {
                    return None;
                }
                chunk = &chunk[1..];
                name = &name[1..];
            }
        }
    }
    Some(name)
}

#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<String>,
    exclusion: bool,
}

/// A parsed list of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
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

/// Whether a pattern's segments match a path's: `**` stands for any number of segments.
/// Computed forward over the path (which prefixes the pattern so far can match), so
/// many `**` cost one pass each instead of a search over every way to split the path.
fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    let mut reached = vec![false; path.len() + 1];
    reached[0] = true;
    for segment in pattern {
        let mut next = vec![false; path.len() + 1];
        if segment == "**" {
            let mut any = false;
            for (j, reach) in reached.iter().enumerate() {
                any |= *reach;
                next[j] = any;
            }
        } else {
            for (j, part) in path.iter().enumerate() {
                if reached[j] && match_component(segment, part) {
                    next[j + 1] = true;
                }
            }
        }
        reached = next;
    }
    reached[path.len()]
}

/// Why an ignore pattern is refused, in moby/patternmatcher's words.
fn invalid_pattern(pattern: &str) -> Option<&'static str> {
    let cleaned = pattern.trim();
    if cleaned.is_empty() {
        return None;
    }
    let glob = match cleaned.strip_prefix('!') {
        // `!` and `!/` clean to a bare `!`.
        Some(rest) if rest.trim_matches('/').is_empty() => {
            return Some("illegal exclusion pattern: \"!\"");
        }
        Some(rest) => rest,
        None => cleaned,
    };
    (!is_valid_glob(glob)).then_some("syntax error in pattern")
}

/// Whether Go's `filepath.Match` accepts `pattern`: every `[…]` class closed and
/// non-empty, with well-formed ranges, and no `\` at the end.
fn is_valid_glob(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    // One class member (`getEsc`): not `-` or `]`, an escape followed by a character,
    // and something after it.
    let member = |i: &mut usize| -> bool {
        match chars.get(*i) {
            None | Some('-' | ']') => return false,
            Some('\\') => {
                *i += 1;
                if *i >= chars.len() {
                    return false;
                }
            }
            _ => {}
        }
        *i += 1;
        *i < chars.len()
    };
    while i < chars.len() {
        match chars[i] {
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    if !member(&mut i) {
                        return false;
                    }
                    if chars[i] == '-' {
                        i += 1;
                        if !member(&mut i) {
                            return false;
                        }
                    }
                    ranges += 1;
                }
            }
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    true
}

impl Matcher {
    /// Parses ignore patterns, refusing the ones moby/patternmatcher refuses (a bare
    /// `!`, a malformed `[…]` class, a trailing `\`) with its message.
    pub fn parse(patterns: &[String]) -> Result<Self, PatternError> {
        if let Some(reason) = patterns.iter().find_map(|p| invalid_pattern(p)) {
            return Err(PatternError(reason));
        }
        Ok(Self::new(patterns))
    }

    /// Parses patterns without checking them (malformed ones match nothing).
    pub fn new(patterns: &[String]) -> Self {
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

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) is ignored.
    pub fn matches(&self, path: &str) -> bool {
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

    #[test]
    fn many_stars_cost_little() {
        let stars = "*".repeat(40);
        let pattern = format!("{stars}a{stars}a{stars}a{stars}b");
        let name = "a".repeat(60);
        let started = std::time::Instant::now();
        assert!(!match_component(&pattern, &name));
        assert!(match_component(&pattern, &format!("{name}b")));
        let deep: Vec<String> = (0..30)
            .map(|_| "**".to_owned())
            .chain(["x".to_owned()])
            .collect();
        let path: Vec<&str> = std::iter::repeat_n("d", 40).collect();
        assert!(!segments_match(&deep, &path));
        // Exponential backtracking took hours on these; they now take microseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn components_match_as_go_does() {
        assert!(match_component("*.txt", "a.txt"));
        assert!(match_component("a*b*c", "axxbyyc"));
        assert!(!match_component("a*b*c", "axxbyycd"));
        assert!(match_component("*c", "abcbc"));
        assert!(match_component("a*", "a"));
        assert!(match_component("\\*x", "*x"));
        assert!(!match_component("\\*x", "ax"));
        assert!(!match_component("*.txt", "a.md"));
        assert!(match_component("file?.[ch]", "file1.c"));
        assert!(match_component("[!a]x", "bx"));
    }

    #[test]
    fn patterns_patternmatcher_refuses() {
        let error = |p: &str| Matcher::parse(&[p.to_owned()]).err().map(|e| e.to_string());
        assert_eq!(
            error("!").as_deref(),
            Some("illegal exclusion pattern: \"!\"")
        );
        assert_eq!(
            error(" ! ").as_deref(),
            Some("illegal exclusion pattern: \"!\"")
        );
        for bad in ["[", "a[", "[]", "[a-", "[-a]", "x\\", "[a\\"] {
            assert_eq!(
                error(bad).as_deref(),
                Some("syntax error in pattern"),
                "{bad}"
            );
        }
        for good in ["*.log", "!keep", "[a-c]x", "[^a]", "a\\*", "**/x", "", "#c"] {
            assert_eq!(error(good), None, "{good}");
        }
    }

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
