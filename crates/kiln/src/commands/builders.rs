//! `kiln ls` and `kiln inspect`: the builders kiln knows, listed and inspected as
//! `docker buildx ls` / `docker buildx inspect` print them (buildx v0.28's
//! `commands/ls.go`, `commands/inspect.go`).
//!
//! kiln keeps no builder store: the builders are the embedded engine (`default`, driver
//! `embedded`, its node's endpoint the state directory) and, when one is named with
//! `--builder ADDRESS`, `--addr` or `BUILDKIT_HOST`, a BuildKit-compatible daemon
//! (driver `remote`, named by its address). Each has one node, named as its builder;
//! the builder a build would use is the current one (`*`). A node's status, version,
//! platforms, labels and GC rules come from `Builder::info()`: the embedded engine's
//! worker platforms and GC rules, or the daemon's `Info` and `ListWorkers`. `ls
//! --format` takes `table`, `json` or a Go template over buildx's row fields.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::bail;
use kiln_api::BuilderInfo;

use crate::args::builders::{InspectArgs, LsArgs};
use crate::driver::remote::Remote;
use crate::gotemplate::{Field, Template, Value};

/// What a node answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Running(BuilderInfo),
    /// A daemon that could not be reached (buildx's remote driver calls it inactive,
    /// without an error); the reason is kept for `inspect --bootstrap`.
    Inactive(String),
    Error(String),
}

impl Status {
    fn text(&self) -> &'static str {
        match self {
            Status::Running(_) => "running",
            Status::Inactive(_) => "inactive",
            Status::Error(_) => "error",
        }
    }
}

/// One builder and its one node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Builder {
    name: String,
    driver: &'static str,
    current: bool,
    endpoint: String,
    status: Status,
}

impl Builder {
    /// The node is named as its builder, as buildx's docker driver names its node.
    fn node_name(&self) -> &str {
        &self.name
    }

    fn platforms(&self) -> &[String] {
        match &self.status {
            Status::Running(info) => &info.platforms,
            _ => &[],
        }
    }

    fn version(&self) -> &str {
        match &self.status {
            Status::Running(info) => &info.version,
            _ => "",
        }
    }
}

/// The embedded engine, opened and asked.
fn embedded(current: bool) -> Builder {
    let endpoint = crate::driver::embedded::state_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let status = match crate::driver::embedded::open().and_then(|b| Ok(b.info()?)) {
        Ok(info) => Status::Running(info),
        Err(e) => Status::Error(crate::error_chain(&e)),
    };
    Builder {
        name: "default".to_owned(),
        driver: "embedded",
        current,
        endpoint,
        status,
    }
}

/// A daemon, asked over BuildKit's API.
fn remote(remote: &Remote, current: bool) -> Builder {
    let status = match remote
        .connect()
        .and_then(|b| Ok(kiln_api::Builder::info(&b)?))
    {
        Ok(info) => Status::Running(info),
        Err(e) => Status::Inactive(crate::error_chain(&e)),
    };
    Builder {
        name: remote.address.clone(),
        driver: "remote",
        current,
        endpoint: remote.address.clone(),
        status,
    }
}

/// `kiln ls`.
pub(crate) fn ls(args: &LsArgs) -> anyhow::Result<()> {
    // The format is checked before any builder is asked.
    let format = LsFormat::parse(&args.format, !args.no_trunc)?;
    let remote_builder = args.builder.remote()?;
    // As buildx lists them: the named builders, then the default one.
    let mut builders = Vec::new();
    if let Some(address) = &remote_builder {
        builders.push(remote(address, true));
    }
    builders.push(embedded(remote_builder.is_none()));
    let mut out = std::io::stdout().lock();
    out.write_all(render_ls(&builders, &format)?.as_bytes())?;
    out.flush()?;
    if format.table {
        let failed: Vec<&Builder> = builders
            .iter()
            .filter(|b| matches!(b.status, Status::Error(_)))
            .collect();
        if !failed.is_empty() {
            eprintln!();
            for b in failed {
                if let Status::Error(e) = &b.status {
                    eprintln!(
                        "Failed to get status for {} ({}): {}",
                        b.name,
                        b.node_name(),
                        e.trim()
                    );
                }
            }
        }
    }
    Ok(())
}

