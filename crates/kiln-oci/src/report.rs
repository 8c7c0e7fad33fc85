//! How kiln words an error for a user: its message, then each cause's, joined by `: `,
//! as anyhow's `{:#}` does. kiln's errors never repeat their source in their own
//! message, so every cause is printed once and nothing is dropped.

/// `error` and its causes on one line.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("pushing {name}")]
    struct Push {
        name: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn every_cause_once_in_order() {
        let error = Push {
            name: "r/img".to_owned(),
            source: std::io::Error::other("connection refused"),
        };
        assert_eq!(super::chain(&error), "pushing r/img: connection refused");
    }
}
