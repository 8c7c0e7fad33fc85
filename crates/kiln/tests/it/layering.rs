//! The map holds (`../shared/design/ARCHITECTURE.md`, "Allowed dependency direction"):
//! each crate depends only on the crates its row allows, and the CLI reaches the
//! engine only through `kiln_api::Builder`, naming `kiln_engine` in one file.

use std::collections::BTreeMap;
use std::path::Path;

/// Each crate's allowed kiln dependencies (the crates table's "may depend on").
const ALLOWED: &[(&str, &[&str])] = &[
    ("kiln-oci", &[]),
    ("kiln-llb", &["kiln-oci"]),
    ("kiln-dockerfile", &["kiln-llb", "kiln-oci"]),
    ("kiln-bake", &["kiln-oci"]),
    ("kiln-registry", &["kiln-oci"]),
    ("kiln-store", &["kiln-oci"]),
    ("kiln-exec", &["kiln-oci"]),
    ("kiln-solver", &["kiln-oci"]),
    (
        "kiln-worker",
        &[
            "kiln-llb",
            "kiln-solver",
            "kiln-store",
            "kiln-exec",
            "kiln-registry",
            "kiln-oci",
        ],
    ),
    ("kiln-export", &["kiln-store", "kiln-registry", "kiln-oci"]),
    (
        "kiln-remotecache",
        &["kiln-solver", "kiln-store", "kiln-registry", "kiln-oci"],
    ),
    ("kiln-api", &["kiln-llb", "kiln-oci"]),
    (
        "kiln-engine",
        &[
            "kiln-oci",
            "kiln-llb",
            "kiln-dockerfile",
            "kiln-registry",
            "kiln-store",
            "kiln-exec",
            "kiln-solver",
            "kiln-worker",
            "kiln-export",
            "kiln-remotecache",
            "kiln-api",
        ],
    ),
    ("kilnd", &["kiln-engine", "kiln-api"]),
    (
        "kiln",
        &[
            "kiln-api",
            "kiln-bake",
            "kiln-llb",
            "kiln-oci",
            "kiln-engine",
            // `imagetools` reads and pushes registries from the client, as buildx does.
            "kiln-registry",
        ],
    ),
    ("kiln-test", &[]),
];

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
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (name, deps) in kiln_dependencies() {
        let Some(row) = allowed.get(name.as_str()) else {
            wrong.push(format!("{name} has no row in the allow-list"));
            continue;
        };
        for dep in deps.iter().filter(|d| !row.contains(&d.as_str())) {
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