/// `kiln inspect [--bootstrap] [NAME]`.
pub(crate) fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let builder = match args.name.as_deref() {
        None => match args.builder.remote()? {
            Some(address) => remote(&address, true),
            None => embedded(true),
        },
        Some("default" | "kiln") => embedded(true),
        Some(address) if address.contains("://") => {
            let tls = args.builder.remote()?.map(|r| r.tls).unwrap_or_default();
            let address = Remote {
                address: address.to_owned(),
                tls,
            };
            remote(&address, true)
        }
        Some(name) => bail!(
            "no builder {name:?} found: kiln's builders are the embedded one (default) and daemons named by their address (unix:///path, tcp://host:port)"
        ),
    };
    if let (true, Status::Inactive(reason)) = (args.bootstrap, &builder.status) {
        bail!("failed to bootstrap {}: {reason}", builder.name);
    }
    print!("{}", render_inspect(&builder));
    Ok(())
}

/// buildx's default table.
const LS_TABLE: &str =
    "table {{.Name}}\t{{.DriverEndpoint}}\t{{.Status}}\t{{.Buildkit}}\t{{.Platforms}}";

/// How `ls` prints: `json`, or a Go template (`table …` adds the header row and
/// aligns the columns), as the docker CLI's formatter reads `--format`.
#[derive(Debug)]
struct LsFormat {
    table: bool,
    trunc: bool,
    /// None: JSON.
    template: Option<Template>,
}

impl LsFormat {
    fn parse(format: &str, trunc: bool) -> anyhow::Result<Self> {
        if format == "json" {
            return Ok(Self {
                table: false,
                trunc,
                template: None,
            });
        }
        let format = if format == "table" { LS_TABLE } else { format };
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, format),
        };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let template = Template::parse(&body)
            .map_err(|e| anyhow::anyhow!("--format {format:?}: template parsing error: {e}"))?;
        Ok(Self {
            table,
            trunc,
            template: Some(template),
        })
    }
}

