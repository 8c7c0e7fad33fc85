//! An HTTP server on 127.0.0.1 that counts the requests it answers, in all and by
//! path: a RUN step calling it (steps use the host's network) says exactly how many
//! times that step executed.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The server; its thread ends with the test process.
pub struct Probe {
    /// Its port.
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Probe {
    /// Starts one on a free port.
    pub fn start() -> Probe {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the probe");
        let port = listener.local_addr().expect("its address").port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                let path = String::from_utf8_lossy(&request[..n])
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                *counter
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(path)
                    .or_insert(0) += 1;
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nran");
            }
        });
        Probe { port, hits }
    }

    /// Requests answered, in all.
    pub fn hits(&self) -> usize {
        self.lock().values().sum()
    }

    /// Requests answered for `path` (e.g. `/shared-3`).
    pub fn hits_of(&self, path: &str) -> usize {
        self.lock().get(path).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.hits.lock().unwrap_or_else(|e| e.into_inner())
    }
}
