//! Any bytes as an LLB definition a client sends: errors only (bad protobuf, a cycle,
//! a missing input), no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(definition) = kiln_llb::LoadedDefinition::decode(data) {
        let _ = definition.vertices.len();
    }
});
