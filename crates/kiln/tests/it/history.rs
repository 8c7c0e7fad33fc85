//! `kiln history ls`: the embedded engine keeps a record of each build, listed as
//! `docker buildx history ls` lists them.

use crate::support::{check, kiln, tools_present};

#[test]
fn builds_are_listed_newest_first_with_their_outcome() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let project = work.path().join("project");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        "FROM scratch\nCOPY Dockerfile /\n",
    )
    .unwrap();
    fs_err::write(
        project.join("broken.Dockerfile"),
        "FROM scratch\nCOPY missing /\n",
    )
    .unwrap();
    let out = work.path().join("out");
    check(&kiln(
        &state,
        &[
            "build",
            "-o",
            &format!("type=local,dest={}", out.display()),
            project.to_str().unwrap(),
        ],
    ));
    let broken = project.join("broken.Dockerfile");
    let failed = kiln(
        &state,
        &[
            "build",
            "-f",
            broken.to_str().unwrap(),
            project.to_str().unwrap(),
        ],
    );
    assert!(!failed.status.success());
    let table = String::from_utf8(check_stdout(&kiln(&state, &["history", "ls"]))).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    // buildx's columns, lined up: each column starts where its header does.
    let column = |name: &str| lines[0].find(name).unwrap();
    let cell = |line: &str, from: &str| {
        line[column(from)..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(lines[0].starts_with("BUILD ID   "), "{table}");
    assert_eq!(cell(lines[1], "NAME"), "project/broken.Dockerfile");
    assert_eq!(cell(lines[1], "STATUS"), "Error");
    assert_eq!(cell(lines[2], "NAME"), "project");
    assert_eq!(cell(lines[2], "STATUS"), "Completed");
    assert!(
        lines[2][column("CREATED AT")..].contains(" ago "),
        "{table}"
    );
    let json = String::from_utf8(check_stdout(&kiln(
        &state,
        &["history", "ls", "--format", "json"],
    )))
    .unwrap();
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[1]["status"], "Completed");
    assert_eq!(records[1]["name"], "project");
    assert!(records[1]["total_steps"].as_u64().unwrap() >= 2);
    assert!(
        records[1]["ref"]
            .as_str()
            .unwrap()
            .starts_with("default/default/")
    );
}

fn check_stdout(output: &std::process::Output) -> Vec<u8> {
    check(output);
    output.stdout.clone()
}
