//! Bake's date and time functions: go-cty's `formatdate` and `timeadd` (buildx
//! v0.28.0 has no `rfc3339parse` or `unixtimestampparse`).
//!
//! Timestamps are RFC 3339 strings read as strictly as go-cty reads them. A parsed
//! time keeps the UTC offset it was written with, and every result is rendered in
//! that offset, as Go's fixed zones are.

use std::ops::RangeInclusive;

use hcl::Value;
use hcl::eval::FuncArgs;

use kiln_oci::go::parse_duration;
use kiln_oci::{civil_from_days, days_from_civil};

use super::{Entry, Result, string};

pub(crate) const TABLE: &[Entry] = &[
    ("formatdate", 2, false, f_formatdate),
    ("timeadd", 2, false, f_timeadd),
];

const SECS_PER_DAY: i64 = 86_400;
const NANOS_PER_SEC: i128 = 1_000_000_000;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Go's `time.Weekday` order: Sunday is 0.
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// An instant and the UTC offset it is shown in (a Go `time.Time` in a fixed zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Time {
    /// Seconds since the Unix epoch.
    unix: i64,
    nanos: u32,
    /// Seconds east of UTC.
    offset: i32,
}

/// A time's calendar fields, in its own offset.
#[derive(Debug, Clone, Copy)]
struct Civil {
    year: i64,
    /// 1 to 12.
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Days since the epoch, in local time.
    days: i64,
}

impl Civil {
    /// 0 (Sunday) to 6.
    fn weekday(&self) -> usize {
        // 1970-01-01 was a Thursday.
        (self.days + 4).rem_euclid(7) as usize
    }

    fn month_name(&self) -> &'static str {
        MONTHS[self.month as usize - 1]
    }

    fn weekday_name(&self) -> &'static str {
        WEEKDAYS[self.weekday()]
    }
}

impl Time {
    fn civil(&self) -> Civil {
        let local = self.unix + i64::from(self.offset);
        let days = local.div_euclid(SECS_PER_DAY);
        let secs = local.rem_euclid(SECS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
            days,
        }
    }

    fn add_nanos(self, nanos: i64) -> Time {
        let total =
            i128::from(self.unix) * NANOS_PER_SEC + i128::from(self.nanos) + i128::from(nanos);
        Time {
            // A Go duration spans under 300 years: the seconds stay in range.
            unix: total.div_euclid(NANOS_PER_SEC) as i64,
            nanos: total.rem_euclid(NANOS_PER_SEC) as u32,
            offset: self.offset,
        }
    }

    /// Go's `Format(time.RFC3339)`: whole seconds, `Z` for a zero offset.
    fn rfc3339(&self) -> String {
        let c = self.civil();
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
            go_year(c.year),
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            self.zone(true, true)
        )
    }

    /// The offset as `±hh:mm` (`colon`) or `±hhmm`; `Z` for UTC when `z_for_utc`.
    fn zone(&self, colon: bool, z_for_utc: bool) -> String {
        if self.offset == 0 && z_for_utc {
            return "Z".to_owned();
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let minutes = self.offset.unsigned_abs() / 60;
        let sep = if colon { ":" } else { "" };
        format!("{sign}{:02}{sep}{:02}", minutes / 60, minutes % 60)
    }
}

/// Go's four-digit (or longer) year: `-0001`, `0999`, `12345`.
fn go_year(year: i64) -> String {
    let sign = if year < 0 { "-" } else { "" };
    format!("{sign}{:04}", year.unsigned_abs())
}

fn days_in(month: u32, year: i64) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An RFC 3339 timestamp, or go-cty's description of what is wrong with it.
fn parse_timestamp(s: &str) -> Result<Time> {
    parse_strict(s.as_bytes()).ok_or_else(|| {
        format!(
            "not a valid RFC3339 timestamp: {}",
            describe_fault(s.as_bytes())
        )
    })
}

