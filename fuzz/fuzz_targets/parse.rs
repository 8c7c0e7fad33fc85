//! Any bytes through the parser and the instruction checker: errors only, no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dockerfile) = kiln_dockerfile::parser::parse(data) {
        let _ = dockerfile.dump();
        let _ = kiln_dockerfile::instructions::parse(&dockerfile);
    }
});
