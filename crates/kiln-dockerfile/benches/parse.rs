//! Parsing speed: a 5,000-instruction Dockerfile through the parser, the instruction
//! checker and word expansion (target: well under 20 ms).
//!
//! `cargo bench -p kiln-dockerfile`

use std::collections::HashMap;
use std::fmt::Write as _;

use divan::{Bencher, black_box};
use kiln_dockerfile::instructions::{self, Instruction};
use kiln_dockerfile::parser;
use kiln_dockerfile::shell::Lexer;

fn main() {
    divan::main();
}

/// A realistic mix of instructions, 5,000 in all, 10 per stage.
fn big_dockerfile() -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\n");
    for stage in 0..500 {
        let _ = write!(
            out,
            "FROM ${{BASE}} AS stage{stage}\n\
             ARG VERSION=1.{stage}\n\
             ENV APP_HOME=/opt/app{stage} PATH=\"/opt/app{stage}/bin:$PATH\"\n\
             WORKDIR $APP_HOME\n\
             COPY --chown=app:app --chmod=0644 src/ ./src/\n\
             RUN --mount=type=cache,target=/root/.cache \\\n    apt-get update && \\\n    apt-get install -y curl=${{VERSION%%.*}} # comment\n\
             LABEL org.opencontainers.image.version=\"${{VERSION}}\" stage=\"{stage}\"\n\
             EXPOSE 80{} 443/tcp\n\
             HEALTHCHECK --interval=30s CMD [\"curl\", \"-f\", \"http://localhost/\"]\n\
             CMD [\"/opt/app/bin/run\", \"--stage\", \"{stage}\"]\n",
            stage % 10
        );
    }
    out
}

#[divan::bench]
fn parse(bencher: Bencher) {
    let text = big_dockerfile();
    bencher.bench(|| parser::parse(black_box(text.as_bytes())).unwrap());
}

/// Parse, check every instruction, and expand every ENV/LABEL/WORKDIR/COPY word.
#[divan::bench]
fn parse_check_and_expand(bencher: Bencher) {
    let text = big_dockerfile();
    let lexer = Lexer::default();
    bencher.bench(|| {
        let df = parser::parse(black_box(text.as_bytes())).unwrap();
        let parsed = instructions::parse(&df).unwrap();
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("BASE".into(), "debian".into());
        env.insert("PATH".into(), "/usr/bin:/bin".into());
        let mut expanded = 0usize;
        for stage in &parsed.stages {
            expanded += lexer.expand(&stage.from.base_name, &env).unwrap().len();
            for command in &stage.commands {
                let words: Vec<&str> = match &command.instruction {
                    Instruction::Env(kvs) | Instruction::Label(kvs) => {
                        kvs.iter().map(|kv| kv.value.as_str()).collect()
                    }
                    Instruction::Workdir(dir) => vec![dir.as_str()],
                    Instruction::Arg(args) => {
                        args.iter().filter_map(|a| a.value.as_deref()).collect()
                    }
                    Instruction::Copy(copy) => {
                        copy.paths.sources.iter().map(String::as_str).collect()
                    }
                    _ => Vec::new(),
                };
                for word in words {
                    expanded += lexer.expand_words(word, &env).unwrap().len();
                }
            }
        }
        expanded
    });
}
