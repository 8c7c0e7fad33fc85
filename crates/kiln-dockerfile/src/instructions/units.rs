//! Value syntaxes BuildKit borrows from Go: `time.ParseDuration`, go-units'
//! `RAMInBytes`, and `encoding/csv` for `--mount` options.

/// Go's `time.ParseDuration`, in nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", crate::quote::go_quote(text));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after) => {
                let len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale: f64 = match unit {
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::quote::go_quote(text)
                ));
            }
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::quote::go_quote(unit),
                    crate::quote::go_quote(text)
                ));
            }
        };
        let number: f64 = format!("0{int_part}.{frac_part}0")
            .parse()
            .map_err(|_| invalid())?;
        total += number * scale;
        if total > i64::MAX as f64 {
            return Err(invalid());
        }
        rest = after;
    }
    let total = total.round() as i64;
    Ok(if negative { -total } else { total })
}

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
    fn durations() {
        assert_eq!(parse_go_duration("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(
            parse_go_duration("10")
                .unwrap_err()
                .contains("missing unit")
        );
        assert!(
            parse_go_duration("10x")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
    }

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
