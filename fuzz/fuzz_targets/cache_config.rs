//! Any bytes as a remote cache's config (BuildKit's `cacheconfig.v0`): errors only, no
//! panic and no hang on records that loop, link past the end or fan out.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<kiln_remotecache::format::CacheConfig>(data) else {
        return;
    };
    let layers: Vec<kiln_oci::Descriptor> = config
        .layers
        .iter()
        .filter_map(|l| {
            serde_json::from_value(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": l.blob,
                "size": 1,
            }))
            .ok()
        })
        .collect();
    let index = kiln_remotecache::CacheIndex::new(&config, &layers);
    let _ = index.len();
});
