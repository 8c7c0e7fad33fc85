//! `kiln bake --list`: the definition's targets or variables, printed as buildx prints
//! them: a table (Go's `text/tabwriter`, padding with tabs) or JSON (Go's
//! `json.Encoder` with a two-space indent).

use std::io::Write as _;

use anyhow::bail;
use kiln_bake::{Listing, go_json_string};

/// What `--list` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Targets,
    Variables,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

/// Reads the definition, then prints what `list` (the `--list` value) asks for. As in
/// buildx, errors in the files come before errors in the value.
pub(crate) fn run(request: &kiln_bake::Request, list: &str) -> anyhow::Result<()> {
    let listing = kiln_bake::list(request)?;
    let (kind, format) = parse_list(list)?;
    let text = match kind {
        Kind::Targets => targets(&listing, format),
        Kind::Variables => variables(&listing, format),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// buildx's `parseList`: `targets`, `variables`, or CSV `type=…[,format=table|json]`.
fn parse_list(input: &str) -> anyhow::Result<(Kind, Format)> {
    let fields = kiln_oci::go::csv_fields(input)?;
    let mut kind = String::new();
    let mut format = String::new();
    if fields.len() == 1 && fields[0] == input && !input.starts_with("type=") {
        kind = input.to_owned();
    }
    if kind.is_empty() {
        for field in &fields {
            let Some((key, value)) = field.split_once('=') else {
                bail!("invalid value {field}");
            };
            match key.to_lowercase().trim() {
                "type" => kind = value.to_owned(),
                "format" => format = value.to_owned(),
                other => bail!("unexpected key '{other}' in '{field}'"),
            }
        }
    }
    let kind = match kind.as_str() {
        "targets" => Kind::Targets,
        "variables" => Kind::Variables,
        _ => bail!("invalid list type {}", go_quote(&kind)),
    };
    let format = match format.as_str() {
        "" | "table" => Format::Table,
        "json" => Format::Json,
        _ => bail!("invalid list format {}", go_quote(&format)),
    };
    Ok((kind, format))
}

/// Go's `%q` for the ASCII text these messages hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn targets(listing: &Listing, format: Format) -> String {
    let rows = listing.target_rows();
    match format {
        Format::Table => {
            let mut text = String::from("TARGET\tDESCRIPTION\n");
            for row in &rows {
                text.push_str(&format!("{}\t{}\n", row.name, row.description));
            }
            tabwrite(&text)
        }
        // A Go nil slice when nothing is listed: `null`.
        Format::Json if rows.is_empty() => "null\n".to_owned(),
        Format::Json => json_array(rows.iter().map(|row| {
            let mut fields = vec![("name", go_json_string(&row.name))];
            if !row.description.is_empty() {
                fields.push(("description", go_json_string(&row.description)));
            }
            if row.group {
                fields.push(("group", "true".to_owned()));
            }
            fields
        })),
    }
}

fn variables(listing: &Listing, format: Format) -> String {
    match format {
        Format::Table => {
            let mut text = String::from("VARIABLE\tTYPE\tVALUE\tDESCRIPTION\n");
            for v in &listing.variables {
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    v.name,
                    v.type_name,
                    v.value.as_deref().unwrap_or("<null>"),
                    v.description
                ));
            }
            tabwrite(&text)
        }
        Format::Json if listing.compose_only => "null\n".to_owned(),
        Format::Json => json_array(listing.variables.iter().map(|v| {
            let mut fields = vec![("name", go_json_string(&v.name))];
            if !v.description.is_empty() {
                fields.push(("description", go_json_string(&v.description)));
            }
            if !v.type_name.is_empty() {
                fields.push(("type", go_json_string(&v.type_name)));
            }
            if let Some(value) = &v.value {
                fields.push(("value", go_json_string(value)));
            }
            fields
        })),
    }
}

/// An array of flat objects (fields already JSON), indented as Go's encoder with
/// `SetIndent("", "  ")` does, with its newline.
fn json_array<'a>(objects: impl Iterator<Item = Vec<(&'a str, String)>>) -> String {
    let objects: Vec<String> = objects
        .map(|fields| {
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("    \"{key}\": {value}"))
                .collect();
            format!("  {{\n{}\n  }}", fields.join(",\n"))
        })
        .collect();
    if objects.is_empty() {
        return "[]\n".to_owned();
    }
    format!("[\n{}\n]\n", objects.join(",\n"))
}

