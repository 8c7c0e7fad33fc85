//! The shell patterns of `${v#p}`, `${v%p}` and `${v/p/r}`: `*`, `?` and escaped literals.
//!
//! BuildKit turns a pattern into a Go regular expression (`*` → `.*` or `.*?`, `?` → `.`)
//! and lets Go's leftmost-first engine pick the match. This module matches the same way
//! without a regex engine: a depth-first search that tries alternatives in the engine's
//! priority order, memoising failed states so that no pattern takes exponential time.

use std::collections::HashSet;

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Each wildcard is one level of recursion while matching; no real pattern comes close.
const MAX_STARS: usize = 1000;

/// Go's `unicode.IsDigit`: decimal digits (category Nd) only.
pub(crate) fn is_go_digit(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_digit();
    }
    ch.general_category() == unicode_properties::GeneralCategory::DecimalNumber
}

/// Go's `unicode.IsLetter`: category L.
pub(crate) fn is_go_letter(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_alphabetic();
    }
    ch.general_category_group() == GeneralCategoryGroup::Letter
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters other than newline.
    Star,
    /// `?`: one character other than newline.
    Any,
    Literal(char),
}

/// A compiled shell pattern.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses a pattern as BuildKit does: `\*`, `\?` and `\\` are literals, `\}` and `\/`
    /// drop the escape, any other escape is an error.
    pub(super) fn parse(pattern: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(ch) = chars.next() {
            match ch {
                // `**` matches what `*` matches, in the same order of preference.
                '*' if tokens.last() == Some(&Token::Star) => {}
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Any),
                '\\' => match chars.peek().copied() {
                    Some('}' | '/') => {}
                    Some(next @ ('*' | '?' | '\\')) => {
                        chars.next();
                        tokens.push(Token::Literal(next));
                    }
                    Some(next) => return Err(format!("invalid escape '\\{next}'")),
                    None => return Err("invalid escape '\\'".to_owned()),
                },
                _ => tokens.push(Token::Literal(ch)),
            }
        }
        if tokens.iter().filter(|t| **t == Token::Star).count() > MAX_STARS {
            return Err(format!("more than {MAX_STARS} wildcards"));
        }
        Ok(Self { tokens })
    }

    /// The end of the match that starts at `start`, if any, choosing among possible ends
    /// as a leftmost-first engine would: greedy stars try the longest run first, lazy
    /// ones the shortest.
    pub(super) fn match_at(&self, text: &[char], start: usize, greedy: bool) -> Option<usize> {
        self.search(text, 0, start, greedy, &mut HashSet::new())
    }

    /// The leftmost match, with greedy stars, as `(start, end)`.
    pub(super) fn find(&self, text: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=text.len())
            .find_map(|start| self.match_at(text, start, true).map(|end| (start, end)))
    }

    /// Matches from `(token, pos)`. Only a star branches, so only a star recurses (the
    /// depth is bounded by `MAX_STARS`), and a star state that failed once is remembered.
    fn search(
        &self,
        text: &[char],
        mut token: usize,
        mut pos: usize,
        greedy: bool,
        failed: &mut HashSet<(usize, usize)>,
    ) -> Option<usize> {
        loop {
            match self.tokens.get(token) {
                None => return Some(pos),
                Some(Token::Literal(ch)) if text.get(pos) == Some(ch) => {}
                Some(Token::Any) if text.get(pos).is_some_and(|c| *c != '\n') => {}
                Some(Token::Literal(_) | Token::Any) => return None,
                Some(Token::Star) => {
                    if failed.contains(&(token, pos)) {
                        return None;
                    }
                    let run = text[pos..].iter().take_while(|c| **c != '\n').count();
                    let mut try_end = |end| self.search(text, token + 1, end, greedy, failed);
                    let found = if greedy {
                        (pos..=pos + run).rev().find_map(&mut try_end)
                    } else {
                        (pos..=pos + run).find_map(&mut try_end)
                    };
                    if found.is_none() {
                        failed.insert((token, pos));
                    }
                    return found;
                }
            }
            token += 1;
            pos += 1;
        }
    }
}