/// `digits` as a decimal number within `min..=max`.
fn decimal(digits: &[u8], min: u32, max: u32) -> Option<u32> {
    let mut n: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(d - b'0');
    }
    (min..=max).contains(&n).then_some(n)
}

/// A fraction's digits (after the separator) as nanoseconds; digits past the ninth
/// are ignored, as Go does.
fn nanoseconds(digits: &[u8]) -> u32 {
    let kept = &digits[..digits.len().min(9)];
    let n = kept.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    n * 10u32.pow(9 - kept.len() as u32)
}

/// go-cty's own RFC 3339 reader: `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`, exactly.
fn parse_strict(s: &[u8]) -> Option<Time> {
    if s.len() < 19 {
        return None;
    }
    let year = decimal(&s[0..4], 0, 9999)?;
    let month = decimal(&s[5..7], 1, 12)?;
    let day = decimal(&s[8..10], 1, days_in(month, i64::from(year)))?;
    let hour = decimal(&s[11..13], 0, 23)?;
    let minute = decimal(&s[14..16], 0, 59)?;
    let second = decimal(&s[17..19], 0, 59)?;
    if (s[4], s[7], s[10], s[13], s[16]) != (b'-', b'-', b'T', b':', b':') {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0;
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        nanos = nanoseconds(&rest[1..=len]);
        rest = &rest[1 + len..];
    }
    let offset = if rest == b"Z" {
        0
    } else {
        if rest.len() != 6 || !matches!(rest[0], b'+' | b'-') || rest[3] != b':' {
            return None;
        }
        let secs = (decimal(&rest[1..3], 0, 23)? * 60 + decimal(&rest[4..6], 0, 59)?) * 60;
        if rest[0] == b'-' {
            -(secs as i32)
        } else {
            secs as i32
        }
    };
    let local = days_from_civil(i64::from(year), month, day) * SECS_PER_DAY
        + i64::from(hour * 3600 + minute * 60 + second);
    Some(Time {
        unix: local - i64::from(offset),
        nanos,
        offset,
    })
}

/// Go's `getnum`: one or two leading digits (exactly two when `fixed`), and the rest.
fn getnum(s: &[u8], fixed: bool) -> Option<(u32, &[u8])> {
    match s {
        [a, b, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some((u32::from(a - b'0') * 10 + u32::from(b - b'0'), rest))
        }
        [a, rest @ ..] if a.is_ascii_digit() && !fixed => Some((u32::from(a - b'0'), rest)),
        _ => None,
    }
}

/// Where Go's lenient `time.Parse(time.RFC3339, …)` gives up on a timestamp: the
/// layout element it was reading (empty for trailing text) and the input left.
struct Fault<'a> {
    layout: &'static str,
    value: &'a [u8],
}

/// What Go's lenient parse makes of a timestamp.
enum Lenient<'a> {
    Fault(Fault<'a>),
    /// Well formed, but the month has no such day.
    DayOutOfRange,
    Accepted,
}

/// Why a timestamp is not strict RFC 3339, worded as go-cty words it: go-cty asks
/// Go's lenient parser where it fails, and checks by hand what that parser accepts.
fn describe_fault(s: &[u8]) -> String {
    let fault = match lenient_parse(s) {
        Lenient::Fault(fault) => fault,
        Lenient::DayOutOfRange => return "day out of range".to_owned(),
        Lenient::Accepted if s.get(12) == Some(&b':') => Fault {
            layout: "15",
            value: &s[11..12],
        },
        Lenient::Accepted if s.get(19) == Some(&b',') => Fault {
            layout: ".",
            value: b",",
        },
        Lenient::Accepted if s.last() != Some(&b'Z') => Fault {
            layout: "Z07:00",
            value: &s[s.len().saturating_sub(6)..],
        },
        Lenient::Accepted => Fault {
            layout: "2006-01-02T15:04:05Z07:00",
            value: s,
        },
    };
    let what = match fault.layout {
        "2006" => "year",
        "01" => "month",
        "02" => "day of month",
        "15" => "hour",
        "04" => "minute",
        "05" => "second",
        "Z07:00" => "UTC offset",
        "T" => return "missing required time introducer 'T'".to_owned(),
        sep @ (":" | "-") if fault.value.is_empty() => {
            return format!("end of string where {sep:?} is expected");
        }
        sep @ (":" | "-") => {
            let found = String::from_utf8_lossy(fault.value);
            return format!("found {found:?} where {sep:?} is expected");
        }
        _ => "timestamp segment",
    };
    let value = String::from_utf8_lossy(fault.value);
    match what {
        _ if value.is_empty() => format!("end of string before {what}"),
        "hour" if value.contains(':') => "hour must be between 0 and 23 inclusive".to_owned(),
        "hour" if fault.value.len() != 2 => "hour must have exactly two digits".to_owned(),
        "minute" if fault.value.len() != 2 => "minute must have exactly two digits".to_owned(),
        _ => format!("cannot use {value:?} as {what}"),
    }
}

