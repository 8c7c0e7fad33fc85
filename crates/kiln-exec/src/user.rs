//! `USER` resolution against the rootfs' `/etc/passwd` and `/etc/group`.

use std::path::Path;

use crate::Error;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

fn read_table(rootfs: &Path, file: &str) -> Vec<Vec<String>> {
    fs_err::read_to_string(rootfs.join(file))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect()
}

/// Resolves `user[:group]` (names or ids) the way runc/Docker do; empty means root,
/// with the groups /etc/group gives it as BuildKit resolves the default user ("0").
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<User, Error> {
    if spec.is_empty() {
        return Ok(resolve_user(rootfs, "0").unwrap_or_default());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_table(rootfs, "etc/passwd");
    let groups = read_table(rootfs, "etc/group");
    let entry = passwd
        .iter()
        .find(|e| e.first().map(String::as_str) == Some(user));
    let (uid, mut gid, name) = match (user.parse::<u32>(), entry) {
        (_, Some(e)) if e.len() >= 4 => (
            e[2].parse().unwrap_or(0),
            e[3].parse().unwrap_or(0),
            Some(e[0].clone()),
        ),
        (Ok(uid), _) => {
            let by_id = passwd
                .iter()
                .find(|e| e.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(uid));
            (
                uid,
                by_id
                    .and_then(|e| e.get(3))
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0),
                by_id.map(|e| e[0].clone()),
            )
        }
        _ => return Err(Error::UnknownUser(user.to_owned())),
    };
    if let Some(group) = group {
        gid = match group.parse::<u32>() {
            Ok(g) => g,
            Err(_) => groups
                .iter()
                .find(|e| e.first().map(String::as_str) == Some(group))
                .and_then(|e| e.get(2))
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| Error::UnknownGroup(group.to_owned()))?,
        };
    }
    // The primary group is a supplementary one too, as containerd and Docker set it
    // since CVE-2023-25173 (a process cannot shed it to get past a group denial).
    let mut additional_gids = vec![gid];
    if let (None, Some(name)) = (group, name) {
        for e in &groups {
            let members = e.get(3).map(String::as_str).unwrap_or_default();
            let gid_of_entry = e.get(2).and_then(|g| g.parse::<u32>().ok());
            if let Some(g) =
                gid_of_entry.filter(|g| *g != gid && members.split(',').any(|m| m == name))
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups() {
        let dir = std::env::temp_dir().join(format!("kiln-user-{}", std::process::id()));
        fs_err::create_dir_all(dir.join("etc")).unwrap();
        fs_err::write(
            dir.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs_err::write(
            dir.join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\n",
        )
        .unwrap();
        assert_eq!(
            resolve_user(&dir, "app").unwrap(),
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![1000, 10]
            }
        );
        assert_eq!(resolve_user(&dir, "app:wheel").unwrap().gid, 10);
        assert_eq!(
            resolve_user(&dir, "4242:4242").unwrap(),
            User {
                uid: 4242,
                gid: 4242,
                additional_gids: vec![4242]
            }
        );
        assert!(resolve_user(&dir, "nobody").is_err());
        // The default user is root with root's groups (BuildKit's TestUser).
        let root = User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0, 10],
        };
        assert_eq!(resolve_user(&dir, "").unwrap(), root);
        assert_eq!(resolve_user(&dir, "root").unwrap(), root);
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
