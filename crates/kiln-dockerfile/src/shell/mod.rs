//! BuildKit's shell lexer: quote and escape processing, `$VAR` / `${VAR…}` expansion
//! and word splitting, exactly as `frontend/dockerfile/shell` does it.
//!
//! The lexer never runs a shell: it expands words the way the Dockerfile frontend does
//! before a value is used (ENV, ARG, COPY paths, WORKDIR, …). It also records which
//! variables a word referred to, found or not, for unused-ARG checks and cache keys.

mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use thiserror::Error;

pub(crate) use self::pattern::is_go_digit;
use self::pattern::{Pattern, go_replace_all};

/// A failure to expand a word.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("failed to process {word:?}: {reason}")]
pub struct ShellError {
    /// The word being expanded.
    pub word: String,
    /// What went wrong, in BuildKit's words.
    pub reason: String,
}

/// Where the lexer looks variables up.
pub trait Env {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// An ordered list of `(name, value)`; the last definition of a name wins.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// The empty environment: every variable is unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn get(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// What expanding one word produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The word with quotes and escapes processed and variables expanded, unsplit.
    pub word: String,
    /// The same, split into words after expansion (quoted text never splits).
    pub words: Vec<String>,
    /// Variables the word referred to that were set.
    pub matched: BTreeSet<String>,
    /// Variables the word referred to that were unset.
    pub unmatched: BTreeSet<String>,
}

/// The shell lexer with its options; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character: `\` or, after `# escape=``, a backtick.
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as they are written.
    pub skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer with BuildKit's default options and the given escape character.
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` against `env`, returning the unsplit word, the split words and the
    /// variables used.
    pub fn process(&self, word: &str, env: &(impl Env + ?Sized)) -> Result<Expansion, ShellError> {
        let mut state = WordState {
            lexer: self,
            env: &Dyn(env),
            chars: word.chars().collect(),
            pos: 0,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        // Go's text/scanner drops a byte-order mark at the very start.
        if state.chars.first() == Some(&'\u{feff}') {
            state.pos = 1;
        }
        match state.process_until(None, self.raw_escapes) {
            Ok((word, words)) => Ok(Expansion {
                word,
                words,
                matched: state.matched,
                unmatched: state.unmatched,
            }),
            Err(reason) => Err(ShellError {
                word: word.to_owned(),
                reason,
            }),
        }
    }

    /// Expands `word` to a single string (no word splitting).
    pub fn expand(&self, word: &str, env: &(impl Env + ?Sized)) -> Result<String, ShellError> {
        self.process(word, env).map(|e| e.word)
    }

    /// Expands `word` and splits the result into words.
    pub fn expand_words(
        &self,
        word: &str,
        env: &(impl Env + ?Sized),
    ) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|e| e.words)
    }
}

/// Lets `WordState` hold any `Env`, sized or not, behind one reference type.
struct Dyn<'a, E: ?Sized>(&'a E);

impl<E: Env + ?Sized> Env for Dyn<'_, E> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }
}

/// Collects split words the way BuildKit's `wordsStruct` does.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct WordState<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type Step<T> = Result<T, String>;

impl WordState<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(value) => {
                self.matched.insert(name.to_owned());
                Some(value.to_owned())
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    /// Processes characters until `stop` (consumed) or the end of input.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        let saved_raw_escapes = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let outcome = self.process_until_inner(stop);
        self.raw_escapes = saved_raw_escapes;
        outcome
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' if quotes => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if quotes => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape character escapes the next one; at the end it vanishes.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Step<String> {
        // Everything up to the next single quote is literal; a single quote cannot be escaped.
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_owned(),
                    );
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Step<String> {
        // Everything up to the next double quote is literal except `$` expansions and the
        // escapes of `"`, `$` and the escape character itself.
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next)
                                if next == '"' || next == '$' || next == self.lexer.escape =>
                            {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Step<String> {
        self.pos += 1; // the `$`
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the `{`
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_owned()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut op) = self.next() else {
            return Err("syntax error: missing '}'".to_owned());
        };
        let mut op_text = op.to_string();
        match op {
            '}' => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = op == ':';
                if null_is_unset {
                    // Go's scanner yields EOF (-1) here; any char that follows is the operator.
                    match self.next() {
                        Some(ch) => {
                            op = ch;
                            op_text.push(ch);
                        }
                        None => return Err("syntax error: missing '}'".to_owned()),
                    }
                }
                let raw_escapes = op == '#' || op == '%';
                let (word, _) = self.process_until(Some('}'), raw_escapes).map_err(|err| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_owned()
                    } else {
                        err
                    }
                })?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{op_text}{word}}}"));
                }
                let empty_or_unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    '-' => Ok(if empty_or_unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty_or_unset { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    '%' | '#' => {
                        // `#`/`%` remove the shortest match, `##`/`%%` the longest.
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let value = value.unwrap_or_default();
                        if op == '%' {
                            trim_suffix(pattern, &value, greedy)
                        } else {
                            trim_prefix(pattern, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({op_text}) in substitution")),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.pos += 1;
                }
                let (pattern, _) = self.process_until(Some('/'), true).map_err(|err| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_owned()
                    } else {
                        err
                    }
                })?;
                let (replacement, _) = self.process_until(Some('}'), true).map_err(|err| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_owned()
                    } else {
                        err
                    }
                })?;
                let value = self.get_env(&name);
                if self.lexer.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                replace(
                    &pattern,
                    &value.unwrap_or_default(),
                    &replacement,
                    replace_all,
                )
            }
            _ => Err(format!("unsupported modifier ({op_text}) in substitution")),
        }
    }

    /// Reads a variable name: digits (positional), one special parameter, or a run of
    /// letters, digits and `_`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(d) = self.peek().filter(|c| is_go_digit(*c)) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(pattern::is_go_letter(ch) || is_go_digit(ch) || ch == '_') {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }
}

