//! `--cache-from`/`--cache-to` wired between the worker and kiln-remotecache: imports
//! start reading before the solve and answer the worker's lookups; after the outputs,
//! the solve's records go to each export with their layers' blobs (the blobs the image
//! export made are reused; missing ones are made in the export's compression).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use kiln_api::build::{BuildResult, CacheOptionsEntry};
use kiln_oci::Descriptor;
use kiln_registry::RegistryClient;
use kiln_remotecache::format::{ANNOTATION_CREATED_AT, ANNOTATION_UNCOMPRESSED};
use kiln_remotecache::{
    CacheMode, ExportOptions, ExportRecord, ExportResult, ExportTarget, ImportOptions, Importer,
};
use kiln_worker::{BoxError, CacheImport, ImportedResult, SolvedRecord};

use crate::{Engine, Error, PlatformResult, Solved, mtime_secs};

/// An importer as the worker's import port.
struct Import(Arc<Importer>);

impl CacheImport for Import {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn lookup(&self, key: &str) -> Result<Option<ImportedResult>, BoxError> {
        Ok(self.0.lookup(key)?.map(|found| ImportedResult {
            layers: found.image_layers(),
            created: found.created,
        }))
    }

    fn content_links(&self, key: &str) -> Result<Option<Vec<Option<String>>>, BoxError> {
        Ok(self.0.content_links(key)?)
    }

    fn fetch(&self, layer: &Descriptor, out: &mut dyn Write) -> Result<(), BoxError> {
        Ok(self.0.fetch(layer, out)?)
    }
}

fn options_error(flag: &str, error: kiln_remotecache::Error) -> Error {
    Error::Usage(format!("{flag}: {error}"))
}

/// The `--cache-from`s, checked, each being read in the background from now on.
pub(crate) fn start_imports(
    entries: &[CacheOptionsEntry],
    registry: &Arc<RegistryClient>,
    client_dirs: Option<&dyn kiln_remotecache::ClientDirs>,
) -> Result<Vec<Arc<Importer>>, Error> {
    entries
        .iter()
        .map(|entry| {
            let options = ImportOptions::parse(&entry.kind, &entry.attrs)
                .map_err(|e| options_error("--cache-from", e))?;
            let backend = options
                .source
                .open(registry, client_dirs)
                .map_err(|e| options_error("--cache-from", e))?;
            Ok(Arc::new(Importer::start(&options.name, backend)))
        })
        .collect()
}

/// The imports as the worker's import ports.
pub(crate) fn import_ports(imports: &[Arc<Importer>]) -> Vec<Arc<dyn CacheImport>> {
    imports
        .iter()
        .map(|import| Arc::new(Import(Arc::clone(import))) as Arc<dyn CacheImport>)
        .collect()
}

/// The `--cache-to`s, checked before any work.
pub(crate) fn parse_exports(entries: &[CacheOptionsEntry]) -> Result<Vec<ExportOptions>, Error> {
    entries
        .iter()
        .map(|entry| {
            ExportOptions::parse(&entry.kind, &entry.attrs)
                .map_err(|e| options_error("--cache-to", e))
        })
        .collect()
}

/// The result an import holds for `key`, as the import lists its layers.
fn imported_result(solved: &Solved, key: &str) -> Option<ExportResult> {
    solved.imports.iter().find_map(|import| {
        let found = import.lookup(key).ok().flatten()?;
        Some(ExportResult {
            layers: found.layers,
            created_at: kiln_oci::rfc3339_utc(found.created.unwrap_or(0)),
        })
    })
}

/// How an export writes layer blobs that are not made yet.
fn layer_format(options: &ExportOptions) -> kiln_export::layer::LayerFormat {
    kiln_export::layer::LayerFormat {
        compression: options.layers.compression,
        level: options.layers.compression_level,
        oci: options.layers.oci_mediatypes,
        clamp: None,
    }
}

