//! fsutil's `Stat.mode` is Go's `os.FileMode`, not a unix mode: the type is in high
//! bits of its own. These convert between the two.

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;
const MODE_TYPE: u32 =
    MODE_DIR | MODE_SYMLINK | MODE_NAMED_PIPE | MODE_SOCKET | MODE_DEVICE | MODE_CHAR_DEVICE;

/// What kind of entry a Go file mode says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

pub(crate) fn kind(go_mode: u32) -> Kind {
    match go_mode & MODE_TYPE {
        MODE_DIR => Kind::Dir,
        MODE_SYMLINK => Kind::Symlink,
        MODE_NAMED_PIPE => Kind::Fifo,
        MODE_SOCKET => Kind::Socket,
        m if m == MODE_DEVICE | MODE_CHAR_DEVICE => Kind::CharDevice,
        MODE_DEVICE => Kind::BlockDevice,
        _ => Kind::File,
    }
}

/// The permission bits (with setuid, setgid and sticky) as a unix mode's low 12 bits.
pub(crate) fn permissions(go_mode: u32) -> u32 {
    let mut mode = go_mode & 0o777;
    if go_mode & MODE_SETUID != 0 {
        mode |= 0o4000;
    }
    if go_mode & MODE_SETGID != 0 {
        mode |= 0o2000;
    }
    if go_mode & MODE_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

/// A Go file mode from a unix `st_mode`.
pub(crate) fn from_unix(st_mode: u32) -> u32 {
    let kind = match st_mode & 0o170000 {
        0o040000 => MODE_DIR,
        0o120000 => MODE_SYMLINK,
        0o010000 => MODE_NAMED_PIPE,
        0o140000 => MODE_SOCKET,
        0o020000 => MODE_DEVICE | MODE_CHAR_DEVICE,
        0o060000 => MODE_DEVICE,
        _ => 0,
    };
    let mut mode = kind | (st_mode & 0o777);
    if st_mode & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for st_mode in [
            0o100644, 0o040755, 0o120777, 0o104755, 0o041777, 0o020666, 0o010600,
        ] {
            let go = from_unix(st_mode);
            assert_eq!(permissions(go), st_mode & 0o7777);
        }
        assert_eq!(kind(from_unix(0o040755)), Kind::Dir);
        assert_eq!(kind(from_unix(0o120777)), Kind::Symlink);
        assert_eq!(kind(from_unix(0o020666)), Kind::CharDevice);
        assert_eq!(kind(from_unix(0o060666)), Kind::BlockDevice);
        assert_eq!(kind(from_unix(0o100644)), Kind::File);
    }
}