/// Go's lenient `time.Parse` of the RFC 3339 layout (one-digit hours, `,` before a
/// fraction, offsets up to 24 hours and 60 minutes).
fn lenient_parse(s: &[u8]) -> Lenient<'_> {
    let fault = |layout, value| Lenient::Fault(Fault { layout, value });
    let mut v = s;
    // Year: four characters, all digits.
    if v.len() < 4 || !v[..4].iter().all(u8::is_ascii_digit) {
        return fault("2006", v);
    }
    let year = i64::from(decimal(&v[..4], 0, 9999).unwrap_or(0));
    v = &v[4..];
    let mut fields = [0u32; 5];
    // Month, day, hour, minute, second: the separator before each, whether its
    // digits must be two, and its range (Go checks days only at the end). A bad
    // number is reported where it starts, an out-of-range one just after it.
    let layout: [(&'static str, &'static str, bool, RangeInclusive<u32>); 5] = [
        ("-", "01", true, 1..=12),
        ("-", "02", true, 0..=99),
        ("T", "15", false, 0..=23),
        (":", "04", true, 0..=59),
        (":", "05", true, 0..=59),
    ];
    for (i, (sep, elem, fixed, range)) in layout.iter().enumerate() {
        match v.strip_prefix(sep.as_bytes()) {
            Some(rest) => v = rest,
            None => return fault(sep, v),
        }
        let Some((n, rest)) = getnum(v, *fixed) else {
            return fault(elem, v);
        };
        if !range.contains(&n) {
            return fault(elem, rest);
        }
        fields[i] = n;
        v = rest;
    }
    // An optional fraction, `.` or `,` then digits.
    if v.len() >= 2 && matches!(v[0], b'.' | b',') && v[1].is_ascii_digit() {
        v = &v[1 + v[1..].iter().take_while(|c| c.is_ascii_digit()).count()..];
    }
    // The offset: `Z` or `±hh:mm`, Go allowing up to 24 hours and 60 minutes.
    if let Some(rest) = v.strip_prefix(b"Z") {
        v = rest;
    } else {
        let zone = v;
        if v.len() < 6 || v[3] != b':' {
            return fault("Z07:00", zone);
        }
        // Go reads the minutes only once the hours are good.
        let hh = getnum(&v[1..3], true).map(|(h, _)| h);
        let mm = hh.and(getnum(&v[4..6], true)).map(|(m, _)| m);
        v = &v[6..];
        if hh.is_some_and(|h| h > 24) || mm.is_some_and(|m| m > 60) {
            return fault("Z07:00", v);
        }
        if hh.is_none() || mm.is_none() || !matches!(zone[0], b'+' | b'-') {
            return fault("Z07:00", zone);
        }
    }
    if !v.is_empty() {
        return fault("", v);
    }
    let [month, day, ..] = fields;
    if day < 1 || day > days_in(month, year) {
        return Lenient::DayOutOfRange;
    }
    Lenient::Accepted
}

