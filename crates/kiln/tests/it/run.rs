//! RUN as BuildKit runs it: secrets that leave no trace, ssh-agent forwarding, cache
//! mounts shared by concurrent builds, network modes and proxy variables.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{BaseImage, build_into, check, kiln, skopeo_inspect, tools_present};

/// Every file under `root` (symlinks not followed) whose bytes contain `needle`.
fn files_containing(root: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            for entry in fs_err::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if meta.is_file() {
            let bytes = fs_err::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A secret from a file and one from the environment reach their steps (the steps
/// hash them, so the test knows they were read), with the mode and owner asked for;
/// afterwards not one byte of the value is in the state directory, the outputs (an
/// uncompressed OCI archive and a local directory), the cache export (every layer,
/// uncompressed), the metadata file or the build's log.
#[test]
fn secrets_reach_the_step_and_leave_no_trace() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let file_secret = "kiln-file-secret-7f3a9c51";
    let env_secret = "kiln-env-secret-0b4d2e86";
    let secret_file = work.path().join("token.txt");
    fs_err::write(&secret_file, file_secret).unwrap();
    let project = work.path().join("secrets");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN --mount=type=secret,id=token,mode=0440,uid=1000,gid=1000 \
               sha256sum /run/secrets/token | cut -d' ' -f1 > /token.sum && \
               stat -c %a:%u:%g /run/secrets/token > /token.stat && cat /run/secrets/token > /dev/null\n\
             RUN --mount=type=secret,id=apikey,env=API_KEY \
               printf %s \"$API_KEY\" | sha256sum | cut -d' ' -f1 > /apikey.sum\n\
             RUN --mount=type=secret,id=absent,required=false test ! -e /run/secrets/absent && touch /optional-ok\n"
        ),
    )
    .unwrap();
    let archive = work.path().join("image.tar");
    let local = work.path().join("local");
    let cache = work.path().join("cache");
    let metadata = work.path().join("metadata.json");
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .env("KILN_TEST_API_KEY", env_secret)
        .args([
            "build",
            "--progress=plain",
            "--cache-to",
            &format!(
                "type=local,dest={},mode=max,compression=uncompressed",
                cache.display()
            ),
            "--metadata-file",
            metadata.to_str().unwrap(),
            "--secret",
            &format!("id=token,src={}", secret_file.display()),
            "--secret",
            "id=apikey,env=KILN_TEST_API_KEY",
            "-o",
            &format!(
                "type=oci,dest={},compression=uncompressed",
                archive.display()
            ),
            "-o",
            &format!("type=local,dest={}", local.display()),
            project.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let log = check(&output);

    let read = |name: &str| {
        fs_err::read_to_string(local.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("token.sum"), sha256_hex(file_secret.as_bytes()));
    assert_eq!(read("token.stat"), "440:1000:1000");
    assert_eq!(read("apikey.sum"), sha256_hex(env_secret.as_bytes()));
    assert!(local.join("optional-ok").exists());
    assert!(!local.join("run/secrets/token").exists());

    for secret in [file_secret, env_secret] {
        assert!(cache.join("index.json").is_file() && metadata.is_file());
        let places = [
            state.as_path(),
            archive.as_path(),
            local.as_path(),
            cache.as_path(),
            metadata.as_path(),
        ];
        for root in places {
            let leaks = files_containing(root, secret.as_bytes());
            assert!(leaks.is_empty(), "{secret} found in {leaks:?}");
        }
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!String::from_utf8_lossy(&output.stdout).contains(secret));
    }
    kiln_test::reliability_figure(
        "secrets",
        "a file secret and an env secret used by RUN steps: places searched for their bytes (state, OCI archive uncompressed, local output, uncompressed max-mode cache export, metadata file, log), places holding them",
        "6, 0",
    );

    // A required secret that the client did not give fails the step, naming it.
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nRUN --mount=type=secret,id=missing,required cat /run/secrets/missing\n"
        ),
    )
    .unwrap();
    let failed = kiln(state, &["build", project.to_str().unwrap()]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("missing"), "{stderr}");
}

