//! Any bytes as a tar layer or an archive ADD unpacks: errors only, no panic, and
//! nothing written outside the extraction root (`..`, absolute paths, symlinks and
//! hard links pointing out, whiteouts of outside paths).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, tar)) = data.split_first() else {
        return;
    };
    let outer = tempfile::tempdir().expect("a temp directory");
    let root = outer.path().join("root");
    std::fs::create_dir(&root).expect("the root");
    // Something outside the root for an escape to touch.
    let bystander = outer.path().join("bystander");
    std::fs::write(&bystander, b"untouched").expect("the bystander");
    let _ = kiln_worker::fuzzing::extract(&root, tar, flags & 1 == 1);
    let outside: Vec<_> = std::fs::read_dir(outer.path())
        .expect("the outer directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(outside.len(), 2, "written outside the root: {outside:?}");
    assert_eq!(
        std::fs::read(&bystander).expect("the bystander is still there"),
        b"untouched"
    );
});
