//! Who owns what COPY and ADD write, and the directories they make, as BuildKit
//! v0.24.0 gives them (each expectation was read off an image BuildKit built from the
//! same Dockerfile).

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use crate::support::{BaseImage, check, kiln, tools_present, tree, umoci_unpack};

/// Mode (permission bits) and owner of `path`.
fn mode_owner(path: &Path) -> (u32, u32, u32) {
    let meta = fs_err::symlink_metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

/// `--chown` resolved as BuildKit's `readUser`: a uid alone gives gid = uid, names
/// missing from the image fall back to 0 (or to the user's gid for a group), and
/// `ADD --chown` owns what it unpacks. A directory COPY makes for a directory source
/// is 0755 (or the `--chmod` mode), owned by the `--chown` owner or root, whatever
/// the source directory's mode and owner; an existing destination keeps its own.
/// (`zstd` must be installed: the test compresses an archive with it.)
#[test]
fn chown_and_created_directories_as_buildkit() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("owners");
    let src = project.join("src");
    fs_err::create_dir_all(src.join("sub")).unwrap();
    fs_err::write(project.join("f"), "f\n").unwrap();
    fs_err::write(src.join("sub/x"), "x\n").unwrap();
    fs_err::set_permissions(&src, std::fs::Permissions::from_mode(0o751)).unwrap();
    fs_err::set_permissions(src.join("sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Context owners never reach the image: the client sends everything as root's.
    std::os::unix::fs::chown(&src, Some(1000), Some(1000)).unwrap();
    let archive = Command::new("tar")
        .args(["--owner=1000", "--group=1000", "-cf"])
        .arg(project.join("a.tar"))
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(archive.success());
    let zstd = Command::new("zstd")
        .args(["-q", "-o"])
        .arg(project.join("a.tar.zst"))
        .arg(project.join("a.tar"))
        .status()
        .unwrap();
    assert!(zstd.success());
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN mkdir /exist && chown 7:7 /exist && chmod 0700 /exist && \
                 echo 'app:x:1234:4321::/:/bin/sh' >> /etc/passwd && echo 'grp:x:555:' >> /etc/group\n\
             COPY --chown=1000 f /o/uid-only\n\
             COPY --chown=1000:grp f /o/uid-grp\n\
             COPY --chown=app f /o/app\n\
             COPY --chown=nouser f /o/nouser\n\
             COPY --chown=nouser:grp f /o/nouser-grp\n\
             COPY --chown=app:nogrp f /o/app-nogrp\n\
             COPY src /newdir\n\
             COPY --chown=app src /newdir-chown\n\
             COPY --chmod=0750 src /newdir-chmod\n\
             COPY --chown=app src /exist\n\
             ADD --chown=app a.tar /unpacked/\n\
             ADD --chown=2:3 a.tar.zst /unpacked-zstd/deep/\n"
        ),
    )
    .unwrap();
    let image = work.path().join("owners.tar");
    check(&kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=oci,dest={},name=img:1", image.display()),
            project.to_str().unwrap(),
        ],
    ));
    let rootfs = umoci_unpack(&image, &work.path().join("unpacked"));
    let expected: [(&str, (u32, u32, u32)); 22] = [
        ("o/uid-only", (0o644, 1000, 1000)),
        ("o/uid-grp", (0o644, 1000, 555)),
        ("o/app", (0o644, 1234, 4321)),
        ("o/nouser", (0o644, 0, 0)),
        ("o/nouser-grp", (0o644, 0, 555)),
        ("o/app-nogrp", (0o644, 1234, 4321)),
        // Parents COPY creates take the owner too.
        ("o", (0o755, 1000, 1000)),
        ("newdir", (0o755, 0, 0)),
        ("newdir/sub", (0o700, 0, 0)),
        ("newdir-chown", (0o755, 1234, 4321)),
        ("newdir-chown/sub", (0o700, 1234, 4321)),
        ("newdir-chmod", (0o750, 0, 0)),
        ("newdir-chmod/sub", (0o750, 0, 0)),
        ("newdir-chmod/sub/x", (0o750, 0, 0)),
        ("exist", (0o700, 7, 7)),
        ("exist/sub", (0o700, 1234, 4321)),
        ("unpacked", (0o755, 1234, 4321)),
        ("unpacked/sub", (0o700, 1234, 4321)),
        ("unpacked/sub/x", (0o644, 1234, 4321)),
        // zstd-compressed too; the directories made for it are 0755 and the owner's.
        ("unpacked-zstd", (0o755, 2, 3)),
        ("unpacked-zstd/deep", (0o755, 2, 3)),
        ("unpacked-zstd/deep/sub/x", (0o644, 2, 3)),
    ];
    for (path, want) in expected {
        assert_eq!(mode_owner(&rootfs.join(path)), want, "/{path}");
    }
}

/// `COPY --exclude`: patterns in `.dockerignore` syntax, relative to the copied
/// directory, a wildcard's matches filtered by name, `!` re-including.
#[test]
fn copy_exclude_patterns() {
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    for dir in ["d/keep", "d/drop"] {
        fs_err::create_dir_all(ctx.join(dir)).unwrap();
    }
    for file in [
        "d/keep/a.txt",
        "d/drop/b.txt",
        "d/c.md",
        "home1.txt",
        "home2.md",
    ] {
        fs_err::write(ctx.join(file), file).unwrap();
    }
    fs_err::write(
        ctx.join("Dockerfile"),
        "# syntax=docker/dockerfile:1-labs\nFROM scratch\nCOPY --exclude=drop d /d/\nCOPY --exclude=*.txt hom* /h/\n\
         COPY --exclude=* --exclude=!keep d /n/\n",
    )
    .unwrap();
    let out = work.path().join("out");
    check(&kiln(
        &work.path().join("state"),
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    let expected: BTreeSet<String> = [
        "d",
        "d/c.md",
        "d/keep",
        "d/keep/a.txt",
        "h",
        "h/home2.md",
        "n",
        "n/keep",
        "n/keep/a.txt",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(tree(&out), expected);
}
