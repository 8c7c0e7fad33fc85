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
