//! `--load`: a docker archive into the Docker daemon through its API (`POST
//! /images/load`) on the socket `DOCKER_HOST` names (default `/var/run/docker.sock`),
//! as buildx does, without needing the docker CLI.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The daemon's socket from `DOCKER_HOST`.
fn socket() -> anyhow::Result<PathBuf> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if host.is_empty() {
        return Ok(PathBuf::from("/var/run/docker.sock"));
    }
    match host.strip_prefix("unix://") {
        Some(path) => Ok(PathBuf::from(path)),
        None => bail!("DOCKER_HOST={host}: only unix:// sockets are supported for --load"),
    }
}

/// Reads a chunked HTTP body.
fn dechunk(mut reader: impl std::io::BufRead) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
            .with_context(|| format!("bad chunk size {line:?} from the Docker daemon"))?;
        if size == 0 {
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Loads the archive at `path`; returns the daemon's messages (`Loaded image: …`).
pub(crate) fn load(path: &Path) -> anyhow::Result<Vec<String>> {
    let socket = socket()?;
    let mut stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "--load: cannot reach the Docker daemon at {} (is dockerd running? DOCKER_HOST chooses another socket)",
            socket.display()
        )
    })?;
    let mut archive = fs_err::File::open(path)?;
    let size = archive.metadata()?.len();
    write!(
        stream,
        "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )?;
    std::io::copy(&mut archive, &mut stream).context("sending the image to the Docker daemon")?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("unexpected answer from the Docker daemon: {status:?}"))?;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(&mut reader)?
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    let text = String::from_utf8_lossy(&body);
    if code != 200 {
        bail!(
            "the Docker daemon refused the image ({code}): {}",
            text.trim()
        );
    }
    let mut messages = Vec::new();
    // The answer is a stream of JSON objects: `{"stream":"Loaded image: x\n"}` or an error.
    for value in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
        let value = value.context("reading the Docker daemon's answer")?;
        if let Some(error) = value["errorDetail"]["message"]
            .as_str()
            .or_else(|| value["error"].as_str())
        {
            bail!("the Docker daemon could not load the image: {error}");
        }
        if let Some(line) = value["stream"].as_str() {
            messages.push(line.trim().to_owned());
        }
    }
    Ok(messages)
}
