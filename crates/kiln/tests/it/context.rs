//! The build context across rebuilds: only what changed is copied again, and the
//! image always holds exactly the context as it is now.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use std::process::Command;

use crate::support::{BaseImage, build_into, check, kiln, tools_present, tree_listing as listing};

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
    build_into(state, &project, &out, &[]);
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
        build_into(&state, &project, &out, &[]);
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

/// Named contexts: an image standing in for a FROM, a directory (with its own
/// `.dockerignore`) for `COPY --from`, and a Bake `target:` link built within the build.
#[test]
fn named_contexts_from_an_image_a_directory_and_a_bake_target() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);

    let project = work.path().join("named");
    let extra = work.path().join("extra");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::create_dir_all(&extra).unwrap();
    fs_err::write(extra.join("extra.txt"), "extra\n").unwrap();
    fs_err::write(extra.join("ignored.txt"), "no\n").unwrap();
    fs_err::write(extra.join(".dockerignore"), "ignored.txt\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        "FROM base AS tools\nRUN echo tool > /tool.txt\n\
         FROM scratch\nCOPY --from=tools /tool.txt /\nCOPY --from=extra / /extra/\n",
    )
    .unwrap();
    let out = work.path().join("named-out");
    build_into(
        state,
        &project,
        &out,
        &[
            "--build-context",
            &format!("base=docker-image://127.0.0.1:{port}/busybox:latest"),
            "--build-context",
            &format!("extra={}", extra.display()),
        ],
    );
    assert_eq!(
        fs_err::read_to_string(out.join("tool.txt")).unwrap(),
        "tool\n"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("extra/extra.txt")).unwrap(),
        "extra\n"
    );
    assert!(!out.join("extra/ignored.txt").exists());

    // A named context that is not there is a usage error naming it.
    let missing = kiln(
        state,
        &[
            "build",
            "--build-context",
            "extra=/nonexistent",
            project.to_str().unwrap(),
        ],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("extra=/nonexistent"));

    // Bake: `app` builds FROM the result of `base`, linked with `target:base`.
    let bake = work.path().join("bake");
    fs_err::create_dir_all(&bake).unwrap();
    fs_err::write(
        bake.join("base.Dockerfile"),
        "ARG BASE\nFROM $BASE\nRUN echo from-base > /base.txt\n",
    )
    .unwrap();
    fs_err::write(
        bake.join("Dockerfile"),
        "FROM baseapp\nRUN cp /base.txt /app.txt\n",
    )
    .unwrap();
    fs_err::write(
        bake.join("docker-bake.hcl"),
        format!(
            r#"target "base" {{
  dockerfile = "base.Dockerfile"
  args = {{ BASE = "127.0.0.1:{port}/busybox:latest" }}
}}
target "app" {{
  contexts = {{ baseapp = "target:base" }}
  output = ["type=local,dest=app-out"]
}}
"#
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .current_dir(&bake)
        .args(["bake", "--progress=plain", "app"])
        .output()
        .unwrap();
    check(&output);
    assert_eq!(
        fs_err::read_to_string(bake.join("app-out/app.txt")).unwrap(),
        "from-base\n"
    );
}