/// `--ssh default` forwards the client's ssh-agent: the host's own `ssh-add -l` (with
/// its libraries, from a named context) lists inside RUN the key added outside.
#[test]
fn ssh_agent_is_forwarded_into_run() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let agent = kiln_test::SshAgent::start(work.path());
    let socket = agent.socket.clone();
    let tools = work.path().join("tools");
    let loader = kiln_test::ssh_add_tools(&tools);

    let project = work.path().join("ssh");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN --mount=type=ssh,required --mount=type=bind,from=tools,target=/tools \
               /tools/{loader} --library-path /tools /tools/ssh-add -l > /keys && echo $SSH_AUTH_SOCK > /sock\n\
             RUN --mount=type=ssh,id=other,target=/agent.sock,mode=0600,uid=1000 \
               stat -c %a:%u /agent.sock > /other\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .env("SSH_AUTH_SOCK", &socket)
        .args([
            "build",
            "--progress=plain",
            "--ssh",
            "default",
            "--ssh",
            &format!("other={}", socket.display()),
            "--build-context",
            &format!("tools={}", tools.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
            project.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    check(&output);
    let listed = fs_err::read_to_string(out.join("keys")).unwrap();
    assert_eq!(
        listed.split_whitespace().nth(1),
        Some(agent.fingerprint.as_str()),
        "{listed}"
    );
    assert!(listed.contains("kiln-test-key"), "{listed}");
    assert_eq!(
        fs_err::read_to_string(out.join("sock")).unwrap().trim(),
        "/run/buildkit/ssh_agent.0"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("other")).unwrap().trim(),
        "600:1000"
    );

    // Without --ssh a step that requires the agent fails (when it runs: a cached step
    // needs no agent, as in BuildKit), saying what to pass.
    let tools_context = format!("tools={}", tools.display());
    let failed = kiln(
        state,
        &[
            "build",
            "--no-cache",
            "--build-context",
            &tools_context,
            project.to_str().unwrap(),
        ],
    );
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("--ssh default"), "{stderr}");
}

/// Eight targets of one bake, built at once, each increment a counter in one
/// `sharing=locked` cache mount: with the lock held for each whole step, every target
/// sees a different count and the mount ends at eight; a later build still finds it.
/// Two `sharing=private` users at once get separate directories.
#[test]
fn eight_builds_share_a_locked_cache_mount() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let config = work.path().join("kiln.toml");
    fs_err::write(&config, "[worker.oci]\nmax-parallelism = 8\n").unwrap();
    let project = work.path().join("locked");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest AS counter\nARG WHO\n\
             RUN --mount=type=cache,id=counter,target=/cache,sharing=locked \
               n=$(cat /cache/n 2>/dev/null || echo 0); sleep 0.2; echo $((n + 1)) > /cache/n; \
               cp /cache/n /seen; echo $WHO > /who\n\
             FROM 127.0.0.1:{port}/busybox:latest AS private\nARG WHO\n\
             RUN --mount=type=cache,id=own,target=/cache,sharing=private \
               touch /cache/$WHO; sleep 1; ls /cache > /during\n"
        ),
    )
    .unwrap();
    let targets: Vec<String> = (1..=8).map(|i| format!("t{i}")).collect();
    let mut hcl = format!(
        "group \"default\" {{ targets = [{}] }}\n",
        targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for t in &targets {
        hcl.push_str(&format!(
            "target \"{t}\" {{\n  target = \"counter\"\n  args = {{ WHO = \"{t}\" }}\n  output = [\"type=local,dest=out/{t}\"]\n}}\n"
        ));
    }
    for p in ["p1", "p2"] {
        hcl.push_str(&format!(
            "target \"{p}\" {{\n  target = \"private\"\n  args = {{ WHO = \"{p}\" }}\n  output = [\"type=local,dest=out/{p}\"]\n}}\n"
        ));
    }
    fs_err::write(project.join("docker-bake.hcl"), hcl).unwrap();
    let bake = |targets: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .current_dir(&project)
            .env("KILN_ROOT", state)
            .env("KILN_CONFIG", &config)
            .args(["bake", "--progress=plain"])
            .args(targets)
            .output()
            .unwrap();
        check(&output);
    };
    bake(&[]);
    let mut seen: Vec<u32> = targets
        .iter()
        .map(|t| {
            fs_err::read_to_string(project.join("out").join(t).join("seen"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=8).collect::<Vec<u32>>());

    // The mount outlives the builds: a ninth writer counts on from eight.
    fs_err::write(
        project.join("Dockerfile.next"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN --mount=type=cache,id=counter,target=/cache,sharing=locked cat /cache/n > /n\n"
        ),
    )
    .unwrap();
    let out = work.path().join("next");
    build_into(
        state,
        &project,
        &out,
        &["-f", project.join("Dockerfile.next").to_str().unwrap()],
    );
    assert_eq!(fs_err::read_to_string(out.join("n")).unwrap().trim(), "8");

    // Private users that overlap each have a directory of their own.
    bake(&["p1", "p2"]);
    for p in ["p1", "p2"] {
        let during = fs_err::read_to_string(project.join("out").join(p).join("during")).unwrap();
        assert_eq!(during.trim(), p, "{p} saw {during}");
    }
}

/// `--network=none` has loopback only; proxy build arguments reach the process but
/// not the cache key (a different proxy reuses the step, as in BuildKit).
#[test]
fn network_none_and_proxy_variables() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("network");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /interfaces\n\
             RUN echo \"$HTTP_PROXY $https_proxy $NO_PROXY\" > /proxy\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    let proxy_args = |proxy: &str| {
        vec![
            "--build-arg".to_owned(),
            format!("HTTP_PROXY={proxy}"),
            "--build-arg".to_owned(),
            format!("HTTPS_PROXY={proxy}"),
            "--build-arg".to_owned(),
            "NO_PROXY=localhost".to_owned(),
        ]
    };
    let first = proxy_args("http://proxy-one:3128");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    build_into(state, &project, &out, &first);
    assert_eq!(
        fs_err::read_to_string(out.join("interfaces"))
            .unwrap()
            .trim(),
        "lo"
    );
    assert_eq!(
        fs_err::read_to_string(out.join("proxy")).unwrap().trim(),
        "http://proxy-one:3128 http://proxy-one:3128 localhost"
    );
    let second = proxy_args("http://proxy-two:3128");
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let log = build_into(state, &project, &work.path().join("out2"), &second);
    assert!(crate::support::step_cached(&log, "RUN echo"), "{log}");
}

