//! `COPY`/`ADD --chmod`, read once its variables are expanded, as BuildKit's
//! `dispatchCopy` reads it: octal up to 07777, else a symbolic mode in chmod(1)'s
//! grammar (checked as `tonistiigi/dchapes-mode` parses it).

use crate::error::Error;

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal permission bits (`0755`, `4755`).
    Octal(u32),
    /// A symbolic mode (`u+x`, `go-w,a+rX`), applied to each file's own bits.
    Symbolic(String),
}

/// Parses a non-empty `--chmod` value.
pub fn parse_chmod(value: &str) -> Result<Chmod, Error> {
    let non_octal = || {
        Error::new(format!(
            "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
        ))
    };
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match u32::from_str_radix(value, 8) {
            Ok(mode) if mode <= 0o7777 => Ok(Chmod::Octal(mode)),
            _ => Err(non_octal()),
        };
    }
    // A value that starts like a number is read as one, and is not a valid one.
    if value.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(non_octal());
    }
    if is_symbolic_mode(value) {
        Ok(Chmod::Symbolic(value.to_owned()))
    } else {
        Err(Error::new("invalid syntax"))
    }
}

/// chmod(1)'s symbolic grammar: comma-separated clauses, each `[ugoa]*` followed by
/// one or more operations (`+`, `-`, `=`), each with `[rwxXstugo]*`.
fn is_symbolic_mode(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b'a' | b'u' | b'g' | b'o') {
            i += 1;
        }
        // One operation or more.
        loop {
            if !matches!(bytes.get(i), Some(b'+' | b'-' | b'=')) {
                return false;
            }
            i += 1;
            while i < bytes.len() && b"rstwXxugo".contains(&bytes[i]) {
                i += 1;
            }
            match bytes.get(i) {
                None => return true,
                Some(b',') => break,
                Some(_) => {}
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic_as_buildkit() {
        assert_eq!(parse_chmod("0755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(parse_chmod("4755").unwrap(), Chmod::Octal(0o4755));
        for ok in ["u+x", "go-w,a+r", "=rwx", "u=g", "a+rX,u+s", "u+x-w", "+t"] {
            assert_eq!(parse_chmod(ok).unwrap(), Chmod::Symbolic(ok.to_owned()));
        }
        let message = |v: &str| parse_chmod(v).unwrap_err().message;
        for numeric in ["999", "10000", "8", "0x7", "7a"] {
            assert_eq!(
                message(numeric),
                format!(
                    "invalid chmod parameter: '{numeric}'. it should be octal string and between 0 and 07777"
                )
            );
        }
        for bad in ["u", "x+", "u+q", "rwx", "abc", "u+x,", "+777"] {
            assert_eq!(message(bad), "invalid syntax", "{bad}");
        }
    }
}
