//! Splitting a joined instruction line into keyword, flags and the rest, and the
//! per-instruction ways of splitting the rest into arguments (BuildKit's
//! `split_command.go` and `line_parsers.go`).

use crate::error::Error;

/// BuildKit's `[\t\v\f\r ]+`.
pub(super) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits an instruction into `(keyword, flags, rest)`.
pub(super) fn split_command(line: &str) -> (String, Vec<String>, String) {
    let line = line.trim();
    match line.split_once(is_token_space) {
        None => (line.to_owned(), Vec::new(), String::new()),
        Some((keyword, rest)) => {
            let rest = rest.trim_start_matches(is_token_space);
            let (rest, flags) = extract_flags(rest);
            (keyword.to_owned(), flags, rest.trim().to_owned())
        }
    }
}

/// Takes the leading `--flag` words off `line`. Quotes are removed and a backslash keeps
/// the next byte; a word that is exactly `--` ends the flags and is dropped.
///
/// BuildKit scans bytes, not characters, so a non-ASCII byte lands in a flag as if it
/// were Latin-1; this does the same.
fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(u8),
    }
    let bytes = line.as_bytes();
    let rest_from = |pos: usize| String::from_utf8_lossy(&bytes[pos..]).into_owned();
    let is_space = |b: u8| char::from(b).is_whitespace();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut pos = 0;
    while pos < bytes.len() {
        let mut b = bytes[pos];
        match phase {
            Phase::Spaces => {
                if is_space(b) {
                    pos += 1;
                    continue;
                }
                if b != b'-' || bytes.get(pos + 1) != Some(&b'-') {
                    return (rest_from(pos), words);
                }
                phase = Phase::Word;
                continue;
            }
            Phase::Word => {
                if is_space(b) {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (rest_from(pos), words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    pos += 1;
                    continue;
                }
                if b == b'\'' || b == b'"' {
                    phase = Phase::Quote(b);
                    blank_ok = true;
                    pos += 1;
                    continue;
                }
                if b == b'\\' {
                    if pos + 1 == bytes.len() {
                        pos += 1;
                        continue;
                    }
                    pos += 1;
                    b = bytes[pos];
                }
                word.push(char::from(b));
            }
            Phase::Quote(quote) => {
                if b == quote {
                    phase = Phase::Word;
                    pos += 1;
                    continue;
                }
                if b == b'\\' {
                    if pos + 1 == bytes.len() {
                        phase = Phase::Word;
                        pos += 1;
                        continue;
                    }
                    pos += 1;
                    b = bytes[pos];
                }
                word.push(char::from(b));
            }
        }
        pos += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: splits on whitespace outside quotes, keeping quotes and
/// escapes in the words (they are processed later, with variable expansion).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut pos = 0;
    while pos < chars.len() {
        let mut ch = chars[pos];
        pos += 1;
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape at the very end is dropped; otherwise both characters stay.
                    let Some(&next) = chars.get(pos) else {
                        continue;
                    };
                    word.push(ch);
                    ch = next;
                    pos += 1;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                if ch == escape && quote != '\'' {
                    let Some(&next) = chars.get(pos) else {
                        phase = Phase::Word;
                        continue;
                    };
                    pos += 1;
                    word.push(ch);
                    ch = next;
                }
                word.push(ch);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// How an instruction's arguments are split.
pub(super) struct Args {
    pub(super) args: Vec<String>,
    pub(super) json: bool,
}

impl Args {
    fn plain(args: Vec<String>) -> Self {
        Self { args, json: false }
    }
}

/// The JSON form `["a", "b"]`: `Ok(None)` when `rest` is not a JSON array at all,
/// an error when it is one with a non-string element.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, Error> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(Error::new(
                "when using JSON array syntax, arrays must be comprised of strings only",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or the whole text as one argument.
pub(super) fn maybe_json(rest: &str) -> Result<Args, Error> {
    if rest.is_empty() {
        return Ok(Args::plain(Vec::new()));
    }
    Ok(match parse_json(rest)? {
        Some(args) => Args { args, json: true },
        None => Args::plain(vec![rest.to_owned()]),
    })
}

/// ADD, COPY, VOLUME: a JSON array, or whitespace-separated words.
pub(super) fn maybe_json_to_list(rest: &str) -> Result<Args, Error> {
    Ok(match parse_json(rest)? {
        Some(args) => Args { args, json: true },
        None => Args::plain(whitespace_delimited(rest)),
    })
}

/// FROM, EXPOSE: whitespace-separated words.
pub(super) fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_token_space)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// MAINTAINER, USER, WORKDIR, STOPSIGNAL: the whole text as one argument.
pub(super) fn whole(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_owned()]
    }
}