/// A step a signal ends says which signal; one the out-of-memory killer ends (here under
/// a `--cgroup-parent` with a 32 MiB memory limit) says so.
#[test]
fn signals_and_out_of_memory_kills_are_named() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("signals");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        // (Not the step's own shell: as process 1 of its namespace it ignores signals.)
        format!("FROM 127.0.0.1:{port}/busybox:latest\nRUN sh -c 'kill -SEGV $$'; exit $?\n"),
    )
    .unwrap();
    let failed = kiln(
        state,
        &["build", "--progress=plain", project.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{stderr}");
    assert!(
        stderr.contains("exit code: 139 (killed by SIGSEGV)"),
        "{stderr}"
    );

    // A cgroup (v1 memory controller) with a limit, as the parent of the step's own.
    let memory = Path::new("/sys/fs/cgroup/memory");
    if !memory.join("memory.limit_in_bytes").exists() {
        kiln_test::skip("the OOM part needs no cgroup v1 memory controller");
        return;
    }
    let parent_name = format!("kiln-oom-test-{}", std::process::id());
    let parent = memory.join(&parent_name);
    fs_err::create_dir_all(&parent).unwrap();
    fs_err::write(parent.join("memory.limit_in_bytes"), "33554432").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\nRUN dd if=/dev/zero of=/dev/null bs=256M count=1\n"
        ),
    )
    .unwrap();
    let failed = kiln(
        state,
        &[
            "build",
            "--progress=plain",
            "--cgroup-parent",
            &parent_name,
            project.to_str().unwrap(),
        ],
    );
    crate::support::remove_cgroup(&parent_name);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{stderr}");
    assert!(
        stderr.contains("exit code: 137 (killed by the out-of-memory killer"),
        "{stderr}"
    );
}

/// USER by name, by id and with a group: resolved through the image's /etc/passwd and
/// /etc/group (the primary group and the user's memberships as supplementary groups);
/// WORKDIR creates a missing directory owned by the user, as BuildKit does.
#[test]
fn users_by_name_id_and_group() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("users");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             RUN mkdir -p /etc /out && chmod 777 /out && \
               echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && \
               echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && \
               printf 'root:x:0:\\napp:x:1000:\\nstaff:x:50:app\\nwheel:x:10:\\n' > /etc/group\n\
             USER app\n\
             RUN id > /out/by-name\n\
             USER 1000:10\n\
             RUN id > /out/by-id\n\
             USER app:staff\n\
             WORKDIR /work/here\n\
             RUN id > /out/with-group && pwd > /out/cwd\n\
             USER root\n\
             RUN stat -c %U /work/here > /out/cwd-owner\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    build_into(state, &project, &out, &[]);
    let read = |name: &str| {
        fs_err::read_to_string(out.join("out").join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        read("by-name"),
        "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
    );
    assert_eq!(
        read("by-id"),
        "uid=1000(app) gid=10(wheel) groups=10(wheel)"
    );
    assert_eq!(
        read("with-group"),
        "uid=1000(app) gid=50(staff) groups=50(staff)"
    );
    assert_eq!(read("cwd"), "/work/here");
    assert_eq!(read("cwd-owner"), "app");
}