/// Reverses a pattern for a suffix search, keeping each escape before the character it
/// escapes (`a\*c` becomes `c\*a`), exactly as BuildKit's `reversePattern`.
pub(super) fn reverse_pattern(pattern: &str) -> String {
    let runes: Vec<char> = pattern.chars().collect();
    let mut out = runes.clone();
    let last = runes.len().saturating_sub(1);
    let mut i = 0;
    while i < runes.len() {
        let out_idx = last - i;
        if runes[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = runes[i + 1];
            i += 2;
        } else {
            out[out_idx] = runes[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Go's `Regexp.ReplaceAllString`: every non-overlapping leftmost match replaced, an empty
/// match right after a previous match skipped, and `$` templates in the replacement
/// expanded (the pattern has no groups, so only `$0` names anything).
pub(super) fn go_replace_all(pattern: &Pattern, text: &[char], replacement: &str) -> String {
    let mut out = String::new();
    let mut last_match_end = 0;
    let mut search_pos = 0;
    while search_pos <= text.len() {
        let Some((start, end)) = pattern.find(text, search_pos) else {
            break;
        };
        out.extend(&text[last_match_end..start]);
        if end > last_match_end || start == 0 {
            expand_template(&mut out, replacement, &text[start..end]);
        }
        last_match_end = end;
        search_pos = if search_pos + 1 > end {
            search_pos + 1
        } else {
            end
        };
    }
    out.extend(&text[last_match_end.min(text.len())..]);
    out
}

/// Go's `Regexp.Expand` for a pattern without capture groups.
fn expand_template(out: &mut String, template: &str, whole_match: &[char]) {
    let chars: Vec<char> = template.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let rest = &chars[i + 1..];
        if rest.first() == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        let is_name = |c: &char| c.is_alphanumeric() || *c == '_';
        let (name, consumed): (String, usize) = if rest.first() == Some(&'{') {
            match rest.iter().position(|c| *c == '}') {
                Some(close) if close > 1 && rest[1..close].iter().all(is_name) => {
                    (rest[1..close].iter().collect(), close + 1)
                }
                _ => (String::new(), 0),
            }
        } else {
            let len = rest.iter().take_while(|c| is_name(c)).count();
            (rest[..len].iter().collect(), len)
        };
        if consumed == 0 {
            // Not a valid reference: Go keeps the `$` literally.
            out.push('$');
            i += 1;
            continue;
        }
        if name.parse::<u64>() == Ok(0) {
            out.extend(whole_match);
        }
        i += 1 + consumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn greedy_and_lazy_prefixes() {
        let p = Pattern::parse("*/").unwrap();
        let text = chars("a/b/c");
        assert_eq!(p.match_at(&text, 0, false), Some(2));
        assert_eq!(p.match_at(&text, 0, true), Some(4));
    }

    #[test]
    fn stars_do_not_cross_newlines() {
        let p = Pattern::parse("a*").unwrap();
        assert_eq!(p.match_at(&chars("ab\nc"), 0, true), Some(2));
    }

    #[test]
    fn replace_all_with_empty_matches() {
        let p = Pattern::parse("*").unwrap();
        assert_eq!(go_replace_all(&p, &chars("abc"), "x"), "x");
        assert_eq!(go_replace_all(&p, &chars(""), "x"), "x");
        let p = Pattern::parse("b").unwrap();
        assert_eq!(go_replace_all(&p, &chars("abcb"), "[$0]"), "a[b]c[b]");
    }

    #[test]
    fn many_stars_stay_fast() {
        let p = Pattern::parse(&"*a".repeat(30)).unwrap();
        let text = chars(&"a".repeat(29));
        assert_eq!(p.match_at(&text, 0, true), None);
    }

    #[test]
    fn reverses_keeping_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern(""), "");
    }
}
