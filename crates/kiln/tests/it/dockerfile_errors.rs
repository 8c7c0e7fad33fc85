//! Dockerfile mistakes reported in BuildKit v0.24.0's words, under the lines they
//! are on.

use crate::support::{kiln, tools_present};

#[test]
fn mistakes_in_buildkit_words() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let project = work.path().join("ctx");
    fs_err::create_dir_all(&project).unwrap();
    for (dockerfile, message) in [
        (
            "FROM scratch\nCOPYY a b\n",
            "dockerfile parse error on line 2: unknown instruction: COPYY (did you mean COPY?)",
        ),
        (
            "FROM scratch\nRUN --mont=type=tmpfs,target=/x true\n",
            "dockerfile parse error on line 2: unknown flag: --mont (did you mean mount?)",
        ),
        (
            "FROM scratch\nCOPY --parents a /b/\n",
            "dockerfile parse error on line 2: unknown flag: --parents",
        ),
        (
            "FROM scratch\nRUN --mount=type=tmpf,target=/x true\n",
            "unsupported mount type \"tmpf\" (did you mean tmpfs?)",
        ),
        (
            "FROM scratch\nARG M=abc\nCOPY --chmod=$M a /a\n",
            "invalid syntax",
        ),
    ] {
        fs_err::write(project.join("Dockerfile"), dockerfile).unwrap();
        let output = kiln(
            &state,
            &["build", "--progress=plain", project.to_str().unwrap()],
        );
        assert!(!output.status.success(), "{dockerfile}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("failed to solve: {message}\n")),
            "{dockerfile}: {stderr}"
        );
        // The excerpt marks the line.
        let line = dockerfile.lines().count();
        assert!(stderr.contains(&format!("Dockerfile:{line}\n")), "{stderr}");
    }
}

#[test]
fn a_missing_copy_source_names_the_path() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("ctx");
    fs_err::create_dir_all(&context).unwrap();
    fs_err::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY nothing-here.txt /\n",
    )
    .unwrap();
    let output = kiln(
        &work.path().join("state"),
        &["build", "--progress=plain", context.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("COPY nothing-here.txt /"), "{stderr}");
    assert!(
        stderr.contains("\"/nothing-here.txt\": not found"),
        "{stderr}"
    );
}
