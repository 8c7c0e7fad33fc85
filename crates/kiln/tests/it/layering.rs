//! The map holds (`docs/ARCHITECTURE.md`, "Allowed dependency direction"): each crate
//! depends only on the crates its row of the crates table allows, and the CLI reaches
//! the engine only through `kiln_api::Builder`, naming `kiln_engine` in one file.

use std::collections::BTreeMap;
use std::path::Path;

/// Each crate's allowed kiln dependencies, read from the crates table's last column
/// ("may depend on": short names such as `oci`, parenthesised reasons, `—` for none,
/// `any` for the test harness).
fn allowed_by_the_map() -> BTreeMap<String, Option<Vec<String>>> {
    let map = fs_err::read_to_string(workspace_root().join("docs/ARCHITECTURE.md")).unwrap();
    let table = map
        .split("## Crates")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/ARCHITECTURE.md has a crates table");
    let mut allowed = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let name = cells[0].trim().trim_matches('`').to_owned();
        let mut column = cells.last().unwrap().trim().to_owned();
        // Reasons in parentheses may hold commas of their own.
        while let (Some(open), Some(close)) = (column.find('('), column.find(')')) {
            column.replace_range(open..=close, "");
        }
        let deps = match column.trim() {
            "any" => None,
            "—" => Some(Vec::new()),
            list => Some(
                list.split(',')
                    .map(|dep| format!("kiln-{}", dep.trim()))
                    .collect(),
            ),
        };
        allowed.insert(name, deps);
    }
    allowed
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/kiln is two levels below the workspace")
}

/// Every workspace crate's normal (non-dev) kiln dependencies, from `cargo metadata`.
fn kiln_dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut crates = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let deps = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|name| name.starts_with("kiln"))
            .map(str::to_owned)
            .collect();
        crates.insert(package["name"].as_str().unwrap().to_owned(), deps);
    }
    crates
}

#[test]
fn every_crate_depends_only_on_what_its_row_allows() {
    let allowed = allowed_by_the_map();
    assert!(
        allowed.get("kiln-worker").is_some_and(|row| row
            .as_ref()
            .is_some_and(|deps| deps.contains(&"kiln-solver".to_owned()))),
        "the crates table is read: {allowed:?}"
    );
    let mut wrong = Vec::new();
    for (name, deps) in kiln_dependencies() {
        let Some(row) = allowed.get(&name) else {
            wrong.push(format!("{name} has no row in the crates table"));
            continue;
        };
        let Some(row) = row else { continue };
        for dep in deps.iter().filter(|d| !row.contains(d)) {
            wrong.push(format!("{name} -> {dep}"));
        }
    }
    assert!(wrong.is_empty(), "edges the map does not allow: {wrong:?}");
}

#[test]
fn the_cli_names_the_engine_only_in_the_embedded_driver() {
    let src = workspace_root().join("crates/kiln/src");
    let mut naming = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let code: String = fs_err::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("//"))
                    .collect();
                if code.contains("kiln_engine") {
                    naming.push(path.strip_prefix(&src).unwrap().display().to_string());
                }
            }
        }
    }
    assert_eq!(naming, ["driver/embedded.rs"], "files naming kiln_engine");
}
