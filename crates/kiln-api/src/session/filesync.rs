//! fsutil's file-transfer protocol over a session (`FileSync.DiffCopy`,
//! `FileSend.DiffCopy`), both directions.
//!
//! The sender walks its tree in lexical order and sends one `STAT` packet per entry
//! (an empty `STAT` ends the list); the receiver asks with `REQ id` for the content of
//! the regular files it does not already have (an id is the entry's index in the list);
//! the sender answers with `DATA id` packets, an empty one ending each file; the
//! receiver ends the transfer with `FIN`, which the sender echoes. `ERR` carries an
//! error either way.
//!
//! [`receive`] keeps a destination directory in step with a client directory, asking
//! only for files whose size, time, mode or owner differ from what it already has, so
//! a rebuild transfers only what changed. [`send_dir`] and [`send_file`] export a
//! result to the client.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;

use kiln_llb::local::Entry;

use super::fsmode::{self, Kind};
use crate::proto::fsutil::types::packet::PacketType;
use crate::proto::fsutil::types::{Packet, Stat};
use crate::proto::moby::filesync::packet::file_send_client::FileSendClient as PacketSendClient;
use crate::proto::moby::filesync::packet::file_sync_client::FileSyncClient;
use crate::proto::moby::filesync::v1::BytesMessage;
use crate::proto::moby::filesync::v1::file_send_client::FileSendClient as BytesSendClient;

/// What can go wrong moving files over a session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call failed (the client refused it, or the connection broke).
    #[error("{what}: {status}")]
    Call {
        /// What was being done.
        what: String,
        /// The gRPC status.
        status: tonic::Status,
    },
    /// The other end reported an error.
    #[error("{what}: the client reported: {message}")]
    Remote {
        /// What was being done.
        what: String,
        /// Its message.
        message: String,
    },
    /// The other end broke the protocol (a path that leaves the directory, an
    /// unknown id, an early end).
    #[error("{what}: {message}")]
    Protocol {
        /// What was being done.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// Reading or writing the local side failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The local path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Which files of a client directory a transfer takes (a local source's filters).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these paths (`.dockerignore`-style patterns).
    pub include_patterns: Vec<String>,
    /// Not these.
    pub exclude_patterns: Vec<String>,
    /// Only these paths and the symlinks they go through.
    pub follow_paths: Vec<String>,
}

const DIR_NAME: &str = "dir-name";
const INCLUDE_PATTERNS: &str = "include-patterns";
const EXCLUDE_PATTERNS: &str = "exclude-patterns";
const FOLLOW_PATHS: &str = "followpaths";
const EXPORTER_ID: &str = "buildkit-attachable-exporter-id";
const EXPORTER_METADATA_PREFIX: &str = "exporter-md-";

