//! `kiln history ls`: the builds a builder ran, as `docker buildx history ls` lists
//! them (its table and its JSON lines).

use std::time::{Duration, SystemTime};

use kiln_api::history::HistoryRecord;

use crate::args::history::HistoryLsArgs;

/// `kiln history ls`.
pub(crate) fn ls(args: &HistoryLsArgs) -> anyhow::Result<()> {
    let remote = args.builder.remote()?;
    // buildx's full reference names the builder and its node.
    let node = match &remote {
        Some(remote) => format!("{0}/{0}", remote.address),
        None => "default/default".to_owned(),
    };
    let builder = crate::driver::open(remote.as_ref())?;
    let mut records = builder.history()?;
    // Running builds first, then the newest first (buildx's order).
    records.sort_by(|a, b| {
        a.completed_at
            .is_some()
            .cmp(&b.completed_at.is_some())
            .then(b.created_at.cmp(&a.created_at))
    });
    let now = SystemTime::now();
    match args.format.as_str() {
        "table" => {
            let mut table = "BUILD ID\tNAME\tSTATUS\tCREATED AT\tDURATION\t\n".to_owned();
            for record in &records {
                let mut name = record.name();
                if !args.no_trunc {
                    name = trim_beginning(&name, 36);
                }
                // The last column (a link to Docker Desktop on a terminal) is empty.
                table.push_str(&format!(
                    "{}\t{name}\t{}\t{}\t{}\t\n",
                    record.id,
                    status(record),
                    crate::commands::cache::ago(unix_seconds(record.created_at)),
                    duration(record, now),
                ));
            }
            print!("{}", kiln_oci::tabwriter::align(&table, 10, 3));
        }
        "json" => {
            for record in &records {
                println!("{}", json_line(record, &node));
            }
        }
        other => anyhow::bail!("--format {other:?}: use table or json"),
    }
    Ok(())
}

fn status(record: &HistoryRecord) -> &'static str {
    match (&record.completed_at, &record.error) {
        (None, _) => "Running",
        (Some(_), Some(_)) => "Error",
        (Some(_), None) => "Completed",
    }
}

/// How long the build took (or has run, with a `+`), as buildx's `formatDuration`.
fn duration(record: &HistoryRecord, now: SystemTime) -> String {
    let end = record.completed_at.unwrap_or(now);
    let took = end.duration_since(record.created_at).unwrap_or_default();
    let text = if took < Duration::from_secs(60) {
        format!("{:.1}s", took.as_secs_f64())
    } else {
        format!("{}m {:2}s", took.as_secs() / 60, took.as_secs() % 60)
    };
    if record.completed_at.is_none() {
        format!("{text}+")
    } else {
        text
    }
}

/// buildx's `trimBeginning`: the last `n` characters, `..` in front of what is cut.
fn trim_beginning(text: &str, n: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= n {
        return text.to_owned();
    }
    format!(
        "..{}",
        chars[chars.len() - n + 2..].iter().collect::<String>()
    )
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One record as `--format json` prints it (Go's map: keys sorted).
fn json_line(record: &HistoryRecord, node: &str) -> serde_json::Value {
    let mut line = serde_json::Map::new();
    line.insert("cached_steps".into(), record.steps.cached.into());
    if let Some(completed) = record.completed_at {
        line.insert(
            "completed_at".into(),
            kiln_api::go::rfc3339_nano_utc(completed).into(),
        );
    }
    line.insert("completed_steps".into(), record.steps.completed.into());
    line.insert(
        "created_at".into(),
        kiln_api::go::rfc3339_nano_utc(record.created_at).into(),
    );
    line.insert("name".into(), record.name().into());
    line.insert("ref".into(), format!("{node}/{}", record.id).into());
    line.insert("status".into(), status(record).into());
    line.insert("total_steps".into(), record.steps.total.into());
    serde_json::Value::Object(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_names_print_as_buildx_prints_them() {
        let mut record = HistoryRecord::started("x".to_owned(), "", Default::default());
        let start = record.created_at;
        record.completed_at = Some(start + Duration::from_millis(1250));
        assert_eq!(duration(&record, start), "1.2s");
        record.completed_at = Some(start + Duration::from_secs(125));
        assert_eq!(duration(&record, start), "2m  5s");
        record.completed_at = None;
        assert_eq!(duration(&record, start + Duration::from_secs(3)), "3.0s+");
        assert_eq!(trim_beginning("abcdef", 4), "..ef");
        assert_eq!(trim_beginning("abc", 4), "abc");
    }
}
