//! JSON as Go's `encoding/json` writes it, which is what BuildKit's image configs,
//! manifests and indexes are: struct fields in declaration order, map keys sorted, and
//! `<`, `>`, `&`, U+2028 and U+2029 escaped (`\u003c` …). serde_json escapes everything
//! else as Go does (`\b \f \n \r \t`, other control characters as lower-case `\u00XX`).

use kiln_oci::image::{History, RootFs};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::Error;
use crate::image::PatchedConfig;

/// Go's HTML-safe escaping, applied to serde_json's output: these characters only ever
/// appear inside strings, so replacing them anywhere is exact.
pub(crate) fn escape_html(json: Vec<u8>) -> Vec<u8> {
    if !json.iter().any(|&c| matches!(c, b'<' | b'>' | b'&' | 0xE2)) {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// `json.Marshal`.
pub(crate) fn to_vec(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
        .map(escape_html)
        .map_err(|e| Error::Config(e.to_string()))
}

/// `json.MarshalIndent(v, "", "  ")`.
pub(crate) fn to_vec_indent(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(value)
        .map(escape_html)
        .map_err(|e| Error::Config(e.to_string()))
}

/// A JSON value serialised with its object keys in a chosen order.
enum Ordered<'a> {
    Object(Vec<(&'a str, Ordered<'a>)>),
    Leaf(&'a Value),
    /// Typed parts, in their structs' field order.
    RootFs(&'a RootFs),
    History(&'a [History]),
}

impl Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Self::Leaf(value) => value.serialize(serializer),
            Self::RootFs(rootfs) => rootfs.serialize(serializer),
            Self::History(history) => history.serialize(serializer),
        }
    }
}

/// Go's struct of `fields` (declaration order): known fields in that order, then
/// others sorted. `nested` orders the value of a field.
fn as_struct<'a>(
    value: &'a Value,
    fields: &[&str],
    nested: impl Fn(&str, &'a Value) -> Ordered<'a>,
) -> Ordered<'a> {
    let Value::Object(object) = value else {
        return Ordered::Leaf(value);
    };
    let mut out: Vec<(&str, Ordered<'_>)> = fields
        .iter()
        .filter_map(|f| object.get_key_value(*f))
        .map(|(k, v)| (k.as_str(), nested(k, v)))
        .collect();
    out.extend(
        object
            .iter()
            .filter(|(k, _)| !fields.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), nested(k, v))),
    );
    Ordered::Object(out)
}

/// `dockerspec.DockerOCIImageConfig`: `ocispecs.ImageConfig` then Docker's extension.
const IMAGE_CONFIG: &[&str] = &[
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
    "Healthcheck",
    "OnBuild",
    "Shell",
];
/// `dockerspec.HealthcheckConfig`.
const HEALTHCHECK: &[&str] = &[
    "Test",
    "Interval",
    "Timeout",
    "StartPeriod",
    "StartInterval",
    "Retries",
];

/// Go's `time.Time` JSON (RFC 3339 with the fraction's trailing zeros dropped), as a
/// time parsed from `text` is written again.
pub(crate) fn go_time(text: &str) -> String {
    let Some(dot) = text.find('.') else {
        return text.to_owned();
    };
    let digits = text[dot + 1..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let fraction = text[dot + 1..dot + 1 + digits].trim_end_matches('0');
    let rest = &text[dot + 1 + digits..];
    if fraction.is_empty() {
        format!("{}{rest}", &text[..dot])
    } else {
        format!("{}.{fraction}{rest}", &text[..dot])
    }
}

/// The image config as BuildKit's exporter writes it (`patchImageConfig`): the top
/// level is a Go map (keys sorted), `config` keeps `DockerOCIImageConfig`'s field order,
/// `rootfs` and `history` are `ocispecs.RootFS` and `[]ocispecs.History`.
pub(crate) fn image_config(config: &PatchedConfig) -> Result<Vec<u8>, Error> {
    let mut fields: Vec<(&str, Ordered<'_>)> = config
        .fields
        .iter()
        .map(|(key, value)| {
            let value = match key.as_str() {
                "config" => as_struct(value, IMAGE_CONFIG, |k, v| {
                    if k == "Healthcheck" {
                        as_struct(v, HEALTHCHECK, |_, v| Ordered::Leaf(v))
                    } else {
                        Ordered::Leaf(v)
                    }
                }),
                _ => Ordered::Leaf(value),
            };
            (key.as_str(), value)
        })
        .collect();
    fields.push(("rootfs", Ordered::RootFs(&config.rootfs)));
    if let Some(history) = &config.history {
        fields.push(("history", Ordered::History(history)));
    }
    fields.sort_by_key(|(key, _)| *key);
    to_vec(&Ordered::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_characters_are_escaped_as_go_does() {
        let out = to_vec(&json!({"a": "x <y> & z\u{2028}\u{2029}é\u{8}\u{1f}"})).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"x \u003cy\u003e \u0026 z\u2028\u2029é\b\u001f"}"#
        );
    }

    #[test]
    fn image_config_keeps_go_s_orders() {
        let config = json!({
            "os": "linux",
            "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"], "x": 1},
            "config": {
                "Cmd": ["sh"],
                "Labels": {"b": "1", "a": "2"},
                "Env": ["A=b"],
                "Healthcheck": {"Retries": 3, "Test": ["CMD", "true"]},
                "User": "u",
            },
            "history": [
                {"empty_layer": true, "created_by": "RUN a && b > c", "created": "2020-01-01T00:00:00.500000000Z", "comment": "", "x": 1},
                {"created_by": "COPY", "created": null},
            ],
            "moby.buildkit.buildinfo.v1": "e30=",
        });
        let layer = crate::layer::Blob {
            digest: "sha256:b".to_owned(),
            media_type: kiln_oci::media_type::OCI_LAYER_GZIP.to_owned(),
            size: 1,
            diff_id: "sha256:a".to_owned(),
            clamped_to: None,
            tar_version: 0,
            source: None,
            annotations: Default::default(),
        };
        let patched =
            crate::image::finish_config(&config, &[layer], "2023-11-14T22:13:20Z").unwrap();
        assert_eq!(
            String::from_utf8(image_config(&patched).unwrap()).unwrap(),
            concat!(
                r#"{"architecture":"amd64","config":{"User":"u","Env":["A=b"],"Cmd":["sh"],"#,
                r#""Labels":{"a":"2","b":"1"},"Healthcheck":{"Test":["CMD","true"],"Retries":3}},"#,
                r#""created":"2023-11-14T22:13:20Z","history":[{"created":"2020-01-01T00:00:00.5Z","#,
                r#""created_by":"RUN a \u0026\u0026 b \u003e c","empty_layer":true},"#,
                r#"{"created":"2023-11-14T22:13:20Z","created_by":"COPY"}],"#,
                r#""moby.buildkit.buildinfo.v1":"e30=","os":"linux","#,
                r#""rootfs":{"type":"layers","diff_ids":["sha256:a"]}}"#
            )
        );
    }

    #[test]
    fn go_times() {
        assert_eq!(go_time("2020-01-01T00:00:00Z"), "2020-01-01T00:00:00Z");
        assert_eq!(go_time("2020-01-01T00:00:00.000Z"), "2020-01-01T00:00:00Z");
        assert_eq!(
            go_time("2020-01-01T00:00:00.120+01:00"),
            "2020-01-01T00:00:00.12+01:00"
        );
    }
}
