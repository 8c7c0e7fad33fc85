//! Go formatting that BuildKit leaks into image history: `%q` of string slices and
//! runes and `%v` of string slices (Go's durations: `kiln_oci::go::duration_string`).

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

#[cfg(test)]
mod tests {
    use super::*;

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