impl Engine {
    /// Exports the solve's records to every `--cache-to` but inline; a failure fails
    /// the build unless the export says `ignore-error=true`, then it is a warning.
    pub(crate) fn export_caches(
        &self,
        solved: &Solved,
        exports: &[ExportOptions],
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        let registry = solved
            .registry
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.registry));
        for options in exports {
            let exported = match options
                .target
                .open(&registry, solved.client_dirs.as_deref())
            {
                // type=inline: the image carries it.
                Ok(None) => continue,
                Ok(Some(backend)) => self.export_records(solved, options).and_then(|records| {
                    let imports: Vec<&Importer> = solved.imports.iter().map(Arc::as_ref).collect();
                    kiln_remotecache::export(
                        backend.as_ref(),
                        self.worker.content(),
                        &imports,
                        &records,
                        options,
                    )
                    .map_err(Error::from)
                }),
                Err(error) => Err(Error::from(error)),
            };
            match exported {
                // As BuildKit's solve answers `cache.manifest`: the last one written.
                Ok(summary) => {
                    if summary.manifest.is_some() {
                        out.cache_manifest = summary.manifest;
                    }
                }
                Err(error) if options.ignore_error => out.warnings.push(format!(
                    "exporting cache to {} failed (ignore-error=true, the build goes on): {error}",
                    options.target.display_name()
                )),
                Err(error) => {
                    return Err(Error::Usage(format!(
                        "exporting cache to {} failed: {error} (add ignore-error=true to --cache-to to build anyway)",
                        options.target.display_name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// `image` with the solve's records inline (`--cache-to type=inline`) when asked:
    /// the results made of the image's own layers, blobs chosen as the image exporter
    /// with `options` chooses them (so a `rewrite-timestamp` image has none).
    pub(crate) fn with_inline_cache(
        &self,
        solved: &Solved,
        result: &PlatformResult,
        mut image: serde_json::Value,
        options: &kiln_export::ImageOptions,
        out: &mut BuildResult,
    ) -> Result<serde_json::Value, Error> {
        let Some(inline) = solved
            .cache_exports
            .iter()
            .find(|e| e.target == ExportTarget::Inline)
        else {
            return Ok(image);
        };
        let export = ExportOptions {
            mode: CacheMode::Max,
            layers: kiln_remotecache::LayerOptions {
                compression: options.compression,
                compression_level: options.compression_level,
                force_compression: options.force_compression,
                oci_mediatypes: options.oci_mediatypes,
            },
            ..inline.clone()
        };
        let value = self.export_records(solved, &export).and_then(|records| {
            let format = layer_format(&export);
            let image_layers = self
                .export_result(&result.chain, &format, &export, &mut HashMap::new())?
                .layers;
            kiln_remotecache::inline::inline_cache(&records, &image_layers).map_err(Error::from)
        });
        match value {
            Ok(Some(value)) => {
                if let Some(config) = image.as_object_mut() {
                    config.insert(
                        kiln_remotecache::inline::INLINE_CACHE_KEY.to_owned(),
                        value.into(),
                    );
                }
            }
            Ok(None) => {}
            Err(error) if inline.ignore_error => out.warnings.push(format!(
                "exporting cache to type=inline failed (ignore-error=true, the build goes on): {error}"
            )),
            Err(error) => {
                return Err(Error::Usage(format!(
                    "exporting cache to type=inline failed: {error}"
                )));
            }
        }
        Ok(image)
    }

    /// The solve's records for one export: every result's layers with `mode=max`, only
    /// the build result's with `mode=min`; each layer as a blob in the export's format.
    pub(crate) fn export_records(
        &self,
        solved: &Solved,
        options: &ExportOptions,
    ) -> Result<Vec<ExportRecord>, Error> {
        let format = layer_format(options);
        let mut blobs: HashMap<u64, Descriptor> = HashMap::new();
        let mut out = Vec::with_capacity(solved.records.len());
        for record in &solved.records {
            let SolvedRecord {
                key,
                digest,
                inputs,
                chain,
            } = record;
            let wanted = options.mode == CacheMode::Max
                || solved.results.iter().any(|r| r.key.as_ref() == Some(key));
            let result = match chain.as_ref().filter(|_| wanted) {
                Some(chain) => Some(self.export_result(chain, &format, options, &mut blobs)?),
                // A step skipped thanks to an import keeps the import's result.
                None if wanted => imported_result(solved, key),
                None => None,
            };
            out.push(ExportRecord {
                key: key.clone(),
                digest: digest.clone(),
                inputs: inputs.clone(),
                result,
            });
        }
        Ok(out)
    }

    /// A chain's layers as blob descriptors (made when missing, and remembered for the
    /// layer), annotated as BuildKit annotates cache layers.
    fn export_result(
        &self,
        chain: &[u64],
        format: &kiln_export::layer::LayerFormat,
        options: &ExportOptions,
        blobs: &mut HashMap<u64, Descriptor>,
    ) -> Result<ExportResult, Error> {
        let snapshots = self.worker.snapshots();
        let created = |id: u64| mtime_secs(&snapshots.layer_dir(id)).unwrap_or(0);
        let mut layers = Vec::with_capacity(chain.len());
        let known_layers = self.layers(chain);
        for (id, layer) in chain.iter().zip(&known_layers) {
            if let Some(known) = blobs.get(id) {
                layers.push(known.clone());
                continue;
            }
            let (blob, made) = kiln_export::choose_blob(
                self.worker.content(),
                layer,
                format,
                options.layers.force_compression,
            )?;
            if made {
                self.worker.add_layer_blob(*id, &crate::layer_info(&blob))?;
            }
            let mut annotations = blob.annotations.clone();
            annotations.insert(ANNOTATION_UNCOMPRESSED.to_owned(), blob.diff_id.clone());
            annotations.insert(
                ANNOTATION_CREATED_AT.to_owned(),
                kiln_oci::rfc3339_utc(created(*id)),
            );
            let descriptor = Descriptor {
                media_type: blob.media_type.clone(),
                digest: blob.digest.clone(),
                size: blob.size,
                annotations,
                ..Descriptor::default()
            };
            blobs.insert(*id, descriptor.clone());
            layers.push(descriptor);
        }
        Ok(ExportResult {
            layers,
            created_at: kiln_oci::rfc3339_utc(chain.last().map_or(0, |id| created(*id))),
        })
    }
}
