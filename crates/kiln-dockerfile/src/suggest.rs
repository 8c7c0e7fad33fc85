//! "Did you mean" hints, chosen as BuildKit's `util/suggest` chooses them.

/// The option closest to `value`, if one is fewer than 3 edits away; `None` when
/// `value` is one of the options (the error is then about something else). The first
/// of equally close options wins. Without `case_sensitive`, names are compared in
/// lower case and the hint takes `value`'s case when that is all upper or all lower
/// (`COPYY` → `COPY`, `copyy` → `copy`).
pub(crate) fn search<'a>(
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
    case_sensitive: bool,
) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    let wanted = fold(value);
    let mut best: Option<(usize, String)> = None;
    for option in options {
        let option = fold(option);
        if option == wanted {
            return None;
        }
        let distance = edit_distance(&wanted, &option);
        if distance < best.as_ref().map_or(3, |(d, _)| *d) {
            best = Some((distance, option));
        }
    }
    let (_, found) = best?;
    Some(if case_sensitive || value == value.to_lowercase() {
        found
    } else if value == value.to_uppercase() {
        found.to_uppercase()
    } else {
        found
    })
}

/// `message (did you mean HINT?)` when [`search`] finds a hint, else `message`.
pub(crate) fn with_hint<'a>(
    message: String,
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
    case_sensitive: bool,
) -> String {
    match search(value, options, case_sensitive) {
        Some(hint) => format!("{message} (did you mean {hint}?)"),
        None => message,
    }
}

/// Levenshtein distance (one edit per inserted, removed or replaced character).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_buildkit() {
        let names = ["COPY", "CMD", "FROM"];
        assert_eq!(search("COPYY", names, false).as_deref(), Some("COPY"));
        assert_eq!(search("copyy", names, false).as_deref(), Some("copy"));
        assert_eq!(search("Copyy", names, false).as_deref(), Some("copy"));
        assert_eq!(search("COPY", names, false), None);
        assert_eq!(
            search("tmpf", ["bind", "tmpfs"], true).as_deref(),
            Some("tmpfs")
        );
        assert_eq!(search("TMPF", ["bind", "tmpfs"], true), None);
        // Three edits is too far.
        assert_eq!(search("abcd", ["wxyz"], true), None);
        assert_eq!(
            with_hint("unknown flag: --mont".into(), "mont", ["mount"], true),
            "unknown flag: --mont (did you mean mount?)"
        );
    }
}