/// ENV and LABEL: `key value` (legacy) or `key=value …`, flattened to
/// `[key, value, separator]` triples, the separator being `=` or empty for legacy.
pub(super) fn name_values(rest: &str, escape: char, keyword: &str) -> Result<Vec<String>, Error> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, is_token_space);
        let key = parts.next().unwrap_or_default();
        let Some(value) = parts.next() else {
            return Err(Error::new(format!("{keyword} must have two arguments")));
        };
        let value = value.trim_start_matches(is_token_space);
        return Ok(vec![key.to_owned(), value.to_owned(), String::new()]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(Error::new(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                crate::quote::go_quote(word)
            )));
        };
        out.extend([key.to_owned(), value.to_owned(), "=".to_owned()]);
    }
    Ok(out)
}

/// HEALTHCHECK: the type word (`CMD`, `NONE`, …), then the command as for CMD.
pub(super) fn health_config(rest: &str) -> Result<Args, Error> {
    let Some((kind, command)) = split_first_word(rest) else {
        return Ok(Args::plain(Vec::new()));
    };
    let mut parsed = maybe_json(command)?;
    parsed.args.insert(0, kind.to_owned());
    Ok(parsed)
}

/// Splits at the first whitespace byte, as BuildKit's byte loop does (a Latin-1 view of
/// each byte); `None` for empty input.
fn split_first_word(rest: &str) -> Option<(&str, &str)> {
    let is_space = |b: &u8| char::from(*b).is_whitespace();
    let bytes = rest.as_bytes();
    let sep = bytes.iter().position(is_space).unwrap_or(bytes.len());
    if sep == 0 {
        return None;
    }
    let next = bytes[sep..]
        .iter()
        .position(|b| !is_space(b))
        .map_or(bytes.len(), |n| sep + n);
    // Bytes 0x85 and 0xA0 count as blanks too; never cut inside a character.
    let (Some(kind), Some(command)) = (rest.get(..sep), rest.get(next..)) else {
        return Some((rest, ""));
    };
    Some((kind, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_off_the_front() {
        let (k, f, r) = split_command("COPY --from=a --chown=\"x y\" -- --b c");
        assert_eq!((k.as_str(), r.as_str()), ("COPY", "--b c"));
        assert_eq!(f, ["--from=a", "--chown=x y"]);
        let (_, f, r) = split_command("RUN --mount=type=cache,target=/x\\ y echo");
        assert_eq!(
            (f, r.as_str()),
            (vec!["--mount=type=cache,target=/x y".to_owned()], "echo")
        );
        let (_, f, r) = split_command("CMD --doit");
        assert_eq!((f, r.as_str()), (vec!["--doit".to_owned()], ""));
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"abc="123 456" def"#, '\\'),
            [r#"abc="123 456""#, "def"]
        );
        assert_eq!(parse_words(r"a\ b c\", '\\'), [r"a\ b", "c"]);
        assert_eq!(parse_words(r#"x="""#, '\\'), [r#"x="""#]);
    }

    #[test]
    fn env_forms() {
        assert_eq!(
            name_values("a b  c", '\\', "ENV").unwrap(),
            ["a", "b  c", ""]
        );
        assert_eq!(
            name_values("a=1 b=\"2 3\"", '\\', "ENV").unwrap(),
            ["a", "1", "=", "b", "\"2 3\"", "="]
        );
        assert!(name_values("PATH", '\\', "ENV").is_err());
        assert!(name_values("a=1 b", '\\', "ENV").is_err());
    }

    #[test]
    fn json_and_shell_forms() {
        let a = maybe_json(r#"["a", "b"]"#).unwrap();
        assert!(a.json);
        assert_eq!(a.args, ["a", "b"]);
        let a = maybe_json("['a']").unwrap();
        assert!(!a.json);
        assert!(maybe_json(r#"["a", ["b"]]"#).is_err());
        assert_eq!(maybe_json_to_list("a  b\tc").unwrap().args, ["a", "b", "c"]);
    }
}
