//! Which files a bake reads: `-f` files, `BUILDX_BAKE_FILE`, or the default lookup.

use std::path::Path;

use fs_err as fs;

use crate::{Error, Request};

/// A definition file's name and content.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
    /// The directory the file is in (Compose resolves relative paths against it).
    pub(crate) dir: std::path::PathBuf,
}

/// buildx's default lookup, in its order.
const DEFAULT_FILES: [&str; 12] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
    "docker-bake.json",
    "docker-bake.hcl",
    "docker-bake.override.json",
    "docker-bake.override.hcl",
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

pub(crate) fn load(request: &Request) -> Result<Vec<Source>, Error> {
    let mut names: Vec<String> = request.files.clone();
    if names.is_empty() {
        if let Some(list) = request
            .env
            .get("BUILDX_BAKE_FILE")
            .filter(|v| !v.is_empty())
        {
            names = list
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        } else {
            names = DEFAULT_FILES
                .iter()
                .filter(|f| request.dir.join(f).is_file())
                .map(|f| (*f).to_owned())
                .collect();
            if names.is_empty() {
                return Err(Error::NoDefinition);
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let path = if Path::new(&name).is_absolute() {
                name.clone().into()
            } else {
                request.dir.join(&name)
            };
            let text = fs::read_to_string(&path).map_err(|source| Error::Read {
                name: name.clone(),
                source,
            })?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok(Source { name, text, dir })
        })
        .collect()
}
