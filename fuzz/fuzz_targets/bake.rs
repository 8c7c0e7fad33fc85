//! Any bytes as a Bake file (HCL, or JSON when it parses as JSON): errors only, no
//! panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temp directory");
    let name = if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        "docker-bake.json"
    } else {
        "docker-bake.hcl"
    };
    std::fs::write(dir.path().join(name), data).expect("the bake file");
    let request = kiln_bake::Request {
        files: vec![name.to_owned()],
        dir: dir.path().to_path_buf(),
        ..kiln_bake::Request::default()
    };
    let _ = kiln_bake::resolve(&request);
    let _ = kiln_bake::list(&request);
});