/// Every mount type with its options: bind from the context, a stage (a `source`
/// inside it, `rw` writes thrown away) and an image, read-only by default; tmpfs with
/// `size`; cache seeded `from` a stage, with `mode`/`uid`/`gid`, and `ro`. The mount
/// points the steps needed are not left in the result.
#[test]
fn mount_types_and_options() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("mounts");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("a.txt"), "from the context\n").unwrap();
    let image = format!("127.0.0.1:{port}/busybox:latest");
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM {image} AS stage\n\
             RUN mkdir -p /data /seed && echo data > /data/file && echo seeded > /seed/s\n\
             FROM {image}\n\
             RUN --mount=target=/ctx cat /ctx/a.txt > /from-context && \
               (touch /ctx/x 2>/dev/null; echo $? > /ro-status)\n\
             RUN --mount=type=bind,from=stage,source=/data,target=/d,rw \
               touch /d/new && ls /d > /rw-list\n\
             RUN --mount=from=stage,target=/d2 ls /d2/data > /after-rw\n\
             RUN --mount=from={image},target=/img test -x /img/bin/busybox && echo yes > /from-image\n\
             RUN --mount=type=tmpfs,target=/t,size=1m df -k /t | tail -n 1 | awk '{{print $2}}' > /tmpfs-size\n\
             RUN --mount=type=cache,target=/c,from=stage,source=/seed cat /c/s > /cache-seed\n\
             RUN --mount=type=cache,id=perm,target=/c2,mode=0700,uid=1000,gid=1000 \
               stat -c %a:%u:%g /c2 > /cache-perm\n\
             RUN --mount=type=cache,id=ro,target=/c3,ro (touch /c3/x 2>/dev/null; echo $? > /cache-ro)\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    build_into(state, &project, &out, &[]);
    let read = |name: &str| {
        fs_err::read_to_string(out.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("from-context"), "from the context");
    assert_ne!(
        read("ro-status"),
        "0",
        "a bind mount is read-only by default"
    );
    assert_eq!(read("rw-list"), "file\nnew");
    assert_eq!(read("after-rw"), "file", "rw writes are thrown away");
    assert_eq!(read("from-image"), "yes");
    assert_eq!(read("tmpfs-size"), "1024");
    assert_eq!(read("cache-seed"), "seeded");
    assert_eq!(read("cache-perm"), "700:1000:1000");
    assert_ne!(read("cache-ro"), "0", "ro cache mounts refuse writes");
    for mount_point in ["ctx", "d", "d2", "img", "t", "c", "c2", "c3"] {
        assert!(
            !out.join(mount_point).exists(),
            "/{mount_point} was left in the result"
        );
    }
}

/// RUN mount options from variables mean what they would written out: a cache mount
/// starts empty (never from the build context) and keeps its writes for the next
/// step; a writable bind of the context lets the step write but keeps nothing, in
/// the context or for later steps; a tmpfs on `/dev/shm` is the only one there, with
/// BuildKit's options (no `nodev`/`noexec`).
#[test]
fn mounts_from_variables_and_what_they_keep() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("mounts");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(project.join("cf"), "context file\n").unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "FROM 127.0.0.1:{port}/busybox:latest\n\
             ARG T=cache\n\
             ARG RW=true\n\
             RUN --mount=type=$T,target=/m ls -A /m > /cache-first; echo w > /m/written\n\
             RUN --mount=type=$T,target=/m ls -A /m > /cache-second\n\
             RUN --mount=type=bind,target=/b,rw=$RW echo w > /b/written && ls -A /b > /bind-rw\n\
             RUN --mount=type=bind,target=/b ls -A /b > /bind-after\n\
             RUN --mount=type=tmpfs,target=/dev/shm grep ' /dev/shm ' /proc/mounts > /shm\n"
        ),
    )
    .unwrap();
    let out = work.path().join("out");
    build_into(state, &project, &out, &[]);
    let read = |name: &str| fs_err::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("cache-first"), "");
    assert_eq!(read("cache-second"), "written\n");
    assert_eq!(read("bind-rw"), "Dockerfile\ncf\nwritten\n");
    assert_eq!(read("bind-after"), "Dockerfile\ncf\n");
    assert!(!project.join("written").exists());
    let shm = read("shm");
    assert_eq!(shm.lines().count(), 1, "{shm}");
    let options = shm.split_whitespace().nth(3).unwrap();
    assert!(options.starts_with("rw,nosuid"), "{shm}");
    assert!(
        !options.contains("nodev") && !options.contains("noexec"),
        "{shm}"
    );
}

