//! Property tests: no input makes the parser, the instruction checker or the lexer
//! panic or hang; they return an error instead. `PROPTEST_CASES` scales the run (the
//! long fuzzing run in the issue note used it).

use kiln_dockerfile::shell::{EmptyEnv, Lexer};
use proptest::prelude::*;

/// Fragments that steer random input towards the interesting corners of the grammar.
const FRAGMENTS: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "WORKDIR ",
    "USER ",
    "STOPSIGNAL ",
    "MAINTAINER ",
    "ENTRYPOINT ",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=skip=all\n",
    "\\\n",
    "`\n",
    "\n",
    " ",
    "\t",
    "\"",
    "'",
    "[",
    "]",
    "\"a\",",
    "--mount=type=cache,target=/x",
    "--from=a",
    "--chmod=u+x",
    "--network=none",
    "--interval=1s",
    "<<EOF",
    "<<-'E'",
    "EOF\n",
    "\tE\n",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    ":?",
    "##",
    "%%",
    "//",
    "/",
    "*",
    "?",
    "a=b",
    "x",
    "AS",
    "é",
    "\u{a0}",
    "\r\n",
    "=",
    ",",
    "\\",
    "#",
    "NONE",
];

fn dockerfile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)
            .prop_map(|parts| parts.concat()),
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parser_and_instructions_never_panic(text in dockerfile_text()) {
        if let Ok(df) = kiln_dockerfile::parser::parse(text.as_bytes()) {
            let _ = df.dump();
            let _ = kiln_dockerfile::instructions::parse(&df);
        }
    }

    #[test]
    fn lexer_never_panics(word in dockerfile_text(), raw_quotes: bool, raw_escapes: bool, skip_unset: bool, backtick: bool) {
        let env = vec![("a".to_owned(), "x y*z".to_owned()), ("EOF".to_owned(), String::new())];
        let lexer = Lexer {
            raw_quotes,
            raw_escapes,
            skip_unset_env: skip_unset,
            ..Lexer::new(if backtick { '`' } else { '\\' })
        };
        let _ = lexer.process(&word, &env);
        let _ = lexer.process(&word, &EmptyEnv);
    }
}
