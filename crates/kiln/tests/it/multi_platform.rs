//! Multi-platform builds (`--platform a,b`, Bake `platforms`) on a multi-arch busybox
//! made of Debian's busybox-static of each architecture, other architectures' RUN
//! steps run by QEMU: the pushed index read back by skopeo (each platform with
//! `--override-arch`), each platform's image unpacked by umoci, and the `local`, `tar`
//! and `oci` outputs as BuildKit writes them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{check, kiln, skopeo_remote, skopeo_remote_with, step_cached, tools_present};

/// The real parts, QEMU's binfmt_misc handlers, and the multi-arch base image pushed to
/// a registry started for the test.
fn multiarch_base() -> Option<(kiln_test::Registry, String)> {
    if !tools_present() {
        return None;
    }
    if !Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        kiln_test::skip("qemu-user-static's handlers are not registered in binfmt_misc");
        return None;
    }
    let registry = kiln_test::Registry::start();
    let base = registry.push_busybox_multiarch()?;
    Some((registry, base))
}

/// `skopeo copy --override-arch ARCH [--override-variant V] SOURCE oci:DIR:1`, then
/// `umoci unpack`: the platform's root file system.
fn unpack_platform(source: &str, platform: &str, dir: &Path) -> std::path::PathBuf {
    fs_err::create_dir_all(dir).unwrap();
    let mut parts = platform.split('/').skip(1);
    let arch = parts.next().unwrap();
    let mut copy = Command::new("skopeo");
    copy.args(["--override-arch", arch]);
    if let Some(variant) = parts.next() {
        copy.args(["--override-variant", variant]);
    }
    let copied = copy
        .args(["copy", "--src-tls-verify=false", source])
        .arg(format!("oci:{}:1", dir.join("layout").display()))
        .output()
        .unwrap();
    assert!(copied.status.success(), "{platform}: {copied:?}");
    let unpacked = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1", dir.join("layout").display()))
        .arg(dir.join("bundle"))
        .output()
        .unwrap();
    assert!(unpacked.status.success(), "{platform}: {unpacked:?}");
    dir.join("bundle/rootfs")
}

/// A directory `dir` under `work` holding `dockerfile` as its Dockerfile.
fn with_dockerfile(work: &Path, dir: &str, dockerfile: &str) -> std::path::PathBuf {
    let dir = work.join(dir);
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

/// linux/amd64 and linux/arm64 pushed as one index: each RUN prints its `uname -m`
/// (x86_64, then aarch64 under QEMU), the stage on `$BUILDPLATFORM` runs once for both,
/// and skopeo reads each platform back.
#[test]
fn two_platforms_emulated_and_pushed_as_one_index() {
    let Some((registry, base)) = multiarch_base() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let context = with_dockerfile(
        work.path(),
        "context",
        &format!(
            "FROM --platform=$BUILDPLATFORM {base} AS host\n\
             ARG BUILDPLATFORM\n\
             RUN echo \"built on $BUILDPLATFORM $(cat /proc/sys/kernel/random/uuid)\" > /built-on\n\
             FROM {base}\n\
             ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT\n\
             COPY --from=host /built-on /built-on\n\
             RUN echo \"machine: $(uname -m)\" && uname -m > /arch && echo \"$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT]\" > /target\n"
        ),
    );
    let name = format!("{}/multi:1", registry.host());
    let log = check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            "-t",
            &name,
            context.to_str().unwrap(),
        ],
    ));
    assert!(log.contains("machine: x86_64"), "{log}");
    assert!(log.contains("machine: aarch64"), "{log}");
    // Steps are named with their platform, as BuildKit names them in such a build.
    assert!(log.contains(" [linux/arm64 stage-1 3/3] RUN echo"), "{log}");
    assert!(log.contains(" [linux/amd64 host 2/2] RUN echo"), "{log}");

    // One index (Docker media types, the image exporter's default), one manifest per
    // platform, in the order asked.
    let index = skopeo_remote(&name, Some("--raw"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let platforms: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["platform"])
        .collect();
    assert_eq!(
        platforms,
        [
            &serde_json::json!({"architecture": "amd64", "os": "linux"}),
            &serde_json::json!({"architecture": "arm64", "os": "linux"})
        ]
    );
    for arch in ["amd64", "arm64"] {
        let config = skopeo_remote_with(&name, &["--override-arch", arch, "--", "--config"]);
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
    }

    let mut built_on = Vec::new();
    for (platform, machine, target) in [
        ("linux/amd64", "x86_64", "linux/amd64 linux amd64 []"),
        ("linux/arm64", "aarch64", "linux/arm64 linux arm64 []"),
    ] {
        let rootfs = unpack_platform(
            &format!("docker://{name}"),
            platform,
            &work.path().join(platform.replace('/', "_")),
        );
        assert_eq!(read(&rootfs.join("arch")).trim(), machine);
        assert_eq!(read(&rootfs.join("target")).trim(), target);
        built_on.push(read(&rootfs.join("built-on")));
    }
    // The build platform's stage ran once: both images have its one result.
    assert_eq!(built_on[0], built_on[1]);
    assert!(
        built_on[0].starts_with("built on linux/amd64 "),
        "{built_on:?}"
    );
}

