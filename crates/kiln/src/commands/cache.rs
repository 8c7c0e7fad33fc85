//! `kiln du` and `kiln prune`: the build cache's records, listed and removed in
//! buildx's formats (sizes as Docker writes them, times as "2 hours ago").

use std::io::{BufRead as _, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use kiln_api::build::{CacheRecord, PruneOptions};

use crate::args::cache::{DuArgs, PruneArgs};

/// Docker's `HumanSize` of a byte count.
pub(crate) fn human_size(bytes: u64) -> String {
    kiln_oci::go::human_size(bytes as f64)
}

/// Docker's `HumanDuration`, then " ago".
pub(crate) fn ago(seconds_then: i64) -> String {
    if seconds_then <= 0 {
        return String::new();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let s = (now - seconds_then).max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    let text = match () {
        _ if s < 1 => "Less than a second".to_owned(),
        _ if s == 1 => "1 second".to_owned(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".to_owned(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".to_owned(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{d} days"),
        _ if h < 24 * 30 * 2 => format!("{} weeks", d / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", d / 30),
        _ => format!("{} years", d / 365),
    };
    format!("{text} ago")
}

fn print_table(out: &mut impl std::io::Write, records: &[CacheRecord]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<40}\t{:<12}\t{:<10}\tLAST ACCESSED",
        "ID", "RECLAIMABLE", "SIZE"
    )?;
    for r in records {
        writeln!(
            out,
            "{:<40}\t{:<12}\t{:<10}\t{}",
            r.id,
            "true",
            human_size(r.size),
            ago(r.last_used)
        )?;
    }
    Ok(())
}

fn print_verbose(out: &mut impl std::io::Write, records: &[CacheRecord]) -> std::io::Result<()> {
    for r in records {
        writeln!(out, "ID:\t\t{}", r.id)?;
        if !r.parents.is_empty() {
            writeln!(out, "Parent:\t\t{}", r.parents.join(","))?;
        }
        if r.created > 0 {
            writeln!(out, "Created at:\t{}", kiln_oci::rfc3339_utc(r.created))?;
        }
        writeln!(out, "Mutable:\t{}", r.kind == "exec.cachemount")?;
        writeln!(out, "Reclaimable:\ttrue")?;
        writeln!(out, "Shared:\t\tfalse")?;
        writeln!(out, "Size:\t\t{}", human_size(r.size))?;
        if !r.description.is_empty() {
            writeln!(out, "Description:\t{}", r.description)?;
        }
        writeln!(out, "Usage count:\t{}", r.usage_count)?;
        if r.last_used > 0 {
            writeln!(out, "Last used:\t{}", ago(r.last_used))?;
        }
        writeln!(out, "Type:\t\t{}\n", r.kind)?;
    }
    Ok(())
}

/// `kiln du`.
pub(crate) fn du(args: &DuArgs) -> anyhow::Result<()> {
    let builder = crate::driver::open(args.builder.remote()?.as_ref())?;
    let mut records: Vec<CacheRecord> = builder.disk_usage(&args.filters)?;
    records.sort_by_key(|r| std::cmp::Reverse(r.size));
    let total: u64 = records.iter().map(|r| r.size).sum();
    let mut out = std::io::stdout().lock();
    if args.verbose {
        print_verbose(&mut out, &records)?;
    } else if !records.is_empty() {
        print_table(&mut out, &records)?;
        writeln!(out)?;
    }
    writeln!(out, "Reclaimable:\t{}", human_size(total))?;
    writeln!(out, "Total:\t\t{}", human_size(total))?;
    Ok(())
}

/// `kiln prune`.
pub(crate) fn prune(args: &PruneArgs) -> anyhow::Result<()> {
    let options = PruneOptions {
        all: args.all,
        keep_storage: match &args.keep_storage {
            Some(size) => crate::commands::build::parse_size(size)
                .with_context(|| format!("--keep-storage {size:?}"))?
                as u64,
            None => 0,
        },
        filters: args.filters.clone(),
    };
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all build cache."
        } else {
            "WARNING! This will remove all dangling build cache."
        };
        eprint!("{warning} Are you sure you want to continue? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let removed = crate::driver::open(args.builder.remote()?.as_ref())?.prune(&options)?;
    let total: u64 = removed.iter().map(|r| r.size).sum();
    let mut out = std::io::stdout().lock();
    if args.verbose {
        print_verbose(&mut out, &removed)?;
    } else if !removed.is_empty() {
        print_table(&mut out, &removed)?;
    }
    writeln!(out, "Total:\t{}", human_size(total))?;
    Ok(())
}