/// buildx's RUN-wide flags reach the steps: `--add-host`, `--ulimit`, `--shm-size`,
/// `--network none`; `--label` lands in the config; `-f -` and a tar context on stdin.
#[test]
fn run_flags_labels_and_stdin() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let dockerfile = format!(
        "FROM 127.0.0.1:{port}/busybox:latest\n\
         RUN grep -w db /etc/hosts > /hosts && ulimit -n > /nofile && df -k /dev/shm | tail -1 > /shm \
         && cat /proc/net/dev | tail -n +3 | wc -l > /interfaces\n"
    );
    let out = work.path().join("flags-out");
    let empty = work.path().join("empty");
    fs_err::create_dir_all(&empty).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args([
            "build",
            "--progress=plain",
            "-f",
            "-",
            "--add-host",
            "db:10.1.2.3",
            "--ulimit",
            "nofile=512:1024",
            "--shm-size",
            "16m",
            "--network",
            "none",
            "--label",
            "org.example.team=build",
            "-o",
            &format!("type=local,dest={}", out.display()),
            empty.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), dockerfile.as_bytes()).unwrap();
    drop(child.stdin.take());
    check(&child.wait_with_output().unwrap());
    let read = |name: &str| fs_err::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("hosts").trim(), "10.1.2.3\tdb");
    assert_eq!(read("nofile").trim(), "512");
    assert_eq!(read("shm").split_whitespace().nth(1), Some("16384"));
    assert_eq!(
        read("interfaces").trim(),
        "1",
        "only loopback with --network none"
    );

    // A tar archive on stdin is the context; --label shows in the image config.
    let context = work.path().join("tar-context");
    fs_err::create_dir_all(&context).unwrap();
    fs_err::write(context.join("Dockerfile"), "FROM scratch\nCOPY a.txt /\n").unwrap();
    fs_err::write(context.join("a.txt"), "from tar\n").unwrap();
    let archive = Command::new("tar")
        .arg("-C")
        .arg(&context)
        .args(["-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let image = work.path().join("label.tar");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", state)
        .args([
            "build",
            "--progress=plain",
            "--label",
            "org.example.team=build",
        ])
        .args(["-o", &format!("type=oci,dest={}", image.display()), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &archive).unwrap();
    drop(child.stdin.take());
    check(&child.wait_with_output().unwrap());
    let config = skopeo_inspect(&image, true);
    assert_eq!(config["config"]["Labels"]["org.example.team"], "build");

    // What kiln cannot do is refused by name, before any work.
    for (flag, message) in [
        (
            [
                "--cache-to",
                "type=gha,token=t,url=http://127.0.0.1:9/,timeout=soon",
            ],
            "timeout=soon",
        ),
        (["--builder", "remote-one"], "--builder"),
    ] {
        let output = kiln(state, &["build", flag[0], flag[1], empty.to_str().unwrap()]);
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{flag:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A sandboxed RUN has a seccomp filter that refuses namespaces (as Docker's default
/// profile does); `--security=insecure` (with the entitlement) runs unfiltered with the
/// host's capabilities, and without the entitlement is refused.
#[test]
fn sandbox_seccomp_and_insecure_mode() {
    if !tools_present() {
        return;
    }
    let base = BaseImage::publish();
    let (work, state, port) = (&base.work, &base.state, base.port);
    let project = work.path().join("security");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("Dockerfile"),
        format!(
            "# syntax=docker/dockerfile:1-labs\nFROM 127.0.0.1:{port}/busybox:latest\n\
             RUN grep Seccomp: /proc/self/status > /sandbox && (unshare -n true 2>/dev/null; echo unshare=$? >> /sandbox)\n\
             RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status > /insecure\n"
        ),
    )
    .unwrap();
    let refused = kiln(state, &["build", project.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("security.insecure"));

    let out = work.path().join("security-out");
    build_into(state, &project, &out, &["--allow", "security.insecure"]);
    let sandbox = fs_err::read_to_string(out.join("sandbox")).unwrap();
    assert!(sandbox.contains("Seccomp:\t2"), "{sandbox}");
    assert!(sandbox.contains("unshare=1"), "{sandbox}");
    let insecure = fs_err::read_to_string(out.join("insecure")).unwrap();
    assert!(insecure.contains("Seccomp:\t0"), "{insecure}");
    // CAP_SYS_ADMIN (bit 21) is among the privileged step's capabilities.
    let effective = insecure
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_ne!(effective & (1 << 21), 0, "{insecure}");
}
