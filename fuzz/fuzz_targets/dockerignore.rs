//! Any bytes as a `.dockerignore`: its patterns parse or fail cleanly, and matching
//! them against a few paths never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let patterns = kiln_engine::dockerignore::parse(data);
    if let Ok(matcher) = kiln_llb::patterns::Matcher::parse(&patterns) {
        for path in [
            "a",
            "a/b/c.txt",
            ".git/config",
            "deep/x/y/z/w/v",
            "Dockerfile",
        ] {
            let _ = matcher.matches(path);
        }
    }
});