/// Header values as BuildKit sends them: all of a key's values URL-encoded (and the key
/// marked `KEY-encoded: 1`) when any has a non-ASCII character.
fn put_values(metadata: &mut MetadataMap, key: &'static str, values: &[String]) {
    let encode = values.iter().any(|v| !v.is_ascii());
    for value in values {
        let text = if encode {
            query_escape(value)
        } else {
            value.clone()
        };
        if let Ok(value) = MetadataValue::try_from(text.as_str()) {
            metadata.append(key, value);
        }
    }
    if encode {
        let marker: &'static str = Box::leak(format!("{key}-encoded").into_boxed_str());
        metadata.insert(marker, MetadataValue::from_static("1"));
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A path from the other end, made safe to join under a directory: relative, clean,
/// never leaving it.
fn safe_relative(path: &str) -> Option<PathBuf> {
    // The usual path, plain names only, is taken as it is.
    if path
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..")
    {
        return Some(PathBuf::from(path));
    }
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// What a receiver already has at a path, to decide whether to ask for it again.
fn unchanged(local: &Entry, stat: &Stat, kind: Kind) -> bool {
    let same_kind = match kind {
        Kind::File => local.is_file(),
        Kind::Dir => local.is_dir(),
        Kind::Symlink => local.is_symlink(),
        _ => false,
    };
    same_kind
        && (kind == Kind::Dir || local.size as i64 == stat.size)
        && local.uid == stat.uid
        && local.gid == stat.gid
        && (kind == Kind::Symlink || local.mode & 0o7777 == fsmode::permissions(stat.mode))
        && (kind == Kind::Dir
            || local.mtime as i128 * 1_000_000_000 + local.mtime_nsec as i128
                == stat.mod_time as i128)
}

fn io_error(what: &str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        what: what.to_owned(),
        path: path.to_owned(),
        source,
    }
}

/// The extended attributes of a local entry as fsutil's sender sends them: all but
/// macOS's `com.apple.` ones.
pub(crate) fn sent_xattrs(path: &Path) -> std::io::Result<HashMap<String, Vec<u8>>> {
    Ok(kiln_oci::xattr::list(path)?
        .into_iter()
        .filter(|(name, _)| !name.starts_with("com.apple."))
        .collect())
}

/// Sets an entry's extended attributes, owner, permission bits and time as the sender
/// had them, in fsutil's order: the attributes first, each as far as this file system
/// and this process may (the chown after clears a file capability, as in BuildKit).
fn apply_stat(path: &Path, stat: &Stat, kind: Kind) -> std::io::Result<()> {
    if kind != Kind::Symlink {
        for (name, value) in &stat.xattrs {
            let _ = rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty());
        }
    }
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(stat.uid)),
        Some(rustix::fs::Gid::from_raw(stat.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if kind != Kind::Symlink {
        fs_err::set_permissions(
            path,
            std::fs::Permissions::from_mode(fsmode::permissions(stat.mode)),
        )?;
    }
    let time = rustix::fs::Timespec {
        tv_sec: stat.mod_time.div_euclid(1_000_000_000),
        tv_nsec: stat.mod_time.rem_euclid(1_000_000_000),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: time,
            last_modification: time,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match fs_err::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs_err::remove_dir_all(path),
        Ok(_) => fs_err::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// A file whose content is asked for; its temp file is opened when its first data
/// arrives (a few files arrive at once, however many are asked for).
struct Incoming {
    temp: PathBuf,
    file: Option<fs_err::File>,
    target: PathBuf,
    stat: Stat,
}

impl Incoming {
    fn file(&mut self) -> std::io::Result<&mut fs_err::File> {
        if self.file.is_none() {
            self.file = Some(fs_err::File::create(&self.temp)?);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

/// Brings `dest` in step with the client's directory `name` (filtered): entries the
/// client does not have are removed, and only files that differ are transferred.
/// `known` is what `dest` holds when the caller knows it (the listing the previous
/// receive into it returned, nothing having touched it since): then `dest` is not
/// walked again.
pub async fn receive(
    channel: Channel,
    name: &str,
    filter: &Filter,
    dest: &Path,
    known: Option<Arc<Vec<(String, Entry)>>>,
) -> Result<Received, Error> {
    let what = format!("transferring {name}");
    let (to_client, outbound) = mpsc::channel::<Packet>(64);
    let mut request = tonic::Request::new(ReceiverStream::new(outbound));
    let metadata = request.metadata_mut();
    put_values(metadata, DIR_NAME, &[name.to_owned()]);
    put_values(metadata, INCLUDE_PATTERNS, &filter.include_patterns);
    put_values(metadata, EXCLUDE_PATTERNS, &filter.exclude_patterns);
    put_values(metadata, FOLLOW_PATHS, &filter.follow_paths);
    let inbound = FileSyncClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .diff_copy(request)
        .await
        .map_err(|status| Error::Call {
            what: what.clone(),
            status,
        })?
        .into_inner();
    receive_packets(Box::pin(inbound), to_client, dest, false, known, &what).await
}

/// A stream of packets from the other end.
pub(crate) type Inbound = Pin<Box<dyn Stream<Item = Result<Packet, tonic::Status>> + Send>>;

/// What a receive did.
#[derive(Debug, Default)]
pub struct Received {
    /// How many files came over.
    pub transferred: usize,
    /// Every entry under the directory now (without `merge`), sorted, with its metadata
    /// as on disk, as [`kiln_llb::local::entries`] would list it: a reader of the
    /// directory selects from it rather than walking it again.
    pub listing: Vec<(String, Entry)>,
}

/// The receiving side of the protocol over any packet streams: `dest` brought in step
/// with what the sender lists. With `merge`, what `dest` has and the sender does not
/// list stays (an output directory on the client, as fsutil's `Merge`). `known`, when
/// given, is what `dest` holds (see [`receive`]).
pub(crate) async fn receive_packets(
    mut inbound: Inbound,
    to_client: mpsc::Sender<Packet>,
    dest: &Path,
    merge: bool,
    known: Option<Arc<Vec<(String, Entry)>>>,
    what: &str,
) -> Result<Received, Error> {
    let what = what.to_owned();
    let failed = |status| Error::Call {
        what: what.clone(),
        status,
    };
    let protocol = |message: String| Error::Protocol {
        what: what.clone(),
        message,
    };
    fs_err::create_dir_all(dest).map_err(|e| io_error(&what, dest, e))?;
    // What is here already is read in one walk (one lookup per entry, relative to its
    // directory), while the client walks its side and sends its list; or it is known.
    let walked_dir = dest.to_path_buf();
    let walk = tokio::task::spawn_blocking(move || match known {
        Some(known) => Ok(known.iter().cloned().collect::<HashMap<_, _>>()),
        None => kiln_llb::local::entries(&walked_dir).map(|e| e.into_iter().collect()),
    });
    // What is here already: each entry is compared with it as it arrives, while the
    // sender is still walking its side.
    let local: HashMap<String, Entry> = walk
        .await
        .map_err(|e| io_error(&what, dest, std::io::Error::other(e)))?
        .map_err(|e| io_error(&what, dest, std::io::Error::other(e)))?;
    // Whether anything under `dest` changes: if not, no directory's times need setting.
    let mut changed = false;
    let mut requested: HashMap<u32, Incoming> = HashMap::new();
    let mut hardlinks: Vec<(PathBuf, PathBuf, Stat)> = Vec::new();
    let mut dirs: Vec<(usize, PathBuf, Stat)> = Vec::new();
    // The list of entries, and those left as they were, by position in it: the listing
    // takes them from the walk; everything else is looked at once it is written.
    let mut stats: Vec<(PathBuf, Stat)> = Vec::new();
    let mut kept: Vec<Option<Entry>> = Vec::new();
    loop {
        let packet = inbound
            .next()
            .await
            .ok_or_else(|| protocol("the client ended the transfer early".to_owned()))?
            .map_err(failed)?;
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketStat) => match packet.stat {
                None => break,
                Some(stat) if stat.path.is_empty() => break,
                Some(stat) => {
                    let rel = safe_relative(&stat.path).ok_or_else(|| {
                        protocol(format!("the path {:?} leaves the directory", stat.path))
                    })?;
                    let id = stats.len();
                    stats.push((rel, stat));
                    kept.push(None);
                    let (rel, stat) = &stats[id];
                    let path = dest.join(rel);
                    let kind = fsmode::kind(stat.mode);
                    let local = rel.to_str().and_then(|rel| local.get(rel));
                    let fail = |e| io_error(&what, &path, e);
                    if kind == Kind::File && !stat.linkname.is_empty() {
                        // A hardlink to an earlier entry.
                        let target = safe_relative(&stat.linkname).ok_or_else(|| {
                            protocol(format!("the link {:?} leaves the directory", stat.linkname))
                        })?;
                        hardlinks.push((path, dest.join(target), stat.clone()));
                        continue;
                    }
                    if let Some(local) = local.filter(|local| unchanged(local, stat, kind)) {
                        if kind == Kind::Dir {
                            dirs.push((id, path, stat.clone()));
                        }
                        kept[id] = Some(*local);
                        continue;
                    }
                    changed = true;
                    match kind {
                        Kind::Dir => {
                            if local.as_ref().is_some_and(|m| !m.is_dir()) {
                                remove_any(&path).map_err(fail)?;
                            }
                            if !path.is_dir() {
                                fs_err::create_dir(&path).map_err(fail)?;
                            }
                            dirs.push((id, path, stat.clone()));
                        }
                        Kind::Symlink => {
                            remove_any(&path).map_err(fail)?;
                            std::os::unix::fs::symlink(&stat.linkname, &path).map_err(fail)?;
                            apply_stat(&path, stat, kind).map_err(fail)?;
                        }
                        Kind::File => {
                            // A directory (or anything else) in its place goes now: a file cannot
                            // be renamed over a directory.
                            if local.as_ref().is_some_and(|m| !m.is_file()) {
                                remove_any(&path).map_err(fail)?;
                            }
                            let temp = path.with_file_name(format!(
                                ".kiln-incoming-{id}-{}",
                                path.file_name().unwrap_or_default().to_string_lossy()
                            ));
                            requested.insert(
                                id as u32,
                                Incoming {
                                    temp,
                                    file: None,
                                    target: path,
                                    stat: stat.clone(),
                                },
                            );
                        }
                        Kind::Fifo | Kind::CharDevice | Kind::BlockDevice => {
                            remove_any(&path).map_err(fail)?;
                            let file_type = match kind {
                                Kind::Fifo => rustix::fs::FileType::Fifo,
                                Kind::CharDevice => rustix::fs::FileType::CharacterDevice,
                                _ => rustix::fs::FileType::BlockDevice,
                            };
                            let device =
                                rustix::fs::makedev(stat.devmajor as u32, stat.devminor as u32);
                            rustix::fs::mknodat(
                                rustix::fs::CWD,
                                &path,
                                file_type,
                                rustix::fs::Mode::from_raw_mode(fsmode::permissions(stat.mode)),
                                device,
                            )
                            .map_err(|e| fail(e.into()))?;
                            apply_stat(&path, stat, kind).map_err(fail)?;
                        }
                        // A socket cannot be sent; BuildKit's receiver skips it too.
                        Kind::Socket => {}
                    }
                }
            },
            Ok(PacketType::PacketErr) => {
                return Err(Error::Remote {
                    what: what.clone(),
                    message: String::from_utf8_lossy(&packet.data).into_owned(),
                });
            }
            _ => return Err(protocol("expected the list of files".to_owned())),
        }
    }
    // What the sender did not list goes (an entry that changed kind was replaced as it
    // arrived).
    if !merge {
        let wanted: HashSet<&str> = stats.iter().filter_map(|(p, _)| p.to_str()).collect();
        changed |= remove_unlisted(dest, &local, &wanted).map_err(|e| io_error(&what, dest, e))?;
    }
    let transferred = requested.len();
    for id in requested.keys().copied().collect::<Vec<_>>() {
        let req = Packet {
            r#type: PacketType::PacketReq as i32,
            id,
            ..Packet::default()
        };
        to_client
            .send(req)
            .await
            .map_err(|_| protocol("the client stopped listening".to_owned()))?;
    }
    // File contents, in any order.
    while !requested.is_empty() {
        let packet = inbound
            .next()
            .await
            .ok_or_else(|| protocol("the client ended the transfer early".to_owned()))?
            .map_err(failed)?;
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketData) => {
                if packet.data.is_empty() {
                    let mut done = requested.remove(&packet.id).ok_or_else(|| {
                        protocol(format!(
                            "data for file {} that was not asked for",
                            packet.id
                        ))
                    })?;
                    // An empty file has no data before its end.
                    let temp = done.temp.clone();
                    done.file().map_err(|e| io_error(&what, &temp, e))?;
                    drop(done.file);
                    fs_err::rename(&done.temp, &done.target)
                        .map_err(|e| io_error(&what, &done.target, e))?;
                    apply_stat(&done.target, &done.stat, Kind::File)
                        .map_err(|e| io_error(&what, &done.target, e))?;
                } else {
                    let incoming = requested.get_mut(&packet.id).ok_or_else(|| {
                        protocol(format!(
                            "data for file {} that was not asked for",
                            packet.id
                        ))
                    })?;
                    let temp = incoming.temp.clone();
                    incoming
                        .file()
                        .and_then(|f| f.write_all(&packet.data))
                        .map_err(|e| io_error(&what, &temp, e))?;
                }
            }
            Ok(PacketType::PacketErr) => {
                for incoming in requested.values() {
                    let _ = fs_err::remove_file(&incoming.temp);
                }
                return Err(Error::Remote {
                    what: what.clone(),
                    message: String::from_utf8_lossy(&packet.data).into_owned(),
                });
            }
            _ => return Err(protocol("unexpected packet during file data".to_owned())),
        }
    }
    changed |= !hardlinks.is_empty();
    for (path, target, stat) in hardlinks {
        let fail = |e| io_error(&what, &path, e);
        remove_any(&path).map_err(fail)?;
        fs_err::hard_link(&target, &path).map_err(fail)?;
        apply_stat(&path, &stat, Kind::File).map_err(fail)?;
    }
    // Directories last, deepest first: their times change as entries are made. When
    // nothing changed, each is as it was (and as the listing has it).
    if changed {
        for (id, path, stat) in dirs.iter().rev() {
            apply_stat(path, stat, Kind::Dir).map_err(|e| io_error(&what, path, e))?;
            kept[*id] = None;
        }
    }
    to_client
        .send(Packet {
            r#type: PacketType::PacketFin as i32,
            ..Packet::default()
        })
        .await
        .map_err(|_| protocol("the client stopped listening".to_owned()))?;
    // The sender answers FIN with FIN.
    while let Some(packet) = inbound.next().await {
        match packet {
            Ok(p) if p.r#type == PacketType::PacketFin as i32 => break,
            Ok(_) => {}
            Err(status) => return Err(failed(status)),
        }
    }
    let listing = if merge {
        Vec::new()
    } else {
        listing(dest, &stats, kept).map_err(|e| io_error(&what, dest, e))?
    };
    Ok(Received {
        transferred,
        listing,
    })
}

/// The entries under `dest` after a receive of `stats`: those `kept` as the walk saw
/// them, the others (written, and every directory, whose times were set) looked at.
fn listing(
    dest: &Path,
    stats: &[(PathBuf, Stat)],
    kept: Vec<Option<Entry>>,
) -> std::io::Result<Vec<(String, Entry)>> {
    let mut listing = Vec::with_capacity(stats.len());
    for ((rel, stat), kept) in stats.iter().zip(kept) {
        let entry = match kept {
            Some(entry) => entry,
            // Not made: a socket cannot be sent.
            None if fsmode::kind(stat.mode) == Kind::Socket => continue,
            None => Entry::from(&fs_err::symlink_metadata(dest.join(rel))?),
        };
        listing.push((rel.to_string_lossy().into_owned(), entry));
    }
    listing.sort_by(|a, b| kiln_llb::local::path_order(&a.0, &b.0));
    Ok(listing)
}

/// Removes the entries of `local` (what is under `root`) that are not in `wanted`;
/// whether there were any.
fn remove_unlisted(
    root: &Path,
    local: &HashMap<String, Entry>,
    wanted: &HashSet<&str>,
) -> std::io::Result<bool> {
    let mut unlisted: Vec<&str> = local
        .keys()
        .map(String::as_str)
        .filter(|rel| !wanted.contains(rel))
        .collect();
    // Parents before children: what is under a removed directory is gone with it.
    unlisted.sort_unstable();
    let mut removed: Option<&str> = None;
    for rel in unlisted {
        let under_removed = removed.is_some_and(|dir| {
            rel.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        if !under_removed {
            remove_any(&root.join(rel))?;
            removed = Some(rel);
        }
    }
    Ok(removed.is_some())
}

/// The stat packet of a local entry (`rel` is its path in the transfer).
fn local_stat(path: &Path, rel: &str, meta: &std::fs::Metadata) -> std::io::Result<Stat> {
    let linkname = if meta.file_type().is_symlink() {
        fs_err::read_link(path)?.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let rdev = meta.rdev();
    Ok(Stat {
        path: rel.to_owned(),
        mode: fsmode::from_unix(meta.mode()),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size() as i64,
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        linkname,
        devmajor: i64::from(rustix::fs::major(rdev)),
        devminor: i64::from(rustix::fs::minor(rdev)),
        xattrs: sent_xattrs(path)?,
    })
}

/// Every entry under `root`, in the sender's lexical walk order, with its stat.
fn walk(root: &Path) -> std::io::Result<Vec<(PathBuf, Stat)>> {
    let mut out = Vec::new();
    let mut seen_inodes: HashMap<(u64, u64), String> = HashMap::new();
    fn visit(
        root: &Path,
        dir: &Path,
        out: &mut Vec<(PathBuf, Stat)>,
        seen: &mut HashMap<(u64, u64), String>,
    ) -> std::io::Result<()> {
        let mut names: Vec<_> = fs_err::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let meta = fs_err::symlink_metadata(&path)?;
            let mut stat = local_stat(&path, &rel, &meta)?;
            if meta.is_file() && meta.nlink() > 1 {
                match seen.get(&(meta.dev(), meta.ino())) {
                    Some(first) => stat.linkname = first.clone(),
                    None => {
                        seen.insert((meta.dev(), meta.ino()), rel.clone());
                    }
                }
            }
            out.push((path.clone(), stat));
            if meta.is_dir() {
                visit(root, &path, out, seen)?;
            }
        }
        Ok(())
    }
    visit(root, root, &mut out, &mut seen_inodes)?;
    Ok(out)
}

fn exporter_request<T>(
    stream: T,
    exporter_id: usize,
    metadata: &BTreeMap<String, String>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(stream);
    let headers = request.metadata_mut();
    if let Ok(id) = MetadataValue::try_from(exporter_id.to_string()) {
        headers.insert(EXPORTER_ID, id);
    }
    for (key, value) in metadata {
        let key = format!("{EXPORTER_METADATA_PREFIX}{key}");
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            headers.insert(key, value);
        }
    }
    request
}

/// Sends the tree under `root` to the client's output directory of exporter
/// `exporter_id` (the `local` exporter).
pub async fn send_dir(channel: Channel, exporter_id: usize, root: &Path) -> Result<(), Error> {
    let what = "sending the result to the client".to_owned();
    let (paths, stats): (Vec<PathBuf>, Vec<Stat>) = walk(root)
        .map_err(|e| io_error(&what, root, e))?
        .into_iter()
        .unzip();
    let (to_client, outbound) = mpsc::channel::<Packet>(64);
    let request = exporter_request(ReceiverStream::new(outbound), exporter_id, &BTreeMap::new());
    // The client answers (and so sends its headers) only once it has the list: the
    // call runs while the list is sent.
    let call = tokio::spawn(async move { PacketSendClient::new(channel).diff_copy(request).await });
    send_stats(stats, &to_client, &what).await?;
    let inbound = call
        .await
        .map_err(|e| Error::Protocol {
            what: what.clone(),
            message: e.to_string(),
        })?
        .map_err(|status| Error::Call {
            what: what.clone(),
            status,
        })?
        .into_inner();
    serve_requests(&paths, Box::pin(inbound), &to_client, &what).await
}

/// The sending side, first half: the list of entries (those not streamed already),
/// then the empty stat ending it.
pub(crate) async fn send_stats(
    stats: Vec<Stat>,
    to_receiver: &mpsc::Sender<Packet>,
    what: &str,
) -> Result<(), Error> {
    let gone = || Error::Protocol {
        what: what.to_owned(),
        message: "the other end stopped listening".to_owned(),
    };
    for stat in stats {
        let packet = Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(stat),
            ..Packet::default()
        };
        to_receiver.send(packet).await.map_err(|_| gone())?;
    }
    to_receiver
        .send(Packet {
            r#type: PacketType::PacketStat as i32,
            ..Packet::default()
        })
        .await
        .map_err(|_| gone())
}

/// The sending side, second half: each requested file's content, until `FIN`.
pub(crate) async fn serve_requests(
    paths: &[PathBuf],
    mut inbound: Inbound,
    to_receiver: &mpsc::Sender<Packet>,
    what: &str,
) -> Result<(), Error> {
    let what = what.to_owned();
    let protocol = |message: String| Error::Protocol {
        what: what.clone(),
        message,
    };
    let send = |packet: Packet| async {
        to_receiver
            .send(packet)
            .await
            .map_err(|_| protocol("the other end stopped listening".to_owned()))
    };
    while let Some(packet) = inbound.next().await {
        let packet = packet.map_err(|status| Error::Call {
            what: what.clone(),
            status,
        })?;
        match PacketType::try_from(packet.r#type) {
            Ok(PacketType::PacketReq) => {
                let path = paths
                    .get(packet.id as usize)
                    .ok_or_else(|| protocol(format!("file {} was asked for", packet.id)))?;
                let mut file = fs_err::File::open(path).map_err(|e| io_error(&what, path, e))?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = std::io::Read::read(&mut file, &mut buf)
                        .map_err(|e| io_error(&what, path, e))?;
                    if n == 0 {
                        break;
                    }
                    send(Packet {
                        r#type: PacketType::PacketData as i32,
                        id: packet.id,
                        data: buf[..n].to_vec(),
                        ..Packet::default()
                    })
                    .await?;
                }
                send(Packet {
                    r#type: PacketType::PacketData as i32,
                    id: packet.id,
                    ..Packet::default()
                })
                .await?;
            }
            Ok(PacketType::PacketFin) => {
                send(Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Packet::default()
                })
                .await?;
                return Ok(());
            }
            Ok(PacketType::PacketErr) => {
                return Err(Error::Remote {
                    what,
                    message: String::from_utf8_lossy(&packet.data).into_owned(),
                });
            }
            _ => {}
        }
    }
    Err(protocol(
        "the other end ended the transfer before it finished".to_owned(),
    ))
}

/// Streams a file to the client's output of exporter `exporter_id` (`tar`, `oci` and
/// `docker` archives), with the exporter's metadata as headers.
pub async fn send_file(
    channel: Channel,
    exporter_id: usize,
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<(), Error> {
    let what = "sending the result to the client".to_owned();
    let mut file = fs_err::File::open(path).map_err(|e| io_error(&what, path, e))?;
    let (to_client, outbound) = mpsc::channel::<BytesMessage>(8);
    let request = exporter_request(ReceiverStream::new(outbound), exporter_id, metadata);
    let call = tokio::spawn(async move { BytesSendClient::new(channel).diff_copy(request).await });
    // Chunks below gRPC's 4 MiB default message limit, as BuildKit's writer splits.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| io_error(&what, path, e))?;
        if n == 0 {
            break;
        }
        if to_client
            .send(BytesMessage {
                data: buf[..n].to_vec(),
            })
            .await
            .is_err()
        {
            break;
        }
    }
    drop(to_client);
    let response = call
        .await
        .map_err(|e| Error::Protocol {
            what: what.clone(),
            message: e.to_string(),
        })?
        .map_err(|status| Error::Call {
            what: what.clone(),
            status,
        })?;
    // The client closes its side once it has written everything.
    let mut inbound = response.into_inner();
    while let Some(message) = inbound.next().await {
        message.map_err(|status| Error::Call {
            what: what.clone(),
            status,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_never_leave_the_directory() {
        assert_eq!(safe_relative("a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative("./a"), Some(PathBuf::from("a")));
        assert_eq!(safe_relative("../a"), None);
        assert_eq!(safe_relative("a/../../b"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative(""), None);
    }

    #[test]
    fn header_values_are_escaped_as_go_does() {
        assert_eq!(query_escape("a b/é"), "a+b%2F%C3%A9");
    }
}
