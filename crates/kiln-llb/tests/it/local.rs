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
    kiln_test::write_files(
        root,
        &[
            ("a.txt", "a"),
            ("src/main.c", "int main;"),
            ("src/lib/util.c", "util"),
            ("src/lib/notes.md", "notes"),
            ("build/out.o", "obj"),
            ("docs/keep/readme.md", "readme"),
        ],
    );
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

/// A walk lists a directory's entries right after it, before names that sort after
/// the directory's name but before `/` (fsutil's order, which BuildKit's receiver
/// checks).
#[test]
fn a_walk_lists_in_fsutils_path_order() {
    let dir = tempfile::tempdir().unwrap();
    kiln_test::write_files(
        dir.path(),
        &[
            ("a/x", ""),
            ("a/y/z", ""),
            ("a.txt", ""),
            ("a-b", ""),
            ("b", ""),
        ],
    );
    let walked: Vec<String> = select(dir.path(), &Filter::default())
        .unwrap()
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(walked, ["a", "a/x", "a/y", "a/y/z", "a-b", "a.txt", "b"]);
    assert!(kiln_llb::local::path_order("a/x", "a-b").is_lt());
    assert!(kiln_llb::local::path_order("a", "a/x").is_lt());
}

/// A sender's walk stops with an error from its reading threads, and with one when a
/// reading thread panics, rather than waiting for a directory that never comes.
#[test]
fn a_failing_or_panicking_reader_ends_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    kiln_test::write_files(dir.path(), &[("a/x", ""), ("b/y", ""), ("c", "")]);
    let fails = |rel: &str, _: &kiln_llb::local::Entry, _: Option<bool>| {
        if rel == "b/y" {
            Err(kiln_llb::local::SelectError::Io(std::io::Error::other(
                "no",
            )))
        } else {
            Ok(())
        }
    };
    let panics = |rel: &str, _: &kiln_llb::local::Entry, _: Option<bool>| {
        assert_ne!(rel, "b/y", "a reader panics");
        Ok::<(), kiln_llb::local::SelectError>(())
    };
    for enrich in [&fails as &kiln_llb::local::Enrich<'_, ()>, &panics] {
        let mut seen = Vec::new();
        let walked = kiln_llb::local::select_to_send(
            dir.path(),
            &Filter::default(),
            enrich,
            &mut |rel, _, ()| {
                seen.push(rel);
                Ok(())
            },
        );
        assert!(walked.is_err());
        assert!(!seen.contains(&"c".to_owned()), "{seen:?}");
    }
}