/// Remote contexts: a git repository at a branch and subdirectory, and a tarball, both
/// served over HTTP on 127.0.0.1.
#[test]
fn git_and_tarball_contexts_over_http() {
    let have = |bin: &str| Command::new(bin).arg("--version").output().is_ok();
    if !have("git") || !have("python3") || !have("tar") {
        kiln_test::skip("needs git, python3 and tar");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let served = work.path().join("srv");
    let source = work.path().join("source");
    fs_err::create_dir_all(source.join("docker")).unwrap();
    fs_err::write(
        source.join("docker/Dockerfile"),
        "FROM scratch\nCOPY hello.txt /\n",
    )
    .unwrap();
    fs_err::write(source.join("docker/hello.txt"), "from git\n").unwrap();
    fs_err::write(source.join("README"), "not in the context\n").unwrap();
    let bake_out = work.path().join("bake-remote-out");
    fs_err::write(
        source.join("docker-bake.hcl"),
        format!(
            "target \"remote\" {{\n  context = \"docker\"\n  output = [\"type=local,dest={}\"]\n}}\n",
            bake_out.display()
        ),
    )
    .unwrap();
    let git = crate::support::git;
    git(&source, &["init", "-q", "-b", "main"]);
    git(&source, &["add", "."]);
    git(&source, &["commit", "-q", "-m", "context"]);
    fs_err::create_dir_all(&served).unwrap();
    git(
        &served,
        &["clone", "-q", "--bare", source.to_str().unwrap(), "app.git"],
    );
    git(&served.join("app.git"), &["update-server-info"]);
    // The tarball context: a Dockerfile and a file, gzipped.
    let tar_source = work.path().join("tar-source");
    fs_err::create_dir_all(&tar_source).unwrap();
    fs_err::write(
        tar_source.join("Dockerfile"),
        "FROM scratch\nCOPY t.txt /\n",
    )
    .unwrap();
    fs_err::write(tar_source.join("t.txt"), "from tar\n").unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&tar_source)
            .arg("-czf")
            .arg(served.join("ctx.tar.gz"))
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let (_server, port) = crate::support::serve_directory(&served);
    let state = work.path().join("state");
    let out = work.path().join("git-out");
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            &format!("http://127.0.0.1:{port}/app.git#main:docker"),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("hello.txt")).unwrap(),
        "from git\n"
    );
    assert!(!out.join("README").exists());

    // ADD of an http file (checked against --checksum) and of a git repository.
    fs_err::write(served.join("file.txt"), "downloaded\n").unwrap();
    let sum = Command::new("sha256sum")
        .arg(served.join("file.txt"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let adds = work.path().join("adds");
    fs_err::create_dir_all(&adds).unwrap();
    fs_err::write(
        adds.join("Dockerfile"),
        format!(
            "FROM scratch\nADD --checksum=sha256:{sum} http://127.0.0.1:{port}/file.txt /f.txt\n\
             ADD http://127.0.0.1:{port}/app.git#main:docker /g/\n"
        ),
    )
    .unwrap();
    let out = work.path().join("adds-out");
    build_into(&state, &adds, &out, &[]);
    assert_eq!(
        fs_err::read_to_string(out.join("f.txt")).unwrap(),
        "downloaded\n"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("g/hello.txt")).unwrap(),
        "from git\n"
    );
    // A wrong checksum fails the step and says so.
    fs_err::write(
        adds.join("Dockerfile"),
        format!(
            "FROM scratch\nADD --checksum=sha256:{} http://127.0.0.1:{port}/file.txt /f.txt\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let wrong = kiln(
        &state,
        &["build", "--progress=plain", adds.to_str().unwrap()],
    );
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("digest mismatch"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    // A git repository as a named context; --target builds only the stage asked for
    // (the other one would fail).
    let named = work.path().join("git-named");
    fs_err::create_dir_all(&named).unwrap();
    fs_err::write(
        named.join("Dockerfile"),
        "FROM scratch AS wanted\nCOPY --from=src hello.txt /ctx-hello.txt\n\
         COPY --from=dl file.txt /dl.txt\n\
         FROM scratch AS other\nCOPY --from=src no-such-file /\n",
    )
    .unwrap();
    let out = work.path().join("git-named-out");
    build_into(
        &state,
        &named,
        &out,
        &[
            "--target",
            "wanted",
            "--build-context",
            &format!("src=http://127.0.0.1:{port}/app.git#main:docker"),
            "--build-context",
            &format!("dl=http://127.0.0.1:{port}/file.txt"),
        ],
    );
    assert_eq!(
        fs_err::read_to_string(out.join("ctx-hello.txt")).unwrap(),
        "from git\n"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("dl.txt")).unwrap(),
        "downloaded\n"
    );

    // A remote Bake definition: the file and the context come from the repository.
    check(&kiln(
        &state,
        &[
            "bake",
            "--progress=plain",
            &format!("http://127.0.0.1:{port}/app.git#main"),
            "remote",
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(bake_out.join("hello.txt")).unwrap(),
        "from git\n"
    );

    let out = work.path().join("tar-out");
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
            &format!("http://127.0.0.1:{port}/ctx.tar.gz"),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("t.txt")).unwrap(),
        "from tar\n"
    );
}

/// A C program compiled in a Debian stage and copied into busybox, both bases taken
/// from OCI layouts as named contexts (the shared bench's `setup-bases.sh` makes them),
/// with a heredoc RUN; the program runs in the result.
#[test]
fn c_program_from_oci_layout_bases() {
    let bases = Path::new(
        &std::env::var("BENCH_WORKDIR").unwrap_or_else(|_| "/var/tmp/kiln-bench".to_owned()),
    )
    .join("bases/oci");
    if !tools_present() || !bases.join("debian/index.json").is_file() {
        kiln_test::skip("needs the bench's base layouts (../shared/bench/setup-bases.sh)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("c");
    fs_err::create_dir_all(&ctx).unwrap();
    fs_err::write(
        ctx.join("hello.c"),
        "#include <stdio.h>\nint main(void) { printf(\"hello from C\\n\"); return 0; }\n",
    )
    .unwrap();
    fs_err::write(
        ctx.join("Dockerfile"),
        "FROM debian AS build\nWORKDIR /src\nCOPY hello.c .\nRUN gcc -static -O2 -o /hello hello.c\n\
         FROM busybox\nCOPY --from=build /hello /usr/local/bin/hello\n\
         RUN <<EOF\n/usr/local/bin/hello > /greeting\nEOF\nCMD [\"/usr/local/bin/hello\"]\n",
    )
    .unwrap();
    let out = work.path().join("out");
    check(&kiln(
        &work.path().join("state"),
        &[
            "build",
            "--progress=plain",
            "--build-context",
            &format!(
                "debian=oci-layout://{}:bookworm",
                bases.join("debian").display()
            ),
            "--build-context",
            &format!(
                "busybox=oci-layout://{}:latest",
                bases.join("busybox").display()
            ),
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        fs_err::read_to_string(out.join("greeting")).unwrap(),
        "hello from C\n"
    );
    let run = Command::new("chroot")
        .arg(&out)
        .arg("/usr/local/bin/hello")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from C\n");
    assert!(
        !out.join("src").exists(),
        "the build stage's files stay out"
    );
}