/// Three platforms (arm/v7 too) to `local` and `tar` (a directory per platform, as
/// BuildKit names them) and `oci` (an index); the docker exporter and `--load` are
/// refused with buildx's messages.
#[test]
fn three_platforms_to_local_tar_and_oci() {
    let Some((_registry, base)) = multiarch_base() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let context = with_dockerfile(
        work.path(),
        "context",
        &format!("FROM {base}\nRUN uname -m > /arch\nFROM scratch\nCOPY --from=0 /arch /arch\n"),
    );
    let platforms = "linux/amd64,linux/arm64,linux/arm/v7";
    let local = work.path().join("local");
    let tar = work.path().join("out.tar");
    let oci = work.path().join("oci.tar");
    check(&kiln(
        &state,
        &[
            "build",
            "--progress=plain",
            "--platform",
            platforms,
            "-o",
            &format!("type=local,dest={}", local.display()),
            "-o",
            &format!("type=tar,dest={}", tar.display()),
            "-o",
            &format!("type=oci,dest={},name=multi:1", oci.display()),
            context.to_str().unwrap(),
        ],
    ));
    let expected = [
        ("linux_amd64", "x86_64"),
        ("linux_arm64", "aarch64"),
        ("linux_arm_v7", "armv7l"),
    ];
    for (dir, machine) in expected {
        assert_eq!(read(&local.join(dir).join("arch")).trim(), machine, "{dir}");
    }
    let listed = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "linux_amd64/\nlinux_amd64/arch\nlinux_arm64/\nlinux_arm64/arch\nlinux_arm_v7/\nlinux_arm_v7/arch\n"
    );

    // The layout's index.json names the index (as BuildKit's OCI exporter writes it),
    // which lists the three manifests; each unpacks to its platform's file.
    let layout = work.path().join("layout");
    fs_err::create_dir_all(&layout).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&oci)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    assert!(!layout.join("manifest.json").exists());
    let top: Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    let descriptor = &top["manifests"][0];
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        descriptor["annotations"]["io.containerd.image.name"],
        "docker.io/library/multi:1"
    );
    let index: Value = serde_json::from_str(&read(
        &layout.join("blobs/sha256").join(
            descriptor["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        ),
    ))
    .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    assert_eq!(
        index["manifests"][2]["platform"],
        serde_json::json!({"architecture": "arm", "os": "linux", "variant": "v7"})
    );
    for (platform, machine) in [
        ("linux/amd64", "x86_64"),
        ("linux/arm64", "aarch64"),
        ("linux/arm/v7", "armv7l"),
    ] {
        let rootfs = unpack_platform(
            &format!("oci-archive:{}:1", oci.display()),
            platform,
            &work
                .path()
                .join(format!("unpacked-{}", platform.replace('/', "_"))),
        );
        assert_eq!(read(&rootfs.join("arch")).trim(), machine, "{platform}");
    }

    for (flags, message) in [
        (
            vec!["--load"],
            "docker exporter does not currently support exporting manifest lists",
        ),
        (
            vec!["-o", "type=docker,dest=/dev/null"],
            "docker exporter does not support exporting manifest lists, use the oci exporter instead",
        ),
    ] {
        let mut args = vec!["build", "--platform", platforms];
        args.extend(flags);
        args.push(context.to_str().unwrap());
        let refused = kiln(&state, &args);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}

/// A Bake target with `platforms`: one directory per platform; `--set *.platform`; a
/// matrix over platforms.
#[test]
fn bake_target_with_platforms() {
    let Some((_registry, base)) = multiarch_base() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let dir = with_dockerfile(
        work.path(),
        "project",
        &format!(
            "FROM {base} AS build\nRUN uname -m > /arch\nFROM scratch\nCOPY --from=build /arch /\n"
        ),
    );
    fs_err::write(
        dir.join("docker-bake.hcl"),
        "target \"default\" {\n  platforms = [\"linux/amd64\", \"linux/arm64\"]\n  output = [\"type=local,dest=out\"]\n}\n",
    )
    .unwrap();
    let bake = |args: &[&str]| {
        check(
            &Command::new(env!("CARGO_BIN_EXE_kiln"))
                .env("KILN_ROOT", &state)
                .current_dir(&dir)
                .args(["bake", "--progress=plain"])
                .args(args)
                .output()
                .unwrap(),
        )
    };
    bake(&[]);
    assert_eq!(read(&dir.join("out/linux_amd64/arch")).trim(), "x86_64");
    assert_eq!(read(&dir.join("out/linux_arm64/arch")).trim(), "aarch64");

    // `--set *.platform` replaces the list; one platform, even a foreign one, is no
    // multi-platform build: its files are at the top.
    bake(&[
        "--set",
        "*.platform=linux/arm/v7",
        "--set",
        "*.output=type=local,dest=single",
    ]);
    assert_eq!(read(&dir.join("single/arch")).trim(), "armv7l");

    // A matrix over platforms: one target per platform, built side by side.
    fs_err::write(
        dir.join("docker-bake.hcl"),
        "target \"app\" {\n  name = \"app-${replace(p, \"/\", \"-\")}\"\n  matrix = { p = [\"linux/arm64\", \"linux/arm/v7\"] }\n  platforms = [p]\n  output = [\"type=local,dest=matrix-${replace(p, \"/\", \"-\")}\"]\n}\n",
    )
    .unwrap();
    bake(&["app"]);
    assert_eq!(read(&dir.join("matrix-linux-arm64/arch")).trim(), "aarch64");
    assert_eq!(read(&dir.join("matrix-linux-arm-v7/arch")).trim(), "armv7l");
}

/// A RUN for a platform no emulator runs fails naming the platform and the package
/// that brings QEMU.
#[test]
fn a_platform_without_emulator_is_named() {
    let Some((_registry, base)) = multiarch_base() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let context = with_dockerfile(
        work.path(),
        "context",
        &format!(
            "FROM --platform=linux/amd64 {base} AS tools\nFROM scratch\nCOPY --from=tools /bin/busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n"
        ),
    );
    let output = kiln(
        &work.path().join("state"),
        &[
            "build",
            "--platform",
            "linux/ia64",
            context.to_str().unwrap(),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no emulator for linux/ia64")
            && stderr.contains("apt-get install qemu-user-static binfmt-support"),
        "{stderr}"
    );
}

/// A cross-compiled C program: the compiling stage runs on `$BUILDPLATFORM` (amd64)
/// with Debian's aarch64 cross compiler for the arm64 image, and the program then runs
/// in each platform's image, the arm64 one under QEMU. With `KILN_MEASURE` set, the
/// wall times of the two-platform build and of its two single-platform builds (each on
/// a fresh state) are printed.
#[test]
fn cross_compiled_c_program_for_two_platforms() {
    let Some((registry, busybox)) = multiarch_base() else {
        return;
    };
    let Some(debian) = registry.push_debian_cross() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let context = with_dockerfile(
        work.path(),
        "context",
        &format!(
            "FROM --platform=$BUILDPLATFORM {debian} AS build\n\
             ARG TARGETARCH\n\
             COPY hello.c /src/hello.c\n\
             RUN case \"$TARGETARCH\" in arm64) cc=aarch64-linux-gnu-gcc ;; *) cc=gcc ;; esac \\\n\
             \x20   && $cc -static -O2 -o /hello /src/hello.c\n\
             FROM {busybox}\n\
             COPY --from=build /hello /hello\n\
             RUN /hello > /greeting\n"
        ),
    );
    fs_err::write(
        context.join("hello.c"),
        "#include <stdio.h>\n#include <sys/utsname.h>\nint main(void) {\n  struct utsname u;\n  uname(&u);\n  printf(\"hello from %s\\n\", u.machine);\n  return 0;\n}\n",
    )
    .unwrap();
    let build = |state: &str, platforms: &str, out: &Path| {
        let started = std::time::Instant::now();
        let log = check(&kiln(
            &work.path().join(state),
            &[
                "build",
                "--progress=plain",
                "--platform",
                platforms,
                "-o",
                &format!("type=local,dest={}", out.display()),
                context.to_str().unwrap(),
            ],
        ));
        (log, started.elapsed())
    };
    let out = work.path().join("out");
    let (log, both) = build("state-both", "linux/amd64,linux/arm64", &out);
    // The arm64 program was compiled on amd64, by a step named for its target.
    assert!(
        log.contains(" [linux/amd64->arm64 build 3/3] RUN case"),
        "{log}"
    );
    for (dir, machine, kind) in [
        ("linux_amd64", "x86_64", "x86-64"),
        ("linux_arm64", "aarch64", "ARM aarch64"),
    ] {
        assert_eq!(
            read(&out.join(dir).join("greeting")).trim(),
            format!("hello from {machine}")
        );
        let file = Command::new("file")
            .arg(out.join(dir).join("hello"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&file.stdout).contains(kind),
            "{dir}: {file:?}"
        );
    }
    // The comparison doubles the test's time: only when asked.
    if std::env::var_os("KILN_MEASURE").is_none() {
        return;
    }
    let (_, amd64) = build("state-amd64", "linux/amd64", &work.path().join("amd64"));
    let (_, arm64) = build("state-arm64", "linux/arm64", &work.path().join("arm64"));
    println!(
        "cross-compiled C, two platforms: {:.1} s; linux/amd64 alone {:.1} s + linux/arm64 alone {:.1} s = {:.1} s (ratio {:.2})",
        both.as_secs_f64(),
        amd64.as_secs_f64(),
        arm64.as_secs_f64(),
        (amd64 + arm64).as_secs_f64(),
        both.as_secs_f64() / (amd64 + arm64).as_secs_f64()
    );
}

/// A two-platform build's cache (`mode=min`, the default: only the results' records)
/// holds both platforms' results: a build on an empty state importing it runs no step
/// of either platform and writes the same index.
#[test]
fn a_min_cache_of_two_platforms_answers_both() {
    let Some((_registry, base)) = multiarch_base() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let context = with_dockerfile(
        work.path(),
        "context",
        &format!("FROM {base}\nRUN uname -m > /arch && cat /proc/sys/kernel/random/uuid > /id\n"),
    );
    let cache = work.path().join("cache");
    let build = |state: &str, cache_flag: &str, out: &str| {
        check(&kiln(
            &work.path().join(state),
            &[
                "build",
                "--progress=plain",
                "--platform",
                "linux/amd64,linux/arm64",
                cache_flag,
                "-o",
                &format!("type=oci,dest={}", work.path().join(out).display()),
                context.to_str().unwrap(),
            ],
        ))
    };
    build(
        "first",
        &format!("--cache-to=type=local,dest={}", cache.display()),
        "first.tar",
    );
    let log = build(
        "second",
        &format!("--cache-from=type=local,src={}", cache.display()),
        "second.tar",
    );
    for platform in ["linux/amd64", "linux/arm64"] {
        let title = format!("[{platform} 2/2] RUN uname -m");
        assert!(step_cached(&log, &title), "{title} ran:\n{log}");
    }
    let index_digest = |out: &str| {
        let archive = fs_err::read(work.path().join(out)).unwrap();
        let mut tar = tar::Archive::new(archive.as_slice());
        let entry = tar
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().as_os_str() == "index.json")
            .map(|mut e| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
                text
            })
            .unwrap();
        let index: Value = serde_json::from_str(&entry).unwrap();
        index["manifests"][0]["digest"].as_str().unwrap().to_owned()
    };
    assert_eq!(index_digest("first.tar"), index_digest("second.tar"));
}
