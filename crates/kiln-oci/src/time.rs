//! Image timestamps (`created`, history) as Go writes a UTC `time.Time`.

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by Howard
/// Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`]: days since 1970-01-01.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as RFC 3339 in UTC with second precision (`2023-11-14T22:13:20Z`).
pub fn rfc3339_utc(secs: i64) -> String {
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A time as Go's `time.RFC3339Nano` writes it in UTC: nanoseconds with their
/// trailing zeros dropped (`2023-11-14T22:13:20.5Z`).
pub fn rfc3339_nano_utc(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = rfc3339_utc(i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
    match since.subsec_nanos() {
        0 => seconds,
        nanos => format!(
            "{}.{}Z",
            seconds.trim_end_matches('Z'),
            format!("{nanos:09}").trim_end_matches('0')
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{rfc3339_nano_utc, rfc3339_utc};

    #[test]
    fn times_with_nanoseconds_print_as_go_does() {
        let at = |secs, nanos| std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
        assert_eq!(rfc3339_nano_utc(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano_utc(at(1_700_000_000, 500_000_000)),
            "2023-11-14T22:13:20.5Z"
        );
        assert_eq!(
            rfc3339_nano_utc(at(1_700_000_000, 1_200)),
            "2023-11-14T22:13:20.0000012Z"
        );
    }

    #[test]
    fn unix_seconds_print_as_go_does() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_577_836_800), "2020-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
