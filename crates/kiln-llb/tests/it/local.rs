//! A context selected from a receiver's listing is the context a walk selects.

use kiln_llb::local::{Filter, entries, select, select_listed};

fn filter(include: &[&str], exclude: &[&str], follow: &[&str]) -> Filter {
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
    Filter {
        include_patterns: owned(include),
        exclude_patterns: owned(exclude),
        follow_paths: owned(follow),
    }
}

#[test]
fn a_listing_selects_what_a_walk_selects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, body) in [
        ("a.txt", "a"),
        ("src/main.c", "int main;"),
        ("src/lib/util.c", "util"),
        ("src/lib/notes.md", "notes"),
        ("build/out.o", "obj"),
        ("docs/keep/readme.md", "readme"),
    ] {
        let path = root.join(path);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, body).unwrap();
    }
    std::os::unix::fs::symlink("src/lib", root.join("lib")).unwrap();
    let listing = entries(root).unwrap();
    for filter in [
        filter(&[], &[], &[]),
        filter(&[], &["build", "**/*.md", "!docs/keep/readme.md"], &[]),
        filter(&["src/**/*.c"], &[], &[]),
        filter(&[], &[], &["src/main.c", "lib"]),
        filter(&[], &["src/lib/notes.md"], &["lib/*", "a.txt"]),
        filter(&["*.txt", "docs"], &["docs/keep"], &["docs", "a.txt"]),
    ] {
        let walked = select(root, &filter).unwrap();
        assert!(!walked.is_empty(), "{filter:?}");
        assert_eq!(
            select_listed(root, &listing, &filter).unwrap(),
            walked,
            "{filter:?}"
        );
    }
}
