//! The embedded driver: the engine runs in this process (no daemon). This is the one
//! place the CLI names `kiln_engine` (a test checks it).

use std::path::PathBuf;
use std::sync::OnceLock;

use kiln_api::Builder;
use kiln_engine::{Engine, EngineConfig};

/// The configuration file `--config` named, if any.
static CONFIG_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Makes the engine read `path` rather than the default configuration file.
pub(crate) fn use_config_file(path: PathBuf) {
    let _ = CONFIG_FILE.set(path);
}

/// The state directory the engine keeps its cache in (what `kiln ls` shows as the
/// embedded builder's endpoint).
pub(crate) fn state_dir() -> anyhow::Result<PathBuf> {
    Ok(EngineConfig::load(CONFIG_FILE.get().map(PathBuf::as_path))?.root)
}

/// Opens the engine with its configuration; what the file had that kiln does not use
/// is shown as warnings.
pub(crate) fn open() -> anyhow::Result<Box<dyn Builder>> {
    let config = EngineConfig::load(CONFIG_FILE.get().map(PathBuf::as_path))?;
    for notice in &config.notices {
        eprintln!("WARNING: {notice}");
    }
    let root = config.root.display().to_string();
    let on_wait = |dir: &std::path::Path| {
        eprintln!(
            "waiting for another kiln process to finish with {} ...",
            dir.display()
        );
    };
    let engine = Engine::open(config, &on_wait)
        .map_err(|e| anyhow::anyhow!("opening the kiln state in {root}: {e}"))?;
    // Ctrl-C (or SIGTERM) cancels the build: running steps are killed and everything
    // is released; a second one exits at once.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let cancel = engine.cancellation();
        signal_hook::flag::register_conditional_shutdown(signal, 130, cancel.clone())?;
        signal_hook::flag::register(signal, cancel)?;
    }
    Ok(Box::new(engine))
}
