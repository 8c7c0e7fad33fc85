//! `--progress=rawjson`: BuildKit's status stream as JSON lines on stderr, one `SolveStatus`
//! object per event (`vertexes` with `started`/`completed`/`cached`/`error`, `logs`
//! with base64 `data`), as `buildctl --progress=rawjson` prints it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kiln_api::build::Event;
use serde_json::{Value, json};

/// Prints one JSON line per event.
#[derive(Default)]
pub(crate) struct RawJson {
    /// Each vertex's name and start time, for the records after its first.
    vertices: Mutex<HashMap<String, (String, String)>>,
}

/// RFC 3339 with nanoseconds (Go's `RFC3339Nano`: trailing zeros dropped).
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = kiln_oci::rfc3339_utc(since.as_secs() as i64);
    let nanos = format!("{:09}", since.subsec_nanos());
    let nanos = nanos.trim_end_matches('0');
    match seconds.strip_suffix('Z') {
        Some(base) if !nanos.is_empty() => format!("{base}.{nanos}Z"),
        _ => seconds,
    }
}

impl RawJson {
    fn vertex(&self, digest: &str, name: Option<&str>) -> (String, String) {
        let mut vertices = self.vertices.lock().unwrap_or_else(|e| e.into_inner());
        vertices
            .entry(digest.to_owned())
            .or_insert_with(|| (name.unwrap_or_default().to_owned(), now()))
            .clone()
    }

    pub(crate) fn event(&self, event: Event) {
        let status = match event {
            Event::Started { digest, name } => {
                let (name, started) = self.vertex(&digest, Some(&name));
                json!({"vertexes": [{"digest": digest, "name": name, "started": started}]})
            }
            Event::Cached { digest, name } => {
                let (name, started) = self.vertex(&digest, Some(&name));
                json!({"vertexes": [{"digest": digest, "name": name, "started": started,
                    "completed": started, "cached": true}]})
            }
            Event::Done { digest, .. } => {
                let (name, started) = self.vertex(&digest, None);
                json!({"vertexes": [{"digest": digest, "name": name, "started": started,
                    "completed": now()}]})
            }
            Event::Failed { digest, error, .. } => {
                let (name, started) = self.vertex(&digest, None);
                json!({"vertexes": [{"digest": digest, "name": name, "started": started,
                    "completed": now(), "error": error}]})
            }
            Event::Log { digest, data } => json!({"logs": [{
                "vertex": digest,
                "stream": 1,
                "data": base64::engine::general_purpose::STANDARD.encode(&data),
                "timestamp": now(),
            }]}),
        };
        print_line(&status);
    }
}

fn print_line(status: &Value) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{status}");
}
