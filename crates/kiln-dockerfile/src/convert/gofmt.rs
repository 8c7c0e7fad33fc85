//! Go formatting that BuildKit leaks into image history: `%q` of string slices and
//! runes, `%v` of string slices, and `time.Duration.String()`.

use std::fmt::Write as _;

use crate::quote::go_quote;

/// `fmt.Sprintf("%q", []string{…})`: `["a" "b"]`.
pub(crate) fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `fmt.Sprintf("%v", []string{…})`: `[a b]`.
pub(crate) fn plain_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// `strconv.QuoteRune`, as `%q` prints an integer: `'\x03'`, `'a'`.
pub(crate) fn quote_rune(value: i64) -> String {
    let Some(ch) = u32::try_from(value).ok().and_then(char::from_u32) else {
        return "'\u{fffd}'".to_owned();
    };
    match ch {
        '\'' => "'\\''".to_owned(),
        '"' => "'\"'".to_owned(),
        _ => {
            let quoted = go_quote(&ch.to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// Go's `time.Duration.String()` for nanoseconds: `1h2m3.5s`, `10s`, `0s`, `1.5ms`.
pub(crate) fn duration(nanos: i64) -> String {
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
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(duration(10_000_000_000), "10s");
        assert_eq!(duration(90_000_000_000), "1m30s");
        assert_eq!(duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration(1_500_000), "1.5ms");
        assert_eq!(duration(2_500_000_000), "2.5s");
        assert_eq!(duration(0), "0s");
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(
            quote_list(&["a b".into(), "c\"".into()]),
            r#"["a b" "c\""]"#
        );
        assert_eq!(quote_rune(0), r"'\x00'");
        assert_eq!(quote_rune(3), r"'\x03'");
        assert_eq!(quote_rune(65), "'A'");
        assert_eq!(plain_list(&["/a".into(), "/b".into()]), "[/a /b]");
    }
}
