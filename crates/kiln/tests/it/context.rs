//! The build context across rebuilds: only what changed is copied again, and the
//! image always holds exactly the context as it is now.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::support::{BaseImage, check, kiln, tools_present, tree_listing as listing};

/// COPY of a whole context, rebuilt after a file is changed, one removed and one
/// added: each time the image (unpacked by umoci) holds exactly the context, with
/// modes, a symlink and a hardlinked pair, next to what the base image had under a
/// shared parent directory.
#[test]
fn rebuilt_contexts_are_copied_exactly() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("ctx");
    let files = project.join("files");
    fs_err::create_dir_all(files.join("sub/deeper")).unwrap();
    for i in 0..300 {
        fs_err::write(files.join(format!("sub/f{i}.txt")), format!("{i}\n")).unwrap();
    }
    fs_err::write(files.join("sub/deeper/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs_err::set_permissions(
        files.join("sub/deeper/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs_err::hard_link(files.join("sub/f1.txt"), files.join("sub/f1-link.txt")).unwrap();
    std::os::unix::fs::symlink("sub/f2.txt", files.join("to-f2")).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nCOPY files /app\nCOPY files/sub/deeper /bin/extra\n\
             WORKDIR /srv\nCOPY files/sub/f3.txt .\nCOPY files ./tree/\nCOPY files/sub/f4.txt /srv\n"
        ),
    )
    .unwrap();
    let build = |name: &str| {
        let archive = work.path().join(format!("{name}.tar"));
        let log = check(&kiln(
            state,
            &[
                "build",
                "--progress=plain",
                "-o",
                &format!("type=oci,dest={},name=img:1", archive.display()),
                project.to_str().unwrap(),
            ],
        ));
        let rootfs =
            crate::support::umoci_unpack(&archive, &work.path().join(format!("unpacked-{name}")));
        (rootfs, log)
    };
    let compare = |rootfs: &Path| {
        assert_eq!(listing(&rootfs.join("app")), listing(&files));
        assert_eq!(
            listing(&rootfs.join("bin/extra")),
            listing(&files.join("sub/deeper"))
        );
        assert!(
            rootfs.join("bin/busybox").is_file(),
            "the base's /bin is kept"
        );
        // Into a directory a lower layer made (WORKDIR): files go inside it.
        assert_eq!(listing(&rootfs.join("srv/tree")), listing(&files));
        assert!(rootfs.join("srv/f3.txt").is_file());
        assert!(rootfs.join("srv/f4.txt").is_file());
    };
    let (rootfs, _) = build("first");
    compare(&rootfs);
    let bin_mode = fs_err::metadata(rootfs.join("bin"))
        .unwrap()
        .permissions()
        .mode();

    fs_err::write(files.join("sub/f7.txt"), "seven, changed\n").unwrap();
    fs_err::remove_file(files.join("sub/f8.txt")).unwrap();
    fs_err::write(files.join("sub/new.txt"), "new\n").unwrap();
    let (rootfs, log) = build("second");
    assert!(log.contains("COPY files /app"), "{log}");
    compare(&rootfs);
    assert!(!rootfs.join("app/sub/f8.txt").exists());
    assert_eq!(
        fs_err::read_to_string(rootfs.join("app/sub/f7.txt")).unwrap(),
        "seven, changed\n"
    );
    assert_eq!(
        fs_err::metadata(rootfs.join("bin"))
            .unwrap()
            .permissions()
            .mode(),
        bin_mode
    );
    // The hardlinked pair is still one file in the image.
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        fs_err::metadata(rootfs.join("app/sub/f1.txt"))
            .unwrap()
            .ino(),
        fs_err::metadata(rootfs.join("app/sub/f1-link.txt"))
            .unwrap()
            .ino()
    );
}

