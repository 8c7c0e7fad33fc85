//! Heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) in RUN, COPY and ADD.

use crate::error::Error;
use crate::shell::{EmptyEnv, Lexer};

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`EOF`).
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub file_descriptor: u64,
    /// Whether the body is subject to variable expansion (no part of the delimiter quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body lines and the delimiter line.
    pub chomp: bool,
    /// The body, line endings included, without the delimiter line.
    pub content: String,
}

/// Recognises a heredoc word (`^(\d*)<<(-?)([^<]*)$` whose remainder is one shell word).
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, Error> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let (fd, rest) = word.split_at(digits);
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let mut lexer = Lexer {
        skip_unset_env: true,
        ..Lexer::default()
    };
    let words = lexer.expand_words(rest, &EmptyEnv)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    lexer.raw_quotes = true;
    let raw_words = lexer.expand_words(rest, &EmptyEnv)?;
    let [raw] = raw_words.as_slice() else {
        return Err(Error::new(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    };
    // Quotes that the unquoting pass removed mean part of the delimiter was quoted.
    let quote_count = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(Heredoc {
        name: name.clone(),
        // Go's ParseUint gives the largest value on overflow and 0 for no digits.
        file_descriptor: if fd.is_empty() {
            0
        } else {
            fd.parse().unwrap_or(u64::MAX)
        },
        expand: quote_count(name) == quote_count(raw),
        chomp,
        content: String::new(),
    }))
}

/// The heredocs a (joined) instruction line opens, in order.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, Error> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lexer::default()
    };
    // BuildKit ignores a lexing error here: the line then simply has no heredocs.
    let words = lexer.expand_words(line, &EmptyEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Strips leading tabs from every line of a `<<-` heredoc body.
pub fn chomp_heredoc_content(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_words() {
        let doc = parse_heredoc("<<EOF").unwrap().unwrap();
        assert_eq!(
            (doc.name.as_str(), doc.expand, doc.chomp),
            ("EOF", true, false)
        );
        let doc = parse_heredoc("3<<-\"E O\"").unwrap().unwrap();
        assert_eq!(
            (
                doc.name.as_str(),
                doc.expand,
                doc.chomp,
                doc.file_descriptor
            ),
            ("E O", false, true, 3)
        );
        let doc = parse_heredoc("<<E'O'F").unwrap().unwrap();
        assert_eq!((doc.name.as_str(), doc.expand), ("EOF", false));
        assert_eq!(parse_heredoc("<<").unwrap(), None);
        assert_eq!(parse_heredoc("a<<EOF").unwrap(), None);
        assert_eq!(parse_heredoc("<<a b").unwrap(), None);
    }

    #[test]
    fn escaped_quote_still_expands() {
        let doc = parse_heredoc("<<eo\\'f").unwrap().unwrap();
        assert!(doc.expand);
    }

    #[test]
    fn chomping() {
        assert_eq!(chomp_heredoc_content("\t\ta\n\tb\nc\t\n"), "a\nb\nc\t\n");
    }
}