/// Splits a `formatdate` spec into go-cty's tokens: a quoted literal (`'…'`, with
/// `''` for a quote, or just `''`), a run of one repeated letter, or other text.
fn format_tokens(spec: &[u8]) -> Vec<&[u8]> {
    let mut tokens = Vec::new();
    let mut rest = spec;
    while let Some(&first) = rest.first() {
        let len = if first == b'\'' {
            quoted_len(rest)
        } else if first.is_ascii_alphabetic() {
            rest.iter().take_while(|&&c| c == first).count()
        } else {
            rest.iter()
                .position(|&c| c == b'\'' || c.is_ascii_alphabetic())
                .unwrap_or(rest.len())
        };
        tokens.push(&rest[..len]);
        rest = &rest[len..];
    }
    tokens
}

/// The length of the quoted literal `s` starts with (all of `s` when unterminated).
fn quoted_len(s: &[u8]) -> usize {
    if s.get(1) == Some(&b'\'') {
        return 2;
    }
    let mut i = 1;
    while i < s.len() {
        if s[i] == b'\'' {
            if s.get(i + 1) != Some(&b'\'') {
                return i + 1;
            }
            i += 1;
        }
        i += 1;
    }
    s.len()
}

/// go-cty's `formatdate`.
fn format_date(spec: &str, t: &Time) -> Result<String> {
    let c = t.civil();
    let mut out: Vec<u8> = Vec::new();
    for tok in format_tokens(spec.as_bytes()) {
        let len = tok.len();
        let verb = String::from_utf8_lossy(tok);
        let invalid = |why: &str| Err(format!("invalid date format verb {verb:?}{why}"));
        let text = match tok[0] {
            b'\'' => {
                if len == 1 || tok[len - 1] != b'\'' {
                    return Err("unterminated literal '".to_owned());
                }
                if len == 2 {
                    out.push(b'\'');
                } else {
                    // Doubled quotes inside stand for one.
                    let mut raw = tok[1..len - 1].iter();
                    while let Some(&b) = raw.next() {
                        out.push(b);
                        if b == b'\'' {
                            raw.next();
                        }
                    }
                }
                continue;
            }
            b'Y' => match len {
                2 => format!("{:02}", c.year % 100),
                4 => format!("{:04}", c.year),
                _ => return invalid(": year must either be \"YY\" or \"YYYY\""),
            },
            b'M' => match len {
                1 => c.month.to_string(),
                2 => format!("{:02}", c.month),
                3 => c.month_name()[..3].to_owned(),
                4 => c.month_name().to_owned(),
                _ => {
                    return invalid(": month must be \"M\", \"MM\", \"MMM\", or \"MMMM\"");
                }
            },
            b'D' => match len {
                1 => c.day.to_string(),
                2 => format!("{:02}", c.day),
                _ => return invalid(": day of month must either be \"D\" or \"DD\""),
            },
            b'E' => match len {
                3 => c.weekday_name()[..3].to_owned(),
                4 => c.weekday_name().to_owned(),
                _ => return invalid(": day of week must either be \"EEE\" or \"EEEE\""),
            },
            b'h' => match len {
                1 => c.hour.to_string(),
                2 => format!("{:02}", c.hour),
                _ => return invalid(": 24-hour must either be \"h\" or \"hh\""),
            },
            b'H' => {
                let h12 = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                match len {
                    1 => h12.to_string(),
                    2 => format!("{h12:02}"),
                    _ => return invalid(": 12-hour must either be \"H\" or \"HH\""),
                }
            }
            marker @ (b'A' | b'a') => {
                if len != 2 {
                    let m = char::from(marker);
                    return invalid(&format!(": must be \"{m}{m}\""));
                }
                let am_pm = if c.hour < 12 { "AM" } else { "PM" };
                if marker == b'A' {
                    am_pm.to_owned()
                } else {
                    am_pm.to_lowercase()
                }
            }
            b'm' => match len {
                1 => c.minute.to_string(),
                2 => format!("{:02}", c.minute),
                _ => return invalid(": minute must either be \"m\" or \"mm\""),
            },
            b's' => match len {
                1 => c.second.to_string(),
                2 => format!("{:02}", c.second),
                _ => return invalid(": second must either be \"s\" or \"ss\""),
            },
            b'Z' => match len {
                1 => t.zone(true, true),
                3 if t.offset == 0 => "UTC".to_owned(),
                3 | 4 => t.zone(false, false),
                5 => t.zone(true, false),
                _ => return invalid(": timezone must be Z, ZZZZ, or ZZZZZ"),
            },
            letter if letter.is_ascii_alphabetic() => return invalid(""),
            _ => {
                out.extend_from_slice(tok);
                continue;
            }
        };
        out.extend_from_slice(text.as_bytes());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn f_formatdate(args: FuncArgs) -> Result<Value> {
    let t = parse_timestamp(&string(&args[1])?)?;
    format_date(&string(&args[0])?, &t).map(Value::String)
}

fn f_timeadd(args: FuncArgs) -> Result<Value> {
    let t = parse_timestamp(&string(&args[0])?)?;
    let nanos = parse_duration(&string(&args[1])?)?;
    Ok(Value::String(t.add_nanos(nanos).rfc3339()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::funcs::eval_expr as eval;

    fn formatdate(spec: &str, ts: &str) -> Result<String> {
        format_date(spec, &parse_timestamp(ts)?)
    }

    #[test]
    fn formatdate_matches_terraform_examples() {
        let ts = "2018-01-02T23:12:01Z";
        assert_eq!(
            formatdate("DD MMM YYYY hh:mm ZZZ", ts).unwrap(),
            "02 Jan 2018 23:12 UTC"
        );
        assert_eq!(
            formatdate("EEEE, DD-MMM-YY hh:mm:ss ZZZ", ts).unwrap(),
            "Tuesday, 02-Jan-18 23:12:01 UTC"
        );
        assert_eq!(
            formatdate("EEE, DD MMM YYYY hh:mm:ss ZZZ", ts).unwrap(),
            "Tue, 02 Jan 2018 23:12:01 UTC"
        );
        assert_eq!(formatdate("MMM DD, YYYY", ts).unwrap(), "Jan 02, 2018");
        assert_eq!(formatdate("HH:mmaa", ts).unwrap(), "11:12pm");
        assert_eq!(
            formatdate("h:mm", "2018-01-02T23:12:01-08:00").unwrap(),
            "23:12"
        );
        assert_eq!(
            formatdate("YYYY-MM-DD'T'hh:mm:ssZ", ts).unwrap(),
            "2018-01-02T23:12:01Z"
        );
    }

    #[test]
    fn formatdate_matches_go_cty_tests() {
        let ts = "2006-01-02T15:04:05Z";
        for (spec, want) in [
            ("", ""),
            ("YYYY-MM-DD", "2006-01-02"),
            ("EEE, MMM D ''YY", "Mon, Jan 2 '06"),
            ("H 'o''clock' AA", "3 o'clock PM"),
            ("H 'o''clock'", "3 o'clock"),
            ("hh:mm:ssZZZZ", "15:04:05+0000"),
            ("hh:mm:ssZZZZZ", "15:04:05+00:00"),
            ("MMMM", "January"),
            ("EEEE", "Monday"),
            ("aa", "pm"),
            ("M/D h:m:s", "1/2 15:4:5"),
        ] {
            assert_eq!(formatdate(spec, ts).as_deref(), Ok(want), "{spec}");
        }
        let offset = "2006-01-02T15:04:05.999-07:30";
        assert_eq!(
            formatdate("Z ZZZ ZZZZ ZZZZZ", offset).unwrap(),
            "-07:30 -0730 -0730 -07:30"
        );
        for (spec, err) in [
            (
                "Y",
                r#"invalid date format verb "Y": year must either be "YY" or "YYYY""#,
            ),
            (
                "YYYYY",
                r#"invalid date format verb "YYYYY": year must either be "YY" or "YYYY""#,
            ),
            ("A", r#"invalid date format verb "A": must be "AA""#),
            ("a", r#"invalid date format verb "a": must be "aa""#),
            (
                "ZZ",
                r#"invalid date format verb "ZZ": timezone must be Z, ZZZZ, or ZZZZZ"#,
            ),
            ("X", r#"invalid date format verb "X""#),
            ("'blah blah", "unterminated literal '"),
            ("'", "unterminated literal '"),
        ] {
            assert_eq!(formatdate(spec, ts), Err(err.to_owned()), "{spec}");
        }
    }

    #[test]
    fn timestamps_are_strict_rfc3339_with_go_cty_errors() {
        for (ts, err) in [
            ("", "end of string before year"),
            ("2017-01-02", "missing required time introducer 'T'"),
            (
                "2017-12-02t00:00:00Z",
                "missing required time introducer 'T'",
            ),
            ("2017:01:02", r#"found ":01:02" where "-" is expected"#),
            ("2017", r#"end of string where "-" is expected"#),
            ("2017-01-02T", "end of string before hour"),
            ("2017-01-02T00", r#"end of string where ":" is expected"#),
            ("2017-01-02T00:00:00", "end of string before UTC offset"),
            (
                "2017-01-02T26:00:00Z",
                "hour must be between 0 and 23 inclusive",
            ),
            ("2017-01-02T1:00:00Z", "hour must have exactly two digits"),
            (
                "2017-13-02T00:00:00Z",
                r#"cannot use "-02T00:00:00Z" as month"#,
            ),
            ("2017-02-31T00:00:00Z", "day out of range"),
            (
                "2017-01-02T00:00:00,5Z",
                r#"cannot use "," as timestamp segment"#,
            ),
            (
                "2017-01-02T00:00:00+24:00",
                r#"cannot use "+24:00" as UTC offset"#,
            ),
            (
                "2017-01-02T00:00:00Zjunk",
                r#"cannot use "junk" as timestamp segment"#,
            ),
            (
                "\"2017-12-02T00:00:00Z\"",
                r#"cannot use "\"2017-12-02T00:00:00Z\"" as year"#,
            ),
        ] {
            assert_eq!(
                parse_timestamp(ts),
                Err(format!("not a valid RFC3339 timestamp: {err}")),
                "{ts}"
            );
        }
        assert_eq!(
            parse_timestamp("1970-01-01T01:00:00.5+01:00"),
            Ok(Time {
                unix: 0,
                nanos: 500_000_000,
                offset: 3600
            })
        );
    }

    #[test]
    fn timeadd_keeps_the_offset() {
        for (ts, d, want) in [
            ("2017-11-22T00:00:00Z", "10m", "2017-11-22T00:10:00Z"),
            ("2017-11-22T00:00:00Z", "-10m", "2017-11-21T23:50:00Z"),
            ("2017-11-22T00:00:00+00:00", "1h30m", "2017-11-22T01:30:00Z"),
            (
                "2017-11-22T23:30:00-08:00",
                "1h",
                "2017-11-23T00:30:00-08:00",
            ),
            ("2017-11-22T00:00:00.9Z", "0.2s", "2017-11-22T00:00:01Z"),
            ("2016-02-28T12:00:00Z", "24h", "2016-02-29T12:00:00Z"),
        ] {
            assert_eq!(
                eval(&format!("timeadd(\"{ts}\", \"{d}\")")),
                Ok(Value::from(want)),
                "{ts} + {d}"
            );
        }
    }

    #[test]
    fn calendar_conversions_round_trip() {
        for days in [-719_468, -1, 0, 59, 10_956, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(go_year(-1), "-0001");
        let t = Time {
            unix: -62_135_596_800 - SECS_PER_DAY,
            nanos: 0,
            offset: 0,
        };
        assert_eq!(t.rfc3339(), "0000-12-31T00:00:00Z");
    }
}