fn invalid_pattern(pattern: &str, err: &str) -> String {
    format!("invalid pattern ({pattern}) in substitution: {err}")
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Step<String> {
    let compiled = Pattern::parse(pattern).map_err(|e| invalid_pattern(pattern, &e))?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match compiled.match_at(&chars, 0, greedy) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_owned(),
    })
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Step<String> {
    // A leftmost search on the reversed pattern and value finds the rightmost suffix.
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&pattern::reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn replace(pattern: &str, value: &str, replacement: &str, all: bool) -> Step<String> {
    let compiled = Pattern::parse(pattern).map_err(|e| invalid_pattern(pattern, &e))?;
    let chars: Vec<char> = value.chars().collect();
    if all {
        return Ok(go_replace_all(&compiled, &chars, replacement));
    }
    Ok(match compiled.find(&chars, 0) {
        Some((start, end)) => {
            let mut out: String = chars[..start].iter().collect();
            out.push_str(replacement);
            out.extend(&chars[end..]);
            out
        }
        None => value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [("FOO", "foo/bar.tar.gz"), ("EMPTY", ""), ("SP", " a  b ")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expand(word: &str) -> Result<String, ShellError> {
        Lexer::default().expand(word, &env())
    }

    #[test]
    fn pattern_modifiers() {
        assert_eq!(expand("${FOO#*/}").unwrap(), "bar.tar.gz");
        assert_eq!(expand("${FOO##*.}").unwrap(), "gz");
        assert_eq!(expand("${FOO%.*}").unwrap(), "foo/bar.tar");
        assert_eq!(expand("${FOO%%.*}").unwrap(), "foo/bar");
        assert_eq!(expand("${FOO/a/A}").unwrap(), "foo/bAr.tar.gz");
        assert_eq!(expand("${FOO//a/A}").unwrap(), "foo/bAr.tAr.gz");
        assert_eq!(expand("${FOO/\\//-}").unwrap(), "foo-bar.tar.gz");
        assert_eq!(expand("${FOO#nomatch}").unwrap(), "foo/bar.tar.gz");
        assert_eq!(expand("${FOO/?/X}").unwrap(), "Xoo/bar.tar.gz");
        assert!(expand("${FOO#\\a}").is_err());
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(expand("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(expand("${EMPTY-d}").unwrap(), "");
        assert_eq!(expand("${UNSET+x}").unwrap(), "");
        assert_eq!(expand("${EMPTY+x}").unwrap(), "x");
        let err = expand("${EMPTY:?must be set}").unwrap_err();
        assert_eq!(err.reason, "EMPTY: must be set");
        assert!(expand("${FOO").is_err());
        assert!(expand("${FOO:=x}").is_err());
    }

    #[test]
    fn tracks_used_variables() {
        let e = Lexer::default()
            .process("$FOO ${NOPE:-x} $EMPTY", &env())
            .unwrap();
        assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["EMPTY", "FOO"]);
        assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["NOPE"]);
    }

    #[test]
    fn splits_unquoted_expansions_only() {
        let words = Lexer::default()
            .expand_words("x${SP}y \"${SP}\"", &env())
            .unwrap();
        assert_eq!(words, ["x", "a", "b", "y", " a  b "]);
    }

    #[test]
    fn skip_unset_keeps_references() {
        let lexer = Lexer {
            skip_unset_env: true,
            ..Lexer::default()
        };
        assert_eq!(
            lexer.expand("$A ${B} ${C:-x}", &EmptyEnv).unwrap(),
            "$A ${B} ${C:-x}"
        );
    }

    #[test]
    fn nested_and_unicode_words() {
        let env: Vec<(String, String)> = vec![
            ("PWD".into(), "/home".into()),
            ("KOREAN".into(), "한국어".into()),
        ];
        let ok = |word: &str, want: &str| {
            assert_eq!(Lexer::default().expand(word, &env).unwrap(), want, "{word}")
        };
        let err = |word: &str| assert!(Lexer::default().expand(word, &env).is_err(), "{word}");
        ok("he${XXX:-\\$PWD:}xx", "he$PWD:xx");
        ok("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx");
        ok("안'녕'하세요", "안녕하세요");
        ok("안${KOREAN}", "안한국어");
        ok("${aaa}}", "}");
        ok("${aaa:-bbb}}", "bbb}");
        ok("${aaa:-${bbb:-ccc}}", "ccc");
        ok("$@@@", "@@");
        ok("$001aaa", "aaa");
        err("안'녕하세요");
        err("${aaa:-${bbb:-ccc}");
        err("${{aaa:-bbb}");
    }

    #[test]
    fn backtick_escape() {
        let lexer = Lexer::new('`');
        assert_eq!(
            lexer.expand("a`$FOO c:\\dir", &env()).unwrap(),
            "a$FOO c:\\dir"
        );
    }
}
