//! Any bytes as what a registry serves (manifest, index, image config) and a cache
//! manifest: errors only, no panic; what parses serializes again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = serde_json::from_slice::<kiln_oci::Manifest>(data) {
        let _ = serde_json::to_vec(&manifest).expect("a parsed manifest serializes");
    }
    if let Ok(index) = serde_json::from_slice::<kiln_oci::Index>(data) {
        let _ = serde_json::to_vec(&index).expect("a parsed index serializes");
        for entry in &index.manifests {
            let _ = entry.platform.as_ref().map(|p| p.architecture.len());
        }
    }
    if let Ok(config) = serde_json::from_slice::<kiln_dockerfile::convert::Image>(data) {
        let _ = serde_json::to_vec(&config).expect("a parsed image config serializes");
    }
    let _ = kiln_remotecache::format::parse_manifest(data);
});
