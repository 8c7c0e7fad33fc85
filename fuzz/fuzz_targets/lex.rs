//! Any word through the shell lexer in every mode: errors only, no panic, no hang.
#![no_main]

use kiln_dockerfile::shell::Lexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let word = String::from_utf8_lossy(rest);
    let lexer = Lexer {
        raw_quotes: mode & 1 != 0,
        raw_escapes: mode & 2 != 0,
        skip_unset_env: mode & 4 != 0,
        skip_process_quotes: mode & 8 != 0,
        ..Lexer::new(if mode & 16 != 0 { '`' } else { '\\' })
    };
    let env = vec![
        ("a".to_owned(), "x y*z/a".to_owned()),
        ("e".to_owned(), String::new()),
    ];
    let _ = lexer.process(&word, &env);
});
