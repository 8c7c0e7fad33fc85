//! The owner a file action gives what it creates, resolved as BuildKit's `readUser`
//! does (`solver/llbsolver/ops/user_linux.go`): a name missing from the image, or an
//! image without `/etc/passwd` or `/etc/group`, is not an error.

use std::io;
use std::path::Path;

use fs_err as fs;
use kiln_llb::pb;

use crate::Error;
use crate::fsutil::resolve_in_root;

/// Resolves `chown` to a uid and gid. Names are looked up in the tables of the root
/// that `root_of` gives for the input the name refers to (`NamedUserOpt.input`).
///
/// - a user id alone gives that id as the group too;
/// - a user name gives its uid and primary gid from `/etc/passwd`, or `0:0` when the
///   name (or the file) is missing;
/// - no user means uid 0;
/// - a group id or name replaces the gid; a group name missing from `/etc/group`
///   leaves the user's gid.
pub(crate) fn resolve(
    chown: &pb::ChownOpt,
    root_of: &mut dyn FnMut(i64) -> Result<std::path::PathBuf, Error>,
) -> Result<(u32, u32), Error> {
    let (mut uid, mut gid) = (0, 0);
    match chown.user.as_ref().and_then(|u| u.user.as_ref()) {
        Some(pb::user_opt::User::ById(id)) => (uid, gid) = (*id, *id),
        Some(pb::user_opt::User::ByName(named)) => {
            let root = root_of(named.input)?;
            if let Some(entry) = find_entry(&root, "etc/passwd", &named.name)? {
                uid = field_id(&entry, 2);
                gid = field_id(&entry, 3);
            }
        }
        None => {}
    }
    match chown.group.as_ref().and_then(|g| g.user.as_ref()) {
        Some(pb::user_opt::User::ById(id)) => gid = *id,
        Some(pb::user_opt::User::ByName(named)) => {
            let root = root_of(named.input)?;
            if let Some(entry) = find_entry(&root, "etc/group", &named.name)? {
                gid = field_id(&entry, 2);
            }
        }
        None => {}
    }
    Ok((uid, gid))
}

/// The first line of a passwd-format table under `root` whose name is `name`, split
/// into fields; `None` when there is none or the table cannot be found.
fn find_entry(root: &Path, table: &str, name: &str) -> Result<Option<Vec<String>>, Error> {
    let path = resolve_in_root(root, table, true)?;
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields[0] == name))
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A numeric field; a missing or malformed one counts as 0, as Go's `user` package
/// reads it.
fn field_id(fields: &[String], index: usize) -> u32 {
    fields.get(index).and_then(|f| f.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_id(id: u32) -> Option<pb::UserOpt> {
        Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ById(id)),
        })
    }

    fn by_name(name: &str) -> Option<pb::UserOpt> {
        Some(pb::UserOpt {
            user: Some(pb::user_opt::User::ByName(pb::NamedUserOpt {
                name: name.to_owned(),
                input: 0,
            })),
        })
    }

    fn owner(root: &Path, user: Option<pb::UserOpt>, group: Option<pb::UserOpt>) -> (u32, u32) {
        let chown = pb::ChownOpt { user, group };
        resolve(&chown, &mut |_| Ok(root.to_path_buf())).unwrap()
    }

    #[test]
    fn names_and_ids_as_buildkit_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n  app:x:1234:4321::/:/bin/sh  \nodd:x:x:y\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\ngrp:x:555:\n").unwrap();

        assert_eq!(owner(root, by_id(1000), None), (1000, 1000));
        assert_eq!(owner(root, by_id(1000), by_name("grp")), (1000, 555));
        assert_eq!(owner(root, by_id(1000), by_name("nogrp")), (1000, 1000));
        assert_eq!(owner(root, by_name("app"), None), (1234, 4321));
        assert_eq!(owner(root, by_name("app"), by_id(7)), (1234, 7));
        assert_eq!(owner(root, by_name("app"), by_name("nogrp")), (1234, 4321));
        assert_eq!(owner(root, by_name("nouser"), None), (0, 0));
        assert_eq!(owner(root, by_name("nouser"), by_name("grp")), (0, 555));
        assert_eq!(owner(root, by_name("odd"), None), (0, 0));
        assert_eq!(owner(root, None, by_name("grp")), (0, 555));
    }

    #[test]
    fn an_image_without_tables_is_root() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(owner(dir.path(), by_name("app"), by_name("grp")), (0, 0));
        // `/etc` a file: the table's path is not a directory.
        fs::write(dir.path().join("etc"), "").unwrap();
        assert_eq!(owner(dir.path(), by_name("app"), None), (0, 0));
    }
}
