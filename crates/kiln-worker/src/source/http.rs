//! `https://…` and `http://…` sources: a file downloaded into a snapshot of its own
//! (`ADD https://…`), keyed by its content's digest (or the `--checksum` given).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use fs_err as fs;
use kiln_llb::pb;
use sha2::{Digest as _, Sha256};

use super::attr;
use crate::{Error, Ref, Secrets, Worker, sha256_hex};
/// How an http source asks for its file: the request headers it may set (BuildKit
/// sends only `Accept` and `User-Agent` of the `http.header.*` attributes, by their
/// canonical names, sorted) and the secret whose value is the `Authorization` header.
struct Request {
    url: String,
    headers: Vec<(String, String)>,
    auth_secret: Option<String>,
}

impl Request {
    fn of(source: &pb::SourceOp) -> Self {
        let mut headers: Vec<(String, String)> = source
            .attrs
            .iter()
            .filter_map(|(key, value)| {
                let name = canonical_header_key(key.strip_prefix("http.header.")?);
                ["Accept", "User-Agent"]
                    .contains(&name.as_str())
                    .then(|| (name, value.clone()))
            })
            .collect();
        headers.sort();
        Self {
            url: source.identifier.clone(),
            headers,
            auth_secret: attr(source, "http.authheadersecret")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }
    }

    /// The `Authorization` header's value, from the build's secrets.
    fn authorization(&self, secrets: &dyn Secrets) -> Result<Option<Vec<u8>>, Error> {
        let Some(id) = &self.auth_secret else {
            return Ok(None);
        };
        secrets.secret(id).map(Some).ok_or_else(|| {
            Error::Source(format!(
                "{}: the authorization header's secret {id} was not given (--secret id={id},…)",
                self.url
            ))
        })
    }

    /// Where the download is kept between computing the key and making the snapshot:
    /// one file per URL and headers.
    fn download_path(&self, worker: &Worker) -> PathBuf {
        let mut parts: Vec<&[u8]> = vec![self.url.as_bytes()];
        for (name, value) in &self.headers {
            parts.extend([name.as_bytes(), value.as_bytes()]);
        }
        worker
            .config
            .root
            .join("downloads")
            .join(sha256_hex(&parts))
    }

    /// The headers and secret as BuildKit's key names them (`AuthHeaderSecret`,
    /// `Header`), each left out when empty.
    fn key_fields(&self, json: crate::go_json::Object) -> crate::go_json::Object {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| {
                crate::go_json::Object::new()
                    .string("Name", name)
                    .string("Value", value)
                    .finish()
            })
            .collect();
        json.some_string(
            "AuthHeaderSecret",
            self.auth_secret.as_deref().unwrap_or(""),
        )
        .some(
            "Header",
            (!headers.is_empty()).then(|| crate::go_json::array(&headers)),
        )
    }
}

/// Go's `http.CanonicalHeaderKey`: each word's first letter upper case, the rest lower
/// (a key with a character outside a token is kept as it is).
fn canonical_header_key(key: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !key.bytes().all(token) {
        return key.to_owned();
    }
    let mut upper = true;
    key.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Downloads the source's file (to a temp file, renamed when complete and verified)
/// and returns its content digest.
fn download(
    worker: &Worker,
    request: &Request,
    secrets: &dyn Secrets,
    expected: Option<&str>,
) -> Result<String, Error> {
    let url = &request.url;
    let target = request.download_path(worker);
    fs::create_dir_all(target.parent().unwrap_or(Path::new("/")))?;
    let failed = |message: String| Error::Source(format!("downloading {url}: {message}"));
    let mut call = ureq::get(url);
    for (name, value) in &request.headers {
        call = call.header(name, value);
    }
    if let Some(authorization) = request.authorization(secrets)? {
        call = call.header("Authorization", authorization.as_slice());
    }
    let mut response = call.call().map_err(|e| failed(e.to_string()))?;
    let modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let temp = target.with_extension("part");
    let mut file = fs::File::create(&temp)?;
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut file, &buf[..n])?;
    }
    drop(file);
    let digest = format!("sha256:{}", kiln_store::sha256_hex(hasher));
    if let Some(expected) = expected.filter(|e| *e != digest) {
        let _ = fs::remove_file(&temp);
        return Err(failed(format!("digest mismatch {expected}: {digest}")));
    }
    fs::rename(&temp, &target)?;
    // The file keeps the server's Last-Modified time, as BuildKit's does.
    let stamp = target.with_extension("modified");
    match modified {
        Some(value) => fs::write(stamp, value)?,
        None => {
            let _ = fs::remove_file(stamp);
        }
    }
    Ok(digest)
}

