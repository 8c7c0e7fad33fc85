//! A fault-injecting HTTP proxy in front of a registry: it forwards each request to the
//! registry and, for the requests a rule matches, answers with a fault instead (a reset
//! connection, a truncated or corrupted body, an error status, a slow body). One request
//! per connection (`Connection: close`), so every fault hits exactly one request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to a matched request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Closes the connection with a TCP reset before any answer.
    Reset,
    /// The registry's status and headers, then half of its body, then a closed
    /// connection.
    Truncate,
    /// The registry's answer with one body byte changed (same length).
    Corrupt,
    /// This status instead of forwarding the request (the registry never sees it),
    /// with `Retry-After: SECONDS` when given.
    Status {
        /// The HTTP status, e.g. 429 or 503.
        status: u16,
        /// The `Retry-After` header's seconds.
        retry_after: Option<u32>,
    },
    /// The registry's answer, its body sent `bytes` at a time with a pause between.
    Slow {
        /// Bytes per write.
        bytes: usize,
        /// The pause after each write.
        pause: Duration,
    },
}

/// Which requests a fault hits, and how many more times.
struct Rule {
    method: String,
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Every request seen, as `METHOD PATH [RANGE]`.
    requests: Vec<String>,
    /// The faults injected, as `FAULT METHOD PATH`.
    injected: Vec<String>,
}

/// The proxy, on `127.0.0.1`; its threads end with the test process.
pub struct FaultProxy {
    /// Its port.
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Starts a proxy to the registry on `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, &state);
                });
            }
        });
        FaultProxy { port, state }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Answers the next `times` requests of `method` whose path contains
    /// `path_contains` with `fault`. Rules are tried in the order added.
    pub fn inject(&self, method: &str, path_contains: &str, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            fault,
            remaining: times,
        });
    }

    /// Removes every rule not used up yet.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Every request seen so far, as `METHOD PATH`, then the `Range` header when the
    /// request has one.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// The faults injected so far, as `FAULT METHOD PATH`.
    pub fn injected(&self) -> Vec<String> {
        self.lock().injected.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request or response head: the first line and the headers, in order.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn read(reader: &mut impl BufRead) -> std::io::Result<Option<Head>> {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Ok(Some(Head {
            line: line.trim_end().to_owned(),
            headers,
        }))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head as bytes, its `Connection` header replaced by `close`, without the
    /// headers named in `drop`, with the `extra` ones.
    fn bytes(&self, drop: &[&str], extra: &[(&str, String)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.line);
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("connection")
                || drop.iter().any(|d| name.eq_ignore_ascii_case(d))
            {
                continue;
            }
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        for (name, value) in extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// A request's body: by `Content-Length`, or chunked.
fn read_body(reader: &mut impl BufRead, head: &Head) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = head.get("content-length") {
        let length: usize = length.parse().map_err(std::io::Error::other)?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(body)
}

/// Serves one request of a client connection.
fn serve(client: TcpStream, upstream: u16, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    // A TLS handshake (a client trying HTTPS first) gets what Go's HTTP server answers.
    if reader.fill_buf()?.first() == Some(&0x16) {
        let mut client = client;
        client.write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )?;
        return client.shutdown(Shutdown::Both);
    }
    let Some(request) = Head::read(&mut reader)? else {
        return Ok(());
    };
    let body = read_body(&mut reader, &request)?;
    let mut parts = request.line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let fault = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(match request.get("range") {
            Some(range) => format!("{method} {path} {range}"),
            None => format!("{method} {path}"),
        });
        let rule = state
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.contains(&r.path_contains));
        let fault = rule.map(|rule| {
            rule.remaining -= 1;
            rule.fault.clone()
        });
        if let Some(fault) = &fault {
            state.injected.push(format!("{fault:?} {method} {path}"));
        }
        fault
    };
    let mut client = client;
    match fault {
        Some(Fault::Reset) => {
            return reset(&client);
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let code = if status == 429 {
                "TOOMANYREQUESTS"
            } else {
                "UNAVAILABLE"
            };
            let message = format!(
                "{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"injected by the test's proxy\"}}]}}"
            );
            let mut head = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                message.len()
            );
            if let Some(seconds) = retry_after {
                head.push_str(&format!("Retry-After: {seconds}\r\n"));
            }
            head.push_str("\r\n");
            client.write_all(head.as_bytes())?;
            client.write_all(message.as_bytes())?;
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    // Forwarded with its body whole (chunked bodies re-sent with their length); the
    // Host header is kept, so the registry's Location URLs point at the proxy.
    let mut to_registry = TcpStream::connect(("127.0.0.1", upstream))?;
    let bodiless = body.is_empty() && matches!(method.as_str(), "GET" | "HEAD" | "DELETE");
    let length = if bodiless {
        Vec::new()
    } else {
        vec![("Content-Length", body.len().to_string())]
    };
    let forwarded = request.bytes(&["transfer-encoding", "content-length"], &length);
    to_registry.write_all(&forwarded)?;
    to_registry.write_all(&body)?;
    let mut answer = BufReader::new(to_registry);
    let Some(response) = Head::read(&mut answer)? else {
        return Ok(());
    };
    let mut response_body = Vec::new();
    if method != "HEAD" {
        answer.read_to_end(&mut response_body)?;
    }
    client.write_all(&response.bytes(&[], &[]))?;
    match fault {
        Some(Fault::Truncate) => {
            // The end of the stream comes before the length the headers announced.
            client.write_all(&response_body[..response_body.len() / 2])?;
            client.flush()?;
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::Corrupt) => {
            if let Some(byte) = response_body.get_mut(0) {
                *byte ^= 0xff;
            }
            client.write_all(&response_body)?;
        }
        Some(Fault::Slow { bytes, pause }) => {
            for chunk in response_body.chunks(bytes.max(1)) {
                client.write_all(chunk)?;
                client.flush()?;
                std::thread::sleep(pause);
            }
        }
        _ => client.write_all(&response_body)?,
    }
    client.flush()?;
    client.shutdown(Shutdown::Both)
}

/// Closes a connection with a TCP reset (`SO_LINGER` 0), not a FIN: the client sees a
/// cut connection, whatever it has read so far.
fn reset(client: &TcpStream) -> std::io::Result<()> {
    rustix::net::sockopt::set_socket_linger(client, Some(Duration::ZERO))?;
    Ok(())
}
