//! Value syntaxes BuildKit borrows from Go: go-units' `RAMInBytes`, and
//! `encoding/csv` for `--mount` options (durations: `kiln_oci::go`).

/// go-units' `RAMInBytes`: `512m`, `1.5GiB`, `64k`, binary multiples.
pub(crate) fn parse_ram_in_bytes(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{text}'");
    let number_len = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(text.len(), |(i, _)| i);
    let (number, suffix) = text.split_at(number_len);
    if number.is_empty()
        || number.starts_with('.')
        || number.ends_with('.')
        || number.contains("..")
    {
        return Err(invalid());
    }
    let size: f64 = number.parse().map_err(|_| invalid())?;
    let mut suffix = suffix
        .strip_prefix(' ')
        .unwrap_or(suffix)
        .chars()
        .peekable();
    let exponent = match suffix.peek().map(char::to_ascii_lowercase) {
        Some(unit @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            suffix.next();
            "kmgtp".find(unit).map_or(0, |i| i + 1)
        }
        _ => 0,
    };
    if suffix.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        suffix.next();
    }
    if suffix.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        suffix.next();
    }
    if suffix.next().is_some() {
        return Err(invalid());
    }
    Ok((size * 1024f64.powi(exponent as i32)) as i64)
}

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
    fn ram_sizes() {
        assert_eq!(parse_ram_in_bytes("64"), Ok(64));
        assert_eq!(parse_ram_in_bytes("1k"), Ok(1024));
        assert_eq!(parse_ram_in_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_ram_in_bytes("2 mb"), Ok(2 * 1024 * 1024));
        assert!(parse_ram_in_bytes("1x").is_err());
        assert!(parse_ram_in_bytes("m").is_err());
    }

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
