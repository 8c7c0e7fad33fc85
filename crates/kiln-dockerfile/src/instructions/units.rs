//! Go's `encoding/csv`, for `--mount` options (sizes and durations: `kiln_oci::go`).

/// One record of Go's `encoding/csv` with default settings (no lazy quotes).
pub(crate) fn parse_csv_record(text: &str) -> Result<Vec<String>, String> {
    let line = text.split(['\n']).next().unwrap_or_default();
    let line = line.strip_suffix('\r').unwrap_or(line);
    if text.is_empty() {
        return Err("EOF".to_owned());
    }
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => match chars.peek() {
                        None | Some(',') => break,
                        Some(_) => {
                            return Err("extraneous or missing \" in quoted-field".to_owned());
                        }
                    },
                    Some(ch) => field.push(ch),
                    None => return Err("extraneous or missing \" in quoted-field".to_owned()),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch == ',' {
                    break;
                }
                if ch == '"' {
                    return Err("bare \" in non-quoted-field".to_owned());
                }
                field.push(ch);
                chars.next();
            }
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records() {
        assert_eq!(parse_csv_record("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(parse_csv_record("\"a=x,y\",b").unwrap(), ["a=x,y", "b"]);
        assert_eq!(parse_csv_record("\"a\"\"b\"").unwrap(), ["a\"b"]);
        assert_eq!(parse_csv_record("a,").unwrap(), ["a", ""]);
        assert!(parse_csv_record("a\"b").is_err());
        assert!(parse_csv_record("\"ab").is_err());
        assert!(parse_csv_record("").is_err());
    }
}
