//! Errors of the Dockerfile reader, each with the lines it is about.

use std::fmt;

use thiserror::Error;

/// A position in a Dockerfile: 1-based line, 0-based character (as BuildKit counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 0-based character offset in the line.
    pub character: usize,
}

/// A range of lines (and characters) in a Dockerfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourceRange {
    /// Where the range starts.
    pub start: Position,
    /// Where the range ends (inclusive line).
    pub end: Position,
}

impl SourceRange {
    /// The range covering whole lines `start..=end`.
    pub fn lines(start: usize, end: usize) -> Self {
        Self {
            start: Position {
                line: start,
                character: 0,
            },
            end: Position {
                line: end,
                character: 0,
            },
        }
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start.line == self.end.line {
            write!(f, "line {}", self.start.line)
        } else {
            write!(f, "lines {}-{}", self.start.line, self.end.line)
        }
    }
}

/// A Dockerfile that cannot be read: a syntax error or an invalid instruction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct Error {
    /// What is wrong, in BuildKit's words where BuildKit has some.
    pub message: String,
    /// The lines of the offending instruction or directive, when known.
    pub location: Option<SourceRange>,
    /// An instruction that cannot be read (its arguments, flags or name), which
    /// BuildKit reports as `dockerfile parse error on line N: …`; other errors (the
    /// syntax of the file, conversion) show the message alone.
    pub parse_error: bool,
    /// The build checks that fired before the conversion stopped (BuildKit reports
    /// them before the error).
    pub warnings: Vec<crate::convert::LintWarning>,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: None,
            parse_error: false,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn at(message: impl Into<String>, location: SourceRange) -> Self {
        Self::new(message).with_location(location)
    }

    /// Sets the location unless one is already set (the innermost location wins).
    pub fn with_location(mut self, location: SourceRange) -> Self {
        self.location.get_or_insert(location);
        self
    }

    /// Marks the error as one in reading an instruction (see [`Error::parse_error`]).
    pub(crate) fn in_instruction(mut self) -> Self {
        self.parse_error = true;
        self
    }

    /// The first line the error is about.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.start.line)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line() {
            Some(line) if self.parse_error => {
                write!(f, "dockerfile parse error on line {line}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl From<crate::shell::ShellError> for Error {
    fn from(err: crate::shell::ShellError) -> Self {
        Self::new(err.to_string())
    }
}
