//! Trying a registry call again when what failed may pass: BuildKit retries 5xx
//! answers and cut connections with pauses of 1, 2 and 4 s; kiln starts sooner, also
//! retries 429, and waits what a `Retry-After` asks (up to a bound).

use std::time::Duration;

use crate::Error;

/// The pauses before each new try (five tries in all, 7.5 s of pauses).
const PAUSES: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// The longest `Retry-After` waited for: a registry asking for more gets its answer
/// reported rather than a build that seems to hang.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The pauses left for one operation.
pub(crate) struct Backoff {
    pauses: std::slice::Iter<'static, Duration>,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            pauses: PAUSES.iter(),
        }
    }

    /// After `error`: waits and returns true when another try is due, false when the
    /// error is final (not transient, or the tries are used up).
    pub(crate) fn wait(&mut self, error: &Error) -> bool {
        if !error.is_transient() {
            return false;
        }
        let Some(pause) = self.pauses.next() else {
            return false;
        };
        let pause = match error.retry_after() {
            Some(asked) if asked > MAX_RETRY_AFTER => return false,
            Some(asked) => asked,
            None => *pause,
        };
        std::thread::sleep(pause);
        true
    }
}

/// Runs `call` until it succeeds or fails for good (see [`Error::is_transient`]),
/// pausing between tries. For calls that send a stream (a blob upload), which the
/// client cannot replay itself: the caller reopens the stream in `call`.
pub fn retry_transient<T>(mut call: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut backoff = Backoff::new();
    loop {
        match call() {
            Err(error) if backoff.wait(&error) => continue,
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> Error {
        Error::Status {
            url: "http://127.0.0.1/v2/a/manifests/1".to_owned(),
            status,
            body: String::new(),
            retry_after,
        }
    }

    #[test]
    fn what_is_retried_and_for_how_long() {
        let mut backoff = Backoff::new();
        // Final at once: a 4xx, a wrong digest, a wait longer than the bound.
        assert!(!backoff.wait(&status(404, None)));
        assert!(!backoff.wait(&Error::DigestMismatch {
            what: "blob",
            expected: "sha256:a".to_owned(),
            actual: "sha256:b".to_owned(),
        }));
        assert!(!backoff.wait(&status(429, Some(31))));
        assert!(status(503, None).is_transient() && status(429, None).is_transient());
        // Five tries in all: the first fails, four more follow, then it gives up.
        let mut calls = 0;
        let started = std::time::Instant::now();
        let result: Result<(), Error> = retry_transient(|| {
            calls += 1;
            Err(status(503, Some(0)))
        });
        assert!(result.is_err());
        assert_eq!(calls, 5);
        // `Retry-After: 0` was honoured instead of the pauses.
        assert!(started.elapsed() < Duration::from_millis(400));
    }
}
