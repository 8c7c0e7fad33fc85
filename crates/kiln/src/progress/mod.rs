//! Progress displays (`--progress`): BuildKit's `plain` lines, the live `tty` view,
//! `rawjson` status records, `quiet`; and build-check reports.

pub(crate) mod checks;
pub(crate) mod plain;
pub(crate) mod rawjson;
pub(crate) mod tty;

use std::io::IsTerminal as _;

use anyhow::bail;
use kiln_api::build::Event;

/// The display a build reports to.
pub(crate) enum Progress {
    Plain(plain::Plain),
    Tty(tty::Tty),
    RawJson(rawjson::RawJson),
    Quiet,
}

impl Progress {
    /// The display for `--progress MODE` (`auto`: the live view on a terminal, plain
    /// lines otherwise); `quiet` wins.
    pub(crate) fn open(mode: &str, quiet: bool) -> anyhow::Result<Self> {
        Ok(match mode {
            _ if quiet => Self::Quiet,
            "quiet" => Self::Quiet,
            "plain" => Self::Plain(plain::Plain::default()),
            "rawjson" => Self::RawJson(rawjson::RawJson::default()),
            "tty" => Self::Tty(tty::Tty::start()),
            "auto" if std::io::stderr().is_terminal() => Self::Tty(tty::Tty::start()),
            "auto" => Self::Plain(plain::Plain::default()),
            other => bail!("--progress {other:?}: must be one of auto, plain, tty, quiet, rawjson"),
        })
    }

    pub(crate) fn event(&self, event: Event) {
        match self {
            Self::Plain(p) => p.event(event),
            Self::Tty(t) => t.event(event),
            Self::RawJson(r) => r.event(event),
            Self::Quiet => {}
        }
    }

    /// The end of a build: the live view draws its last frame.
    pub(crate) fn finish(&self) {
        if let Self::Tty(t) = self {
            t.finish();
        }
    }
}