/// The cache key of an http source, as BuildKit's `formatCacheKey` makes it: the file's
/// name, mode and owner, its checksum (given, or of the download), for a download the
/// server's Last-Modified, and the request's authorization secret and headers.
pub(crate) fn http_key(
    worker: &Worker,
    source: &pb::SourceOp,
    secrets: &dyn Secrets,
) -> Result<String, Error> {
    let request = Request::of(source);
    let (checksum, modified) = match attr(source, "http.checksum") {
        // Known beforehand: no download unless the step runs.
        Some(checksum) => (checksum.to_owned(), String::new()),
        None => {
            let digest = download(worker, &request, secrets, None)?;
            let stamp = request.download_path(worker).with_extension("modified");
            let modified = fs::read_to_string(stamp).unwrap_or_default();
            (digest, modified.trim().to_owned())
        }
    };
    let id = |key| {
        attr(source, key)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let json = crate::go_json::Object::new()
        .string("Filename", &file_name(source))
        .raw("Perm", &perm(source).unwrap_or(0).to_string())
        .raw("UID", &id("http.uid").to_string())
        .raw("GID", &id("http.gid").to_string())
        .string("Checksum", &checksum)
        .some_string("LastModTime", &modified);
    let json = request.key_fields(json).finish();
    Ok(kiln_solver::cache_key::digest_of(json.as_bytes()))
}

/// The downloaded file's name: the one given, else the URL's last path segment, else
/// `download` (BuildKit's `getFileName`).
fn file_name(source: &pb::SourceOp) -> String {
    let url = &source.identifier;
    let from_url = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .unwrap_or("download");
    attr(source, "http.filename")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .unwrap_or(from_url)
        .to_owned()
}

/// The mode asked for the file (`http.perm`, octal as LLB writes it).
fn perm(source: &pb::SourceOp) -> Option<u32> {
    attr(source, "http.perm").and_then(|p| u32::from_str_radix(p, 8).ok())
}

/// Go's `http.ParseTime` for the usual Last-Modified format
/// (`Mon, 02 Jan 2006 15:04:05 GMT`), as Unix seconds.
fn http_time(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, _] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let days = kiln_oci::days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Puts the downloaded file into a new snapshot as `/<filename>`.
pub(crate) fn http_load(
    worker: &Worker,
    source: &pb::SourceOp,
    secrets: &dyn Secrets,
) -> Result<Ref, Error> {
    let url = &source.identifier;
    let request = Request::of(source);
    let path = request.download_path(worker);
    if !path.is_file() {
        download(worker, &request, secrets, attr(source, "http.checksum"))?;
    } else if let Some(expected) = attr(source, "http.checksum") {
        // A download left by an earlier key computation is checked like a new one.
        let actual = format!(
            "sha256:{}",
            kiln_store::sha256_hex(Sha256::new_with_prefix(fs::read(&path)?))
        );
        if actual != expected {
            return Err(Error::Source(format!(
                "downloading {url}: digest mismatch {expected}: {actual}"
            )));
        }
    }
    let name = file_name(source);
    let (snapshot, ()) = crate::new_layer(worker, None, |snapshot| {
        let dest = worker.snapshots.layer_dir(snapshot.id()).join(&name);
        fs::copy(&path, &dest)?;
        let perm = perm(source).unwrap_or(0o600);
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(perm))?;
        let id = |key| attr(source, key).and_then(|v| v.parse().ok()).unwrap_or(0);
        std::os::unix::fs::lchown(&dest, Some(id("http.uid")), Some(id("http.gid")))?;
        let modified = fs::read_to_string(path.with_extension("modified"))
            .ok()
            .and_then(|v| http_time(v.trim()));
        if let Some(seconds) = modified {
            crate::fsutil::set_times(&dest, seconds, 0)?;
        }
        Ok(())
    })?;
    Ok(Ref::unkeyed(snapshot.chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keys_are_gos_canonical_ones() {
        assert_eq!(canonical_header_key("user-agent"), "User-Agent");
        assert_eq!(canonical_header_key("ACCEPT"), "Accept");
        assert_eq!(canonical_header_key("x y"), "x y");
    }

    #[test]
    fn only_accept_and_user_agent_are_sent_and_keyed_sorted() {
        let source = pb::SourceOp {
            identifier: "https://example.com/f".to_owned(),
            attrs: [
                ("http.header.user-agent", "kiln"),
                ("http.header.accept", "text/plain"),
                ("http.header.x-other", "dropped"),
                ("http.authheadersecret", "TOKEN"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        let request = Request::of(&source);
        assert_eq!(
            request.headers,
            [
                ("Accept".to_owned(), "text/plain".to_owned()),
                ("User-Agent".to_owned(), "kiln".to_owned())
            ]
        );
        assert_eq!(
            request.key_fields(crate::go_json::Object::new()).finish(),
            r#"{"AuthHeaderSecret":"TOKEN","Header":[{"Name":"Accept","Value":"text/plain"},{"Name":"User-Agent","Value":"kiln"}]}"#
        );
    }

    #[test]
    fn last_modified_times() {
        assert_eq!(
            http_time("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(http_time("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_time("yesterday"), None);
    }
}
