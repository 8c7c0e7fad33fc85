//! Value syntaxes BuildKit and buildx borrow from Go, parsed exactly as Go parses
//! them, in one place for every crate: `strconv.ParseBool`, `time.ParseDuration`, `path.Clean`,
//! `path.Join`, `path.Base`, go-units' `RAMInBytes`, one CSV record as `go-csvvalue` reads it, and
//! `encoding/json`'s escapes.

/// Times as Go's `time.RFC3339Nano` writes them (the header clients read a daemon's
/// clock from).
pub use crate::time::rfc3339_nano_utc;

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `path.Clean` for slash paths (relative ones too): no empty or `.` segments,
/// `..` removing the segment before it (dropped at the root, kept at the start of a
/// relative path), no trailing `/`; `.` for nothing.
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`: the non-empty parts joined by `/`, cleaned; empty for none.
pub fn join_path(parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return String::new();
    }
    clean_path(&parts.join("/"))
}

/// Go's `path.Base` (and `filepath.Base` on Linux): the last element, trailing slashes
/// dropped; `.` for nothing, `/` for only slashes.
pub fn base_path(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        _ if path.is_empty() => ".",
        _ if trimmed.is_empty() => "/",
        Some(last) => last,
        None => trimmed,
    }
}

/// go-units' `RAMInBytes`: `512m`, `1.5GiB`, `64k`, binary multiples.
pub fn ram_in_bytes(text: &str) -> Result<i64, String> {
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

/// Go's `time.ParseDuration`: `[-+]` then number-unit pairs like `1h30m` or `1.5s`,
/// with units `ns`, `us`/`µs`, `ms`, `s`, `m` and `h`; the result in nanoseconds.
pub fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let bytes = s.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // The whole part; an overflow is an error.
        let int_len = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &d in &bytes[..int_len] {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(d - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        // The fraction: digits past 63 bits of precision are dropped.
        let (mut frac, mut scale, mut has_frac) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            has_frac = frac_len > 0;
            let mut overflow = false;
            for d in rest[..frac_len].bytes() {
                if overflow || frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = frac * 10 + u64::from(d - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            s = &rest[frac_len..];
        }
        if int_len == 0 && !has_frac {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let (name, rest) = s.split_at(unit_len);
        s = rest;
        let unit: u64 = match name {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(name),
                    time_quote(orig)
                ));
            }
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut v = whole * unit;
        if frac > 0 {
            // As Go: through a float, exact to the nanosecond for an hour's fraction.
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // -(1 << 63) is the one negative duration with no positive counterpart.
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// The Go `time` package's quoting in its errors: control and non-ASCII bytes as
/// `\xNN`.
pub fn time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

/// A CSV record that does not parse, as Go says it (`io.EOF` for nothing, else
/// `csv.ParseError`: the 1-based byte column and what is wrong there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// Nothing to read.
    #[error("EOF")]
    Empty,
    /// A quote where the rules forbid one.
    #[error("parse error on line 1, column {column}: {reason}")]
    Parse {
        /// Where (1-based, in bytes).
        column: usize,
        /// Go's `csv.ErrBareQuote` or `csv.ErrQuote` text.
        reason: &'static str,
    },
}

const BARE_QUOTE: &str = "bare \" in non-quoted-field";
const QUOTE: &str = "extraneous or missing \" in quoted-field";

/// One CSV record as `go-csvvalue`'s `Fields` reads it (what BuildKit and buildx use
/// for `--mount`, `--output`, `--cache-to`, `--secret` and Bake's CSV attributes):
/// commas separate fields, a field in double quotes may hold commas and `""` for a
/// quote, a quote anywhere else is an error; one trailing newline is dropped.
pub fn csv_fields(line: &str) -> Result<Vec<String>, CsvError> {
    let line = line
        .strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .unwrap_or(line);
    if line.is_empty() {
        return Err(CsvError::Empty);
    }
    let error = |at: usize, reason| CsvError::Parse {
        column: at + 1,
        reason,
    };
    let mut fields = Vec::new();
    let (mut rest, mut pos) = (line, 0);
    'field: loop {
        let Some(quoted) = rest.strip_prefix('"') else {
            let end = rest.find(',');
            let field = &rest[..end.unwrap_or(rest.len())];
            if let Some(quote) = field.find('"') {
                return Err(error(pos + quote, BARE_QUOTE));
            }
            fields.push(field.to_owned());
            match end {
                Some(comma) => {
                    rest = &rest[comma + 1..];
                    pos += comma + 1;
                    continue;
                }
                None => break,
            }
        };
        rest = quoted;
        pos += 1;
        let mut field = String::new();
        loop {
            let Some(quote) = rest.find('"') else {
                return Err(error(pos, QUOTE));
            };
            field.push_str(&rest[..quote]);
            rest = &rest[quote + 1..];
            pos += quote + 1;
            if let Some(after) = rest.strip_prefix('"') {
                field.push('"');
                rest = after;
                pos += 1;
            } else if let Some(after) = rest.strip_prefix(',') {
                fields.push(field);
                rest = after;
                pos += 1;
                continue 'field;
            } else if rest.is_empty() {
                fields.push(field);
                break 'field;
            } else {
                return Err(error(pos - 1, QUOTE));
            }
        }
    }
    Ok(fields)
}

/// JSON text as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and U+2029
/// escaped as `\uXXXX` (they can only stand inside strings, so escaping them
/// everywhere in a document is safe).
pub fn json_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `time.Duration.String()` for nanoseconds: `1h2m3.5s`, `10s`, `0s`, `1.5ms`.
pub fn duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let negative = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Less than a second: ns, µs or ms with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
        return out;
    }
    let hours = u / 3_600_000_000_000;
    let minutes = (u / 60_000_000_000) % 60;
    let seconds_nanos = u % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(seconds_nanos, 1_000_000_000));
    out.push('s');
    out
}

/// `value / scale` with the fraction's trailing zeros removed.
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// go-units' `BytesSize`: binary units, four significant digits (`488.3MiB`).
pub fn bytes_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    custom_size(bytes, 1024.0, &UNITS)
}

/// go-units' `HumanSize` (Docker's sizes): decimal units, four significant digits
/// (`120.6MB`).
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    custom_size(bytes, 1000.0, &UNITS)
}

/// go-units' `CustomSize("%.4g%s", size, base, units)`.
fn custom_size(mut size: f64, base: f64, units: &[&str]) -> String {
    let mut unit = 0;
    while size >= base && unit + 1 < units.len() {
        size /= base;
        unit += 1;
    }
    format!("{}{}", go_g4(size), units[unit])
}

/// Go's `%.4g` for a value below 10000: four significant digits, trailing zeros
/// dropped.
fn go_g4(value: f64) -> String {
    let digits = match value {
        v if v >= 1000.0 => 0,
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(duration_string(10_000_000_000), "10s");
        assert_eq!(duration_string(90_000_000_000), "1m30s");
        assert_eq!(duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_string(172_800_000_000_000), "48h0m0s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(2_500_000_000), "2.5s");
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(5_184_000_000_000_000), "1440h0m0s");
        assert_eq!(duration_string(90_500_000_000), "1m30.5s");
        assert_eq!(duration_string(250_000_000), "250ms");
        assert_eq!(duration_string(1_000_000_000), "1s");
    }

    #[test]
    fn sizes_print_as_go_units_does() {
        assert_eq!(bytes_size(512_000_000.0), "488.3MiB");
        assert_eq!(bytes_size(10_000_000_000.0), "9.313GiB");
        assert_eq!(bytes_size(51_000_000_000.0), "47.5GiB");
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(100.0), "100B");
        assert_eq!(bytes_size(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5GiB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(24_576.0), "24.58kB");
        assert_eq!(human_size(120_600_000.0), "120.6MB");
        assert_eq!(human_size(1_234_000_000.0), "1.234GB");
        assert_eq!(human_size(4_096.0), "4.096kB");
    }

    #[test]
    fn bases_are_gos() {
        for (path, base) in [
            ("", "."),
            ("/", "/"),
            ("///", "/"),
            ("a/b/", "b"),
            ("a", "a"),
            ("/x/y.txt", "y.txt"),
        ] {
            assert_eq!(base_path(path), base, "{path:?}");
        }
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("64"), Ok(64));
        assert_eq!(ram_in_bytes("1k"), Ok(1024));
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("512kb"), Ok(512 << 10));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(ram_in_bytes("2 mb"), Ok(2 * 1024 * 1024));
        assert!(ram_in_bytes("1x").is_err());
        assert!(ram_in_bytes("1q").is_err());
        assert!(ram_in_bytes("m").is_err());
    }

    #[test]
    fn paths_clean_and_join_as_go_does() {
        for (path, clean) in [
            ("", "."),
            ("/", "/"),
            ("a//b/./c/", "a/b/c"),
            ("/../a", "/a"),
            ("../a/..", ".."),
            ("a/../../b", "../b"),
            ("/a/b/../../..", "/"),
        ] {
            assert_eq!(clean_path(path), clean, "{path:?}");
        }
        assert_eq!(join_path(&["", ""]), "");
        assert_eq!(join_path(&["/work", "../src", "x"]), "/src/x");
        assert_eq!(join_path(&["a", "", "b/"]), "a/b");
    }

    #[test]
    fn durations_parse_as_go_does() {
        for (s, ns) in [
            ("0", 0),
            ("10m", 600_000_000_000),
            ("-10m", -600_000_000_000),
            ("+1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("1µs2us3ns", 3_003),
            (".5s", 500_000_000),
            ("2562047h47m16.854775807s", i64::MAX),
            ("-2562047h47m16.854775808s", i64::MIN),
        ] {
            assert_eq!(parse_duration(s), Ok(ns), "{s}");
        }
        for (s, err) in [
            ("", r#"time: invalid duration """#),
            ("1", r#"time: missing unit in duration "1""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            (
                "1é",
                r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#,
            ),
            (".s", r#"time: invalid duration ".s""#),
            ("h", r#"time: invalid duration "h""#),
            (
                "2562047h47m16.854775808s",
                r#"time: invalid duration "2562047h47m16.854775808s""#,
            ),
        ] {
            assert_eq!(parse_duration(s), Err(err.to_owned()), "{s}");
        }
    }

    #[test]
    fn csv_fields_as_go_csvvalue_reads_them() {
        assert_eq!(csv_fields("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(csv_fields("\"a=x,y\",b").unwrap(), ["a=x,y", "b"]);
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), ["a\"b"]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert_eq!(csv_fields("\"a\",").unwrap(), ["a", ""]);
        assert_eq!(csv_fields("x,y\r\n").unwrap(), ["x", "y"]);
        assert_eq!(csv_fields("").unwrap_err().to_string(), "EOF");
        assert_eq!(
            csv_fields("ab,c\"d").unwrap_err().to_string(),
            "parse error on line 1, column 5: bare \" in non-quoted-field"
        );
        assert_eq!(
            csv_fields("\"ab").unwrap_err().to_string(),
            "parse error on line 1, column 2: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            csv_fields("\"ab\"c").unwrap_err().to_string(),
            "parse error on line 1, column 4: extraneous or missing \" in quoted-field"
        );
    }
}
