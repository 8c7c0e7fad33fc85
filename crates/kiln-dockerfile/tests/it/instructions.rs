//! Typed instructions: what a user writes, what kiln accepts, and the errors it gives.

use kiln_dockerfile::instructions::{Instruction, MountType};
use kiln_dockerfile::read;

fn error_of(src: &str) -> (Option<usize>, String) {
    let err = read(src.as_bytes()).unwrap_err();
    (err.line(), err.message)
}

#[test]
fn stages_meta_args_and_names() {
    let src = "ARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM $BASE AS Build\nRUN make\n\
               FROM scratch\nCOPY --from=build /out /\n";
    let (_, parsed) = read(src.as_bytes()).unwrap();
    assert_eq!(parsed.meta_args.len(), 2);
    assert_eq!(parsed.stages.len(), 2);
    let build = parsed.stage("BUILD").unwrap();
    assert_eq!(build.from.name.as_deref(), Some("build"));
    assert_eq!(build.from.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(build.from.base_name, "$BASE");
    assert_eq!(parsed.stage("1").unwrap().from.base_name, "scratch");
    let Instruction::Copy(copy) = &parsed.stages[1].commands[0].instruction else {
        panic!()
    };
    assert_eq!(
        (
            copy.from.as_str(),
            copy.paths.sources.as_slice(),
            copy.paths.dest.as_str()
        ),
        ("build", &["/out".to_owned()][..], "/")
    );
}

#[test]
fn run_flags() {
    let src = "# syntax=docker/dockerfile:1-labs\nFROM a\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok,env=TOKEN \
               --network=none --security=insecure make\n";
    let (_, parsed) = read(src.as_bytes()).unwrap();
    let Instruction::Run(run) = &parsed.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(run.network, "none");
    assert_eq!(run.security, "insecure");
    assert_eq!(run.command.args, ["make"]);
    assert!(run.command.prepend_shell);
    let mounts = run.mounts(&|v| Ok(v.to_owned())).unwrap();
    assert_eq!(mounts[0].kind, MountType::Cache);
    assert_eq!(mounts[1].env.as_deref(), Some("TOKEN"));
}

#[test]
fn heredoc_sources_and_inline_files() {
    let src = "FROM a\nCOPY <<-EOF /etc/conf\n\tkey=$V\n\tEOF\nRUN <<EOF python3\nprint(1)\nEOF\n";
    let (_, parsed) = read(src.as_bytes()).unwrap();
    let Instruction::Copy(copy) = &parsed.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(copy.paths.contents[0].data, "key=$V\n");
    assert!(copy.paths.contents[0].expand);
    let Instruction::Run(run) = &parsed.stages[0].commands[1].instruction else {
        panic!()
    };
    assert_eq!(run.command.files[0].data, "print(1)\n");
    assert_eq!(run.command.args, ["<<EOF python3"]);
}

#[test]
fn healthcheck_forms() {
    let src = "FROM a\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/\nHEALTHCHECK NONE\n";
    let (_, parsed) = read(src.as_bytes()).unwrap();
    let Instruction::Healthcheck(h) = &parsed.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(h.test, ["CMD-SHELL", "curl -f http://localhost/"]);
    assert_eq!((h.interval, h.retries), (30_000_000_000, 3));
    let Instruction::Healthcheck(h) = &parsed.stages[0].commands[1].instruction else {
        panic!()
    };
    assert_eq!(h.test, ["NONE"]);
}

#[test]
fn errors_name_the_line() {
    assert_eq!(
        error_of("FROM a\n\nCOPY --form=b x y\n"),
        (Some(3), "unknown flag: --form (did you mean from?)".into())
    );
    assert_eq!(
        error_of("FROM a\nRUN --network=bridge x\n"),
        (Some(2), "invalid network mode \"bridge\"".into())
    );
    // Not expanded, as in BuildKit.
    assert_eq!(
        error_of("FROM a\nARG N=none\nRUN --network=$N x\n"),
        (Some(3), "invalid network mode \"$N\"".into())
    );
    assert_eq!(
        error_of("# syntax=docker/dockerfile:1-labs\nFROM a\nRUN --security=x y\n"),
        (Some(3), "unsupported security mode \"x\"".into())
    );
    // Mount options are read once expanded, at conversion (see the convert tests).
    assert!(read(b"FROM a\nRUN --mount=type=volume,target=/x y\n").is_ok());
    assert_eq!(
        error_of("FROM a\nCOPY x\n"),
        (Some(2), "COPY requires at least two arguments, but only one was provided. Destination could not be determined".into())
    );
    assert_eq!(
        error_of("FROM a b\n").1,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        error_of("FROM a AS 1x\n").1,
        "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        error_of("RUN x\n"),
        (Some(1), "no build stage in current context".into())
    );
    assert_eq!(
        error_of("FROM a\nFORM b\n"),
        (
            Some(2),
            "unknown instruction: FORM (did you mean FROM?)".into()
        )
    );
    assert_eq!(
        error_of("FROM a\nWORKDIR\n").1,
        "WORKDIR requires exactly one argument"
    );
    assert_eq!(
        error_of("FROM a\nSHELL /bin/sh -c\n").1,
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        error_of("FROM a\nONBUILD FROM b\n").1,
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        error_of("FROM a\nHEALTHCHECK --interval=1us CMD x\n").1,
        "Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        error_of("FROM a\nHEALTHCHECK FOO x\n").1,
        "Unknown type \"FOO\" in HEALTHCHECK (try CMD)"
    );
    // `--chmod` is read once expanded, at conversion.
    assert!(read(b"FROM a\nCOPY --chmod=999 a b\n").is_ok());
    assert_eq!(
        error_of("FROM a\nCOPY --link=maybe a b\n").1,
        "expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        error_of("FROM a\nCOPY a <<EOF\nx\nEOF\n").1,
        "COPY cannot accept a heredoc as a destination"
    );
    assert_eq!(
        error_of("FROM a\nLABEL =x\n").1,
        "LABEL names can not be blank"
    );
    assert_eq!(error_of("FROM a\nARG =x\n").1, "ARG names can not be blank");
}

#[test]
fn labs_flags_need_a_labs_syntax() {
    for src in [
        "FROM a\nCOPY --parents a /b/\n",
        "FROM a\nCOPY --exclude=x a /b/\n",
        "FROM a\nADD --exclude=x a /b/\n",
        "FROM a\nRUN --security=insecure x\n",
    ] {
        let err = read(src.as_bytes()).unwrap_err();
        assert!(err.message.starts_with("unknown flag: --"), "{src}: {err}");
        let labs = format!("# syntax=docker/dockerfile:1.18-labs\n{src}");
        assert!(read(labs.as_bytes()).is_ok(), "{labs}");
    }
}

#[test]
fn errors_read_as_buildkit_prints_them() {
    // An instruction that cannot be read is a "dockerfile parse error" with its line.
    let err = read(b"FROM a\nCOPY --form=b x y\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 2: unknown flag: --form (did you mean from?)"
    );
    let err = read(b"FROM a\nCOPYY a b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 2: unknown instruction: COPYY (did you mean COPY?)"
    );
    let err = read(b"FROM a\ncopyy a b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 2: unknown instruction: copyy (did you mean copy?)"
    );
    let err = read(b"FROM a\nRUN --mont=type=tmpfs,target=/x true\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dockerfile parse error on line 2: unknown flag: --mont (did you mean mount?)"
    );
    // The file's syntax is not an instruction's: the message alone.
    let err = read(b"FROM a\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(err.to_string(), "unterminated heredoc");
}

#[test]
fn entrypoint_cmd_and_onbuild() {
    let src = "FROM a\nENTRYPOINT []\nCMD echo $HOME\nONBUILD RUN <<EOF\nhi\nEOF\nEXPOSE 80/udp 443 8080\n";
    let (_, parsed) = read(src.as_bytes()).unwrap();
    let cmds = &parsed.stages[0].commands;
    let Instruction::Entrypoint(e) = &cmds[0].instruction else {
        panic!()
    };
    assert!(e.args.is_empty() && !e.prepend_shell);
    let Instruction::Cmd(c) = &cmds[1].instruction else {
        panic!()
    };
    assert_eq!(c.args, ["echo $HOME"]);
    assert_eq!(
        cmds[2].instruction,
        Instruction::Onbuild("RUN <<EOF\nhi\nEOF".into())
    );
    assert_eq!(
        cmds[3].instruction,
        Instruction::Expose(vec!["443".into(), "80/udp".into(), "8080".into()])
    );
}