/// Go's `tabwriter.NewWriter(w, 1, 8, 1, '\t', 0)` over `text`, as buildx writes the
/// list.
fn tabwrite(text: &str) -> String {
    kiln_oci::tabwriter::align_with_tabs(text, 1, 8, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_parse_as_buildx_parses_them() {
        assert_eq!(
            parse_list("targets").unwrap(),
            (Kind::Targets, Format::Table)
        );
        assert_eq!(
            parse_list("type=variables,format=json").unwrap(),
            (Kind::Variables, Format::Json)
        );
        assert_eq!(
            parse_list("\"type=targets\",FORMAT=table").unwrap(),
            (Kind::Targets, Format::Table)
        );
        let err = |v: &str| parse_list(v).unwrap_err().to_string();
        assert_eq!(err("foo"), "invalid list type \"foo\"");
        assert_eq!(err("format=json"), "invalid list type \"format=json\"");
        assert_eq!(
            err("type=targets,format=yaml"),
            "invalid list format \"yaml\""
        );
        assert_eq!(err("type=targets,x=1"), "unexpected key 'x' in 'x=1'");
        assert_eq!(err("targets,format=json"), "invalid value targets");
        assert_eq!(
            err("type=tar\"gets"),
            "parse error on line 1, column 9: bare \" in non-quoted-field"
        );
    }

    #[test]
    fn tables_pad_with_tabs_as_go_tabwriter_does() {
        // buildx's own expectations (tests/bake.go).
        let text = "VARIABLE\tTYPE\tVALUE\tDESCRIPTION\nabc\t\t<null>\t\ndef\t\t\t\nfoo\t\tbar\tThis is foo\n";
        assert_eq!(
            tabwrite(text),
            "VARIABLE\tTYPE\tVALUE\tDESCRIPTION\nabc\t\t\t<null>\t\ndef\t\t\t\t\nfoo\t\t\tbar\tThis is foo\n"
        );
        let text = "VARIABLE\tTYPE\tVALUE\tDESCRIPTION\nabc\tstring\tbar\tThis is abc\njkl\tlist of string\t[\"hello\"]\tcollection\npqr\ttuple\t[99,\"99\",true]\t\n";
        assert_eq!(
            tabwrite(text),
            "VARIABLE\tTYPE\t\tVALUE\t\tDESCRIPTION\nabc\t\tstring\t\tbar\t\tThis is abc\njkl\t\tlist of string\t[\"hello\"]\tcollection\npqr\t\ttuple\t\t[99,\"99\",true]\t\n"
        );
        assert_eq!(
            tabwrite("TARGET\tDESCRIPTION\nabc\t\nfoo\tThis builds foo\n"),
            "TARGET\tDESCRIPTION\nabc\t\nfoo\tThis builds foo\n"
        );
        // Lines without the column end the block; text after the last newline stays.
        assert_eq!(
            tabwrite("a\tb\nlonger-cell\tc\nplain\nx\ty"),
            "a\t\tb\nlonger-cell\tc\nplain\nx\ty"
        );
    }

    #[test]
    fn json_is_go_encoder_output() {
        let listing = Listing {
            targets: vec![kiln_bake::ListedTarget {
                name: "a&b".into(),
                description: "<d>".into(),
            }],
            groups: vec![kiln_bake::ListedGroup {
                name: "g".into(),
                description: String::new(),
                targets: vec!["a&b".into()],
            }],
            ..Listing::default()
        };
        assert_eq!(
            targets(&listing, Format::Json),
            "[\n  {\n    \"name\": \"a\\u0026b\",\n    \"description\": \"\\u003cd\\u003e\"\n  },\n  {\n    \"name\": \"g\",\n    \"description\": \"a\\u0026b\",\n    \"group\": true\n  }\n]\n"
        );
        assert_eq!(targets(&Listing::default(), Format::Json), "null\n");
        assert_eq!(variables(&Listing::default(), Format::Json), "[]\n");
    }
}
