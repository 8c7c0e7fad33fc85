//! BuildKit's parser and shell-lexer test vectors from `shared/conformance/dockerfile`.
//!
//! The data directory is `KILN_CONFORMANCE_DIR` (a relative path is taken from the
//! workspace root), by default `../shared/conformance`. Each suite prints
//! `<suite>: N passed, M failed` and fails if any case failed; a suite whose folder is
//! absent is skipped (a failure under CI).

use std::collections::HashMap;
use std::path::PathBuf;

use fs_err as fs;
use kiln_dockerfile::parser;
use kiln_dockerfile::shell::Lexer;

/// The suite's folder, or `None` (after a skip, which fails under CI) when absent.
fn suite_dir(folder: &str) -> Option<PathBuf> {
    kiln_test::conformance_dir("dockerfile").map(|d| d.join(folder))
}

/// Prints the suite line and fails the test if any case failed.
fn report(suite: &str, failures: &[String], passed: usize) {
    kiln_test::report_suite(suite, passed, failures);
}

#[test]
fn parser() {
    let Some(dir) = suite_dir("parser") else {
        return;
    };
    kiln_test::run_suite(
        "parser",
        &dir,
        |_| true,
        |case| {
            let source = fs::read(case.join("Dockerfile")).unwrap();
            let expected = fs::read_to_string(case.join("result")).unwrap();
            match parser::parse(&source) {
                Ok(df) if df.dump() + "\n" == expected => Ok(()),
                Ok(df) => Err(format!(
                    "\n--- expected\n{expected}--- got\n{}\n",
                    df.dump()
                )),
                Err(err) => Err(err.to_string()),
            }
        },
    );
}

#[test]
fn parser_negative() {
    let Some(dir) = suite_dir("parser-negative") else {
        return;
    };
    kiln_test::run_suite(
        "parser-negative",
        &dir,
        |_| true,
        |case| {
            let source = fs::read(case.join("Dockerfile")).unwrap();
            match parser::parse(&source) {
                Err(_) => Ok(()),
                Ok(df) => Err(format!("parsed, expected an error:\n{}", df.dump())),
            }
        },
    );
}

#[test]
fn parser_lines() {
    let Some(dir) = suite_dir("parser-lines") else {
        return;
    };
    kiln_test::run_suite(
        "parser-lines",
        &dir,
        |_| true,
        |case| {
            let expected = fs::read_to_string(case.join("lines")).unwrap();
            let df = parser::parse(&fs::read(case.join("Dockerfile")).unwrap())
                .map_err(|err| err.to_string())?;
            let mut got = format!(
                "root {} {}\nchildren {}\n",
                df.location.start.line,
                df.location.end.line,
                df.children.len()
            );
            for child in &df.children {
                got += &format!(
                    "child {} {}\n",
                    child.location.start.line, child.location.end.line
                );
            }
            if got.trim_end() == expected.trim_end() {
                Ok(())
            } else {
                Err(format!("\n--- expected\n{expected}--- got\n{got}"))
            }
        },
    );
}

#[test]
fn env_var_test() {
    let Some(dir) = suite_dir("shell") else {
        return;
    };
    let env: HashMap<String, String> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let lexer = Lexer::default();
    let (mut passed, mut failures) = (0, Vec::new());
    let data = fs::read_to_string(dir.join("envVarTest")).unwrap();
    for (number, line) in data.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            failures.push(format!("line {}: malformed: {line}", number + 1));
            continue;
        };
        if platform == "W" {
            continue;
        }
        let got = lexer.expand(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => word == expected,
            (Err(_), _) => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "line {}: {input:?}: expected {expected:?}, got {got:?}",
                number + 1
            ));
        }
    }
    report("envVarTest", &failures, passed);
}

#[test]
fn words_test() {
    let Some(dir) = suite_dir("shell") else {
        return;
    };
    let lexer = Lexer::default();
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut passed, mut failures) = (0, Vec::new());
    let data = fs::read_to_string(dir.join("wordsTest")).unwrap();
    for (number, line) in data.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (name, value) = rest
                .trim_start_matches(' ')
                .split_once('=')
                .unwrap_or((rest, ""));
            env.push((name.to_owned(), value.to_owned()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        let [input, expected] = fields[..] else {
            failures.push(format!("line {}: malformed: {line}", number + 1));
            continue;
        };
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        let got = lexer
            .expand_words(input.trim(), &env)
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        if got == expected {
            passed += 1;
        } else {
            failures.push(format!(
                "line {}: {input:?}: expected {expected:?}, got {got:?}",
                number + 1
            ));
        }
    }
    report("wordsTest", &failures, passed);
}