/// `COPY --chmod` with a symbolic mode changes each file's own bits as chmod(1) would
/// (`X` only for directories and executables); an octal one sets them.
#[test]
fn copy_chmod_symbolic_and_octal() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("chmod");
    fs_err::create_dir_all(project.join("tree/sub")).unwrap();
    for (name, mode) in [
        ("tree/plain", 0o644),
        ("tree/tool", 0o744),
        ("tree/sub/x", 0o600),
    ] {
        fs_err::write(project.join(name), name).unwrap();
        fs_err::set_permissions(project.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    fs_err::set_permissions(
        project.join("tree/sub"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             COPY --chmod=go+rX,u-w tree /sym\n\
             COPY --chmod=0640 tree /oct\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    crate::support::build_into(state, &project, &out, &[]);
    let mode = |p: &str| fs_err::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("sym/plain"), 0o444);
    assert_eq!(mode("sym/tool"), 0o555);
    assert_eq!(mode("sym/sub"), 0o555);
    assert_eq!(mode("sym/sub/x"), 0o444);
    assert_eq!(mode("oct/plain"), 0o640);
    assert_eq!(mode("oct/sub/x"), 0o640);
}

/// What the client sends of a context, as buildx sends it to BuildKit: a source
/// through a symlink (relative, absolute as if the context were `/`, chained, or
/// climbing out of the context) is what the link names, also when only that path is
/// sent; a unix socket is an empty file with its mode; every owner is root.
#[test]
fn context_symlinks_sockets_and_owners() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let project = work.path().join("links");
    fs_err::create_dir_all(project.join("real/sub")).unwrap();
    fs_err::write(project.join("real/file"), "f\n").unwrap();
    fs_err::write(project.join("real/sub/s"), "s\n").unwrap();
    for (link, target) in [
        ("linkdir", "real"),
        ("abslink", "/real"),
        ("chain", "linkdir"),
        ("esc", "../../real"),
        ("esc-decoy", "../real"),
        ("linkfile", "real/file"),
    ] {
        std::os::unix::fs::symlink(target, project.join(link)).unwrap();
    }
    drop(std::os::unix::net::UnixListener::bind(project.join("sock")).unwrap());
    fs_err::set_permissions(project.join("sock"), std::fs::Permissions::from_mode(0o640)).unwrap();
    fs_err::write(project.join("owned"), "o\n").unwrap();
    std::os::unix::fs::chown(project.join("owned"), Some(1000), Some(1000)).unwrap();
    // What `esc-decoy` would reach if it left the context: it must not be read.
    fs_err::create_dir_all(work.path().join("real")).unwrap();
    fs_err::write(work.path().join("real/file"), "outside the context\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        "FROM scratch\n\
         COPY linkdir/file /t/through\n\
         COPY linkdir /t/linkdir\n\
         COPY abslink/sub /t/abs-sub\n\
         COPY chain /t/chain\n\
         COPY esc/file /t/esc-file\n\
         COPY esc-decoy/file /t/esc-decoy-file\n\
         COPY linkfile /t/linkfile\n\
         COPY link* /t/glob/\n\
         COPY sock owned /t/files/\n",
    )
    .unwrap();
    let image = work.path().join("links.tar");
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=oci,dest={},name=img:1", image.display()),
            project.to_str().unwrap(),
        ],
    ));
    let rootfs = crate::support::umoci_unpack(&image, &work.path().join("unpacked"));
    let t = rootfs.join("t");
    for file in [
        "through",
        "linkdir/file",
        "chain/file",
        "esc-file",
        "esc-decoy-file",
        "linkfile",
        "glob/file",
        "glob/linkfile",
    ] {
        let meta = fs_err::symlink_metadata(t.join(file)).unwrap();
        assert!(meta.is_file(), "/t/{file}");
        assert_eq!(fs_err::read_to_string(t.join(file)).unwrap(), "f\n");
    }
    for sub in ["linkdir/sub/s", "abs-sub/s", "chain/sub/s", "glob/sub/s"] {
        assert_eq!(
            fs_err::read_to_string(t.join(sub)).unwrap(),
            "s\n",
            "/t/{sub}"
        );
    }
    use std::os::unix::fs::MetadataExt as _;
    let sock = fs_err::symlink_metadata(t.join("files/sock")).unwrap();
    assert!(sock.is_file() && sock.len() == 0);
    assert_eq!(sock.mode() & 0o7777, 0o640);
    let owned = fs_err::metadata(t.join("files/owned")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (0, 0));
    kiln_test::reliability_figure(
        "escapes",
        "context symlinks climbing out of the context (../../real, and ../real with a decoy there) and absolute ones, followed by COPY: escapes tried, escaped",
        "3, 0",
    );
}

/// The ignore file: `<Dockerfile name>.dockerignore` beside the Dockerfile wins over
/// the context's `.dockerignore`; with only a lowercase `dockerfile` that one is
/// built (and, its name being `dockerfile`, the context's `.dockerignore` applies, as
/// with buildx); a pattern patternmatcher refuses fails the build with its message.
#[test]
fn ignore_files_and_lowercase_dockerfile() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let project = work.path().join("ignore");
    fs_err::create_dir_all(&project).unwrap();
    for name in ["a", "b", "c"] {
        fs_err::write(project.join(name), name).unwrap();
    }
    fs_err::write(project.join(".dockerignore"), "a\n").unwrap();
    fs_err::write(project.join("Dockerfile.dockerignore"), "b\n").unwrap();
    fs_err::write(project.join("Dockerfile"), "FROM scratch\nCOPY . /x/\n").unwrap();
    let copied = |out: &str| {
        let out = work.path().join(out);
        crate::support::build_into(&state, &project, &out, &[]);
        let mut names: Vec<String> = fs_err::read_dir(out.join("x"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        copied("own"),
        [
            ".dockerignore",
            "Dockerfile",
            "Dockerfile.dockerignore",
            "a",
            "c"
        ]
    );
    fs_err::rename(project.join("Dockerfile"), project.join("dockerfile")).unwrap();
    assert_eq!(
        copied("lowercase"),
        [
            ".dockerignore",
            "Dockerfile.dockerignore",
            "b",
            "c",
            "dockerfile"
        ]
    );
    fs_err::write(project.join(".dockerignore"), "!\n").unwrap();
    let refused = kiln(
        &state,
        &["build", "--progress=plain", project.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("illegal exclusion pattern: \"!\""),
        "{stderr}"
    );
}