/// One row's fields, as buildx's `lsContext` gives them (methods: not in JSON).
fn ls_row(fields: [(&'static str, String); 7]) -> Value {
    Value::Struct(
        fields
            .into_iter()
            .map(|(name, value)| Field::new(name, "", Value::String(value)))
            .collect(),
    )
}

/// buildx's `ls` output for `builders`.
fn render_ls(builders: &[Builder], format: &LsFormat) -> anyhow::Result<String> {
    let Some(template) = &format.template else {
        return Ok(builders.iter().map(|b| ls_json(b) + "\n").collect());
    };
    let execute = |data: &Value| -> anyhow::Result<String> {
        let mut row = template
            .execute(data)
            .map_err(|e| anyhow::anyhow!("template: {e}"))?;
        row.push('\n');
        Ok(row)
    };
    let indent = if format.table { " \\_ " } else { "" };
    let mut text = String::new();
    if format.table {
        let header: BTreeMap<String, Value> = [
            ("Name", "NAME/NODE"),
            ("DriverEndpoint", "DRIVER/ENDPOINT"),
            ("LastActivity", "LAST ACTIVITY"),
            ("Status", "STATUS"),
            ("Buildkit", "BUILDKIT"),
            ("Platforms", "PLATFORMS"),
            ("Error", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
        text.push_str(&execute(&Value::Map(header))?);
    }
    for b in builders {
        let name = if b.current && format.table {
            format!("{}*", b.name)
        } else {
            b.name.clone()
        };
        text.push_str(&execute(&ls_row([
            ("Name", name),
            ("DriverEndpoint", b.driver.to_owned()),
            ("LastActivity", String::new()),
            ("Status", String::new()),
            ("Buildkit", String::new()),
            ("Platforms", String::new()),
            ("Error", String::new()),
        ]))?);
        let platforms = if format.trunc && format.table {
            truncated_platforms(b.platforms(), 4)
        } else {
            b.platforms().join(", ")
        };
        let error = match &b.status {
            Status::Error(e) => e.clone(),
            _ => String::new(),
        };
        text.push_str(&execute(&ls_row([
            ("Name", format!("{indent}{}", b.node_name())),
            ("DriverEndpoint", format!("{indent}{}", b.endpoint)),
            ("LastActivity", String::new()),
            ("Status", b.status.text().to_owned()),
            ("Buildkit", b.version().to_owned()),
            ("Platforms", platforms),
            ("Error", error),
        ]))?);
    }
    Ok(if format.table {
        kiln_oci::tabwriter::align(&text, 10, 3)
    } else {
        text
    })
}

/// One builder as `ls --format json` prints it: buildx's builder and node fields, keys
/// sorted (buildx re-marshals through a map), `<>&` escaped as Go escapes them.
fn ls_json(b: &Builder) -> String {
    let mut node = serde_json::json!({
        "Name": b.node_name(),
        "Endpoint": b.endpoint,
        "Status": b.status.text(),
    });
    match &b.status {
        Status::Running(info) => {
            if !info.version.is_empty() {
                node["Version"] = info.version.clone().into();
            }
            if !info.platforms.is_empty() {
                node["Platforms"] = info.platforms.clone().into();
            }
            if !info.worker_ids.is_empty() {
                node["IDs"] = info.worker_ids.clone().into();
            }
            if !info.labels.is_empty() {
                node["Labels"] = serde_json::json!(info.labels);
            }
            if !info.gc_policies.is_empty() {
                node["GCPolicy"] = info
                    .gc_policies
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "all": p.all,
                            "filter": if p.filters.is_empty() { serde_json::Value::Null } else { p.filters.clone().into() },
                            "keepDuration": p.keep_duration_ns,
                            "reservedSpace": p.reserved_space,
                            "maxUsedSpace": p.max_used_space,
                            "minFreeSpace": p.min_free_space,
                        })
                    })
                    .collect();
            }
        }
        Status::Error(e) => node["Err"] = e.trim().into(),
        Status::Inactive(_) => {}
    }
    let builder = serde_json::json!({
        "Name": b.name,
        "Driver": b.driver,
        "LastActivity": "0001-01-01T00:00:00Z",
        "Dynamic": false,
        "Nodes": [node],
        "Current": b.current,
    });
    builder
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// buildx's `inspect` output for `b`.
fn render_inspect(b: &Builder) -> String {
    let mut text = format!("Name:\t{}\nDriver:\t{}\n", b.name, b.driver);
    text.push_str("\nNodes:\n");
    text.push_str(&format!("Name:\t{}\n", b.node_name()));
    text.push_str(&format!("Endpoint:\t{}\n", b.endpoint));
    match &b.status {
        Status::Error(e) => text.push_str(&format!("Error:\t{e}\n")),
        status => {
            text.push_str(&format!("Status:\t{}\n", status.text()));
            if !b.version().is_empty() {
                text.push_str(&format!("BuildKit version:\t{}\n", b.version()));
            }
            if !b.platforms().is_empty() {
                text.push_str(&format!("Platforms:\t{}\n", b.platforms().join(", ")));
            }
            if let Status::Running(info) = status {
                if !info.labels.is_empty() {
                    text.push_str("Labels:\n");
                    for (key, value) in &info.labels {
                        text.push_str(&format!("\t{key}:\t{value}\n"));
                    }
                }
                for (i, rule) in info.gc_policies.iter().enumerate() {
                    text.push_str(&format!("GC Policy rule#{i}:\n\tAll:\t{}\n", rule.all));
                    if !rule.filters.is_empty() {
                        text.push_str(&format!("\tFilters:\t{}\n", rule.filters.join(" ")));
                    }
                    if rule.keep_duration_ns > 0 {
                        text.push_str(&format!(
                            "\tKeep Duration:\t{}\n",
                            kiln_oci::go::duration_string(rule.keep_duration_ns)
                        ));
                    }
                    for (label, bytes) in [
                        ("Reserved Space", rule.reserved_space),
                        ("Max Used Space", rule.max_used_space),
                        ("Min Free Space", rule.min_free_space),
                    ] {
                        if bytes > 0 {
                            text.push_str(&format!(
                                "\t{label}:\t{}\n",
                                kiln_oci::go::bytes_size(bytes as f64)
                            ));
                        }
                    }
                }
            }
        }
    }
    kiln_oci::tabwriter::align(&text, 0, 1)
}

/// The platforms' `os/architecture` (what buildx groups by).
fn os_arch(platform: &str) -> String {
    let platform = platform.trim_end_matches('*');
    let mut parts = platform.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(os), Some(arch)) => format!("{os}/{arch}"),
        _ => platform.to_owned(),
    }
}

/// The platforms buildx shows first, grouped, when it truncates.
const MAJOR_PLATFORMS: [&str; 7] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/mips64",
];

