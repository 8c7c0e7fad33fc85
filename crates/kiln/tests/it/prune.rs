//! `kiln du` and `kiln prune`: the build cache's records, and what removing them frees.

use crate::support::{BaseImage, check, kiln, tools_present};

/// `kiln du` lists the cache's records by type; `kiln prune` removes what its filters
/// select, `--all` everything; a build after a prune runs its steps again and works.
#[test]
fn du_and_prune() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("cache");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("data.txt"), "data\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nCOPY data.txt /\n\
             RUN --mount=type=cache,target=/cache echo hi > /cache/x && head -c 300000 /dev/zero > /big\n"
        ),
    )
    .unwrap();
    let dir = project.to_str().unwrap();
    check(&kiln(state, &["build", "--progress=plain", dir]));

    let du = kiln(state, &["du"]);
    let listing = String::from_utf8_lossy(&du.stdout).into_owned();
    assert!(du.status.success());
    assert!(listing.starts_with("ID"), "{listing}");
    assert!(listing.contains("Total:"), "{listing}");
    let verbose = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    for kind in [
        "Type:\t\tregular",
        "Type:\t\tsource.local",
        "Type:\t\texec.cachemount",
    ] {
        assert!(verbose.contains(kind), "{kind}:\n{verbose}");
    }
    assert!(verbose.contains("3/3] RUN --mount=type=cache"), "{verbose}");

    // A cached rebuild is one more use of each layer it reuses (written once, at the
    // end of the build).
    let run_usage = |verbose: &str| -> String {
        let record = verbose
            .split("\n\n")
            .find(|r| r.contains("3/3] RUN") && r.contains("Type:\t\tregular"))
            .unwrap_or_else(|| panic!("no RUN record:\n{verbose}"));
        record
            .lines()
            .find_map(|l| l.strip_prefix("Usage count:\t"))
            .unwrap_or_else(|| panic!("no usage count:\n{record}"))
            .to_owned()
    };
    assert_eq!(run_usage(&verbose), "1");
    let rebuilt = check(&kiln(state, &["build", "--progress=plain", dir]));
    assert_eq!(rebuilt.matches("CACHED").count(), 4, "{rebuilt}");
    let verbose = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    assert_eq!(run_usage(&verbose), "2");

    // Only the cache mount goes.
    let pruned = kiln(state, &["prune", "-f", "--filter", "type==exec.cachemount"]);
    let pruned = String::from_utf8_lossy(&pruned.stdout).into_owned();
    assert_eq!(
        pruned.lines().filter(|l| l.contains("true")).count(),
        1,
        "{pruned}"
    );
    let verbose = String::from_utf8_lossy(&kiln(state, &["du", "--verbose"]).stdout).into_owned();
    assert!(!verbose.contains("exec.cachemount"), "{verbose}");
    assert!(verbose.contains("source.local"), "{verbose}");

    // Everything goes; the next build runs its steps again.
    check(&kiln(state, &["prune", "--all", "--force"]));
    let total = String::from_utf8_lossy(&kiln(state, &["du"]).stdout).into_owned();
    assert!(total.contains("Total:\t\t0B"), "{total}");
    let log = check(&kiln(state, &["build", "--progress=plain", dir]));
    assert!(!log.contains("CACHED"), "{log}");
    assert!(log.contains("DONE"), "{log}");
}