/// buildx's `truncPlatforms(pfs, max).String()`: at most `max` groups of one
/// `os/architecture` (the major ones first), a group of several shown as
/// `linux/amd64 (+4)`, and `(N more)` for the platforms left out.
fn truncated_platforms(platforms: &[String], max: usize) -> String {
    // The groups, in the order buildx fills its map (the order only decides which
    // groups make it in; they are shown major first, then sorted).
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    let has = |groups: &Vec<(String, Vec<&str>)>, key: &str| groups.iter().any(|(k, _)| k == key);
    for major in MAJOR_PLATFORMS {
        for platform in platforms {
            if groups.len() >= max {
                break;
            }
            if os_arch(platform) == major {
                match groups.iter_mut().find(|(k, _)| k == major) {
                    Some((_, members)) => members.push(platform),
                    None => groups.push((major.to_owned(), vec![platform])),
                }
            }
        }
    }
    let mut left: Vec<(String, Vec<&str>)> = Vec::new();
    for platform in platforms {
        if groups.len() >= max {
            break;
        }
        let key = os_arch(platform);
        if !has(&groups, &key) {
            match left.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(platform),
                None => left.push((key, vec![platform])),
            }
        }
    }
    groups.extend(left);

    let show = |members: &[&str], key: &str| -> String {
        match members {
            [one] => (*one).to_owned(),
            _ => {
                let star = if members.iter().any(|p| p.ends_with('*')) {
                    "*"
                } else {
                    ""
                };
                format!("{key}{star} (+{})", members.len())
            }
        }
    };
    let mut out = Vec::new();
    let mut count = 0;
    for major in MAJOR_PLATFORMS {
        if let Some((key, members)) = groups.iter().find(|(k, _)| k == major) {
            out.push(show(members, key));
            count += members.len();
        }
    }
    let mut rest: Vec<&(String, Vec<&str>)> = groups
        .iter()
        .filter(|(k, _)| !MAJOR_PLATFORMS.contains(&k.as_str()))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, members) in rest {
        if out.len() >= max {
            break;
        }
        out.push(show(members, key));
        count += members.len();
    }
    if platforms.len() > count {
        out.push(format!("({} more)", platforms.len() - count));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What buildkitd v0.24 reports on this kind of machine (QEMU for the rest).
    fn detected() -> Vec<String> {
        "linux/amd64 linux/amd64/v2 linux/amd64/v3 linux/amd64/v4 linux/arm64 linux/riscv64 linux/ppc64 linux/ppc64le linux/s390x linux/386 linux/loong64 linux/arm/v7 linux/arm/v6"
            .split(' ')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn platforms_truncated_as_buildx_ls_shows_them() {
        assert_eq!(
            truncated_platforms(&detected(), 4),
            "linux/amd64 (+4), linux/arm64, linux/arm (+2), linux/ppc64le, (5 more)"
        );
        let few: Vec<String> = ["linux/amd64", "linux/arm64"].map(str::to_owned).to_vec();
        assert_eq!(truncated_platforms(&few, 4), "linux/amd64, linux/arm64");
        let odd: Vec<String> = [
            "linux/386",
            "linux/amd64",
            "linux/amd64/v2",
            "freebsd/amd64",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            truncated_platforms(&odd, 4),
            "linux/amd64 (+2), freebsd/amd64, linux/386"
        );
        assert_eq!(truncated_platforms(&[], 4), "");
    }

    fn lsx(current: bool) -> Builder {
        Builder {
            name: "lsx".to_owned(),
            driver: "remote",
            current,
            endpoint: "unix:///tmp/ls-oracle/bk.sock".to_owned(),
            status: Status::Running(BuilderInfo {
                version: "v0.24.0".to_owned(),
                platforms: detected(),
                ..BuilderInfo::default()
            }),
        }
    }

    /// buildx v0.28's `ls` with a remote builder on buildkitd v0.24 (the node named
    /// `lsx0` there; kiln names a node as its builder).
    #[test]
    fn ls_table_as_buildx_prints_it() {
        let gone = Builder {
            name: "gone".to_owned(),
            driver: "remote",
            current: false,
            endpoint: "unix:///tmp/ls-oracle/nothing.sock".to_owned(),
            status: Status::Inactive("connection refused".to_owned()),
        };
        assert_eq!(
            render_ls(&[gone, lsx(true)], &LsFormat::parse("table", true).unwrap()).unwrap(),
            "NAME/NODE   DRIVER/ENDPOINT                          STATUS     BUILDKIT   PLATFORMS\n\
             gone        remote                                                         \n \
             \\_ gone     \\_ unix:///tmp/ls-oracle/nothing.sock   inactive              \n\
             lsx*        remote                                                         \n \
             \\_ lsx      \\_ unix:///tmp/ls-oracle/bk.sock        running    v0.24.0    linux/amd64 (+4), linux/arm64, linux/arm (+2), linux/ppc64le, (5 more)\n"
        );
        assert!(
            render_ls(&[lsx(false)], &LsFormat::parse("table", false).unwrap())
                .unwrap()
                .contains("v0.24.0    linux/amd64, linux/amd64/v2, linux/amd64/v3,")
        );
    }

    /// Custom templates as buildx v0.28 printed them: no indent nor truncation
    /// outside a table, `table …` adds the header and aligns.
    #[test]
    fn ls_custom_templates_as_buildx_prints_them() {
        let plain = LsFormat::parse("{{.Name}}: {{.Status}} [{{.Platforms}}] {{.Error}}", true);
        assert_eq!(
            render_ls(&[lsx(false)], &plain.unwrap()).unwrap(),
            format!("lsx:  [] \nlsx: running [{}] \n", detected().join(", "))
        );
        let table = LsFormat::parse("table {{.Name}}\\t{{.Buildkit}}\\t{{.Platforms}}", true);
        assert_eq!(
            render_ls(&[lsx(true)], &table.unwrap()).unwrap(),
            "NAME/NODE   BUILDKIT   PLATFORMS\nlsx*                   \n \\_ lsx     v0.24.0    linux/amd64 (+4), linux/arm64, linux/arm (+2), linux/ppc64le, (5 more)\n"
        );
        assert!(LsFormat::parse("{{.Name", true).is_err());
    }

    #[test]
    fn ls_json_as_buildx_prints_it() {
        assert_eq!(
            render_ls(&[lsx(false)], &LsFormat::parse("json", true).unwrap()).unwrap(),
            format!(
                "{{\"Current\":false,\"Driver\":\"remote\",\"Dynamic\":false,\"LastActivity\":\"0001-01-01T00:00:00Z\",\"Name\":\"lsx\",\"Nodes\":[{{\"Endpoint\":\"unix:///tmp/ls-oracle/bk.sock\",\"Name\":\"lsx\",\"Platforms\":{},\"Status\":\"running\",\"Version\":\"v0.24.0\"}}]}}\n",
                serde_json::to_string(&detected()).unwrap()
            )
        );
    }

    /// The labels and GC rules buildkitd v0.24 reported, as buildx v0.28 printed them.
    #[test]
    fn inspect_labels_and_gc_rules_as_buildx_prints_them() {
        let mut builder = lsx(true);
        if let Status::Running(info) = &mut builder.status {
            info.labels = [
                ("org.mobyproject.buildkit.worker.executor", "oci"),
                (
                    "org.mobyproject.buildkit.worker.oci.process-mode",
                    "sandbox",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            info.gc_policies = vec![
                kiln_api::GcPolicyInfo {
                    filters: vec![
                        "type==source.local,type==exec.cachemount,type==source.git.checkout"
                            .to_owned(),
                    ],
                    keep_duration_ns: 172_800_000_000_000,
                    max_used_space: 512_000_000,
                    ..Default::default()
                },
                kiln_api::GcPolicyInfo {
                    all: true,
                    reserved_space: 10_000_000_000,
                    max_used_space: 100_000_000_000,
                    min_free_space: 51_000_000_000,
                    ..Default::default()
                },
            ];
        }
        let text = render_inspect(&builder);
        assert!(
            text.ends_with(
                "Labels:\n org.mobyproject.buildkit.worker.executor:         oci\n org.mobyproject.buildkit.worker.oci.process-mode: sandbox\n\
                 GC Policy rule#0:\n All:            false\n Filters:        type==source.local,type==exec.cachemount,type==source.git.checkout\n Keep Duration:  48h0m0s\n Max Used Space: 488.3MiB\n\
                 GC Policy rule#1:\n All:            true\n Reserved Space: 9.313GiB\n Max Used Space: 93.13GiB\n Min Free Space: 47.5GiB\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn inspect_as_buildx_prints_it() {
        assert_eq!(
            render_inspect(&lsx(true)),
            format!(
                "Name:   lsx\nDriver: remote\n\nNodes:\nName:             lsx\nEndpoint:         unix:///tmp/ls-oracle/bk.sock\nStatus:           running\nBuildKit version: v0.24.0\nPlatforms:        {}\n",
                detected().join(", ")
            )
        );
        let broken = Builder {
            status: Status::Error("permission denied".to_owned()),
            ..lsx(true)
        };
        assert!(
            render_inspect(&broken).ends_with(
                "\nEndpoint: unix:///tmp/ls-oracle/bk.sock\nError:    permission denied\n"
            )
        );
    }
}
