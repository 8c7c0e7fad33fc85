//! The exporters' side of the engine: a solved result's layers assembled into images
//! (one per platform, under an index for several) and sent to each output, with build
//! info and inline cache as asked.

use super::*;

/// When an image was made.
#[derive(Debug, Clone, Copy)]
struct Times {
    /// Its creation time (Unix seconds).
    created: i64,
    /// `SOURCE_DATE_EPOCH`, when the build has one.
    epoch: Option<i64>,
}

/// How the worker remembers a blob made of one of its layers.
pub(crate) fn layer_info(blob: &kiln_export::Blob) -> kiln_worker::LayerInfo {
    kiln_worker::LayerInfo {
        blob: blob.digest.clone(),
        media_type: blob.media_type.clone(),
        size: blob.size,
        diff_id: blob.diff_id.clone(),
        clamped_to: blob.clamped_to,
        tar_version: blob.tar_version,
        pulled: false,
        source: None,
        annotations: blob.annotations.clone(),
    }
}

/// The image config with `moby.buildkit.buildinfo.v1` (base64 JSON of the sources).
fn with_buildinfo(image: &serde_json::Value, sources: &[serde_json::Value]) -> serde_json::Value {
    use base64::Engine as _;
    let info = serde_json::json!({"frontend": "dockerfile.v0", "sources": sources});
    let mut image = image.clone();
    if let Some(object) = image.as_object_mut() {
        object.insert(
            "moby.buildkit.buildinfo.v1".to_owned(),
            base64::engine::general_purpose::STANDARD
                .encode(info.to_string())
                .into(),
        );
    }
    image
}

/// A path of a result made relative, never leaving its root (symlinks are not
/// followed out of it: only `..` and absolute parts are removed).
fn clean_inside(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

pub(crate) fn mtime_secs(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64,
    )
}

/// The directory of a platform's files in a multi-platform `local` or `tar` export:
/// `linux_arm_v7`, as BuildKit's `platform-split` names it.
fn platform_dir(platform: &Platform) -> String {
    platform.to_string().replace('/', "_")
}

/// The typed exporters of a request's exports.
fn parse_exports(exports: &[Export]) -> Result<Vec<Exporter>, Error> {
    exports
        .iter()
        .map(|export| Exporter::parse(&export.kind, &export.attrs).map_err(Error::from))
        .collect()
}

impl Engine {
    /// Refuses exporters that are unknown or have bad options, before any work.
    pub fn check_exports(exports: &[Export]) -> Result<(), Error> {
        parse_exports(exports).map(|_| ())
    }

    /// Exports a solved build to every output (then collects garbage).
    pub fn export(&self, solved: &Solved, exports: &[Export]) -> Result<BuildResult, Error> {
        let outputs = parse_exports(exports)?;
        let mut out = BuildResult::default();
        self.finish(&outputs, solved, &mut out)?;
        Ok(out)
    }

    /// A file of a solved result (`None` when it has none there); `range` limits
    /// what is read to `(offset, length)`.
    pub fn read_file(
        &self,
        solved: &Solved,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, Error> {
        use std::io::{Read as _, Seek as _};
        let Some(mount) = self.mount_result(&solved.results[0].chain)? else {
            return Ok(None);
        };
        let Some(relative) = clean_inside(path) else {
            return Ok(None);
        };
        let Ok(mut file) = fs::File::open(mount.path().join(relative)) else {
            return Ok(None);
        };
        let mut data = Vec::new();
        let read = match range {
            Some((offset, length)) => file
                .seek(std::io::SeekFrom::Start(offset))
                .and_then(|_| file.take(length).read_to_end(&mut data)),
            None => file.read_to_end(&mut data),
        };
        read.map_err(|e| Error::Usage(format!("reading {path} of the result: {e}")))?;
        Ok(Some(data))
    }

    /// A solved build's end: its result exported to every output, the worker's warnings
    /// passed on, and garbage collected.
    fn finish(
        &self,
        outputs: &[Exporter],
        solved: &Solved,
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        let registry = solved.registry.as_deref().unwrap_or(self.worker.registry());
        let epoch = solved.epoch;
        // Without an epoch an image is as old as its newest layer, so a cached rebuild
        // is identical.
        let times = |result: &PlatformResult| Times {
            created: epoch.unwrap_or_else(|| {
                result
                    .chain
                    .last()
                    .and_then(|id| mtime_secs(&self.worker.snapshots().layer_dir(*id)))
                    .unwrap_or(0)
            }),
            epoch,
        };
        for output in outputs {
            let wants_buildinfo = output.image_options().is_some_and(|o| o.buildinfo);
            // Each platform's image config: build info and inline cache as asked.
            let mut images = Vec::with_capacity(solved.results.len());
            for result in &solved.results {
                let image = if wants_buildinfo {
                    with_buildinfo(&result.image, &solved.sources)
                } else {
                    result.image.clone()
                };
                images.push(match output.image_options() {
                    Some(options) => self.with_inline_cache(solved, result, image, options, out)?,
                    None => image,
                });
            }
            if solved.multi_platform {
                self.export_platforms(output, &solved.results, &images, &times, registry, out)?;
            } else {
                let result = &solved.results[0];
                self.export_one(
                    output,
                    &result.chain,
                    &images[0],
                    times(result),
                    registry,
                    out,
                )?;
            }
        }
        self.export_caches(solved, &solved.cache_exports, out)?;
        out.warnings.extend(self.worker.take_warnings());
        if let Err(e) = self.collect_garbage() {
            out.warnings.push(format!("garbage collection: {e}"));
        }
        Ok(())
    }

    /// The result's layers, with the blobs already known for each. A layer is the
    /// difference from the layers it was made on (a merge may stack it on others), or,
    /// without that record (an older kiln's layer, or one whose parents are gone), from
    /// those below it here.
    pub(crate) fn layers(&self, chain: &[u64]) -> Vec<kiln_export::Layer> {
        let snapshots = self.worker.snapshots();
        chain
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let infos = self.worker.layer_blobs(*id);
                let parents = snapshots
                    .parents(*id)
                    .filter(|p| p.iter().all(|l| snapshots.layer_dir(*l).is_dir()))
                    .unwrap_or_else(|| chain[..i].to_vec());
                kiln_export::Layer {
                    dir: snapshots.layer_dir(*id),
                    lowers: parents
                        .iter()
                        .rev()
                        .map(|l| snapshots.layer_dir(*l))
                        .collect(),
                    pulled: infos.first().is_some_and(|info| info.pulled),
                    blobs: infos
                        .into_iter()
                        .map(|info| kiln_export::Blob {
                            digest: info.blob,
                            media_type: info.media_type,
                            size: info.size,
                            diff_id: info.diff_id,
                            clamped_to: info.clamped_to,
                            tar_version: info.tar_version,
                            source: info.source,
                            annotations: info.annotations,
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Assembles the image for an exporter and remembers the blobs it made.
    fn assemble(
        &self,
        chain: &[u64],
        image: &serde_json::Value,
        options: &kiln_export::ImageOptions,
        times: Times,
        out: &mut BuildResult,
    ) -> Result<kiln_export::Image, Error> {
        let epoch = options.source_date_epoch.or(times.epoch);
        let rewrite_epoch = epoch.filter(|_| options.rewrite_timestamp);
        if options.rewrite_timestamp && epoch.is_none() {
            out.warnings.push(
                "rewrite-timestamp has no effect without SOURCE_DATE_EPOCH (a build arg or source-date-epoch=)".to_owned(),
            );
        }
        let assembled = kiln_export::assemble(
            self.worker.content(),
            &self.layers(chain),
            image,
            options,
            &kiln_oci::rfc3339_utc(epoch.unwrap_or(times.created)),
            rewrite_epoch,
        )?;
        for (i, blob) in &assembled.made {
            self.worker.add_layer_blob(chain[*i], &layer_info(blob))?;
        }
        out.warnings.extend(options.notices.iter().cloned());
        if out.manifest_digest.is_none() {
            out.manifest_digest = Some(assembled.manifest.digest.clone());
            out.manifest = Some(assembled.manifest.clone());
            out.config_digest = Some(assembled.config.digest.clone());
            out.image_names = options.names.clone();
        }
        Ok(assembled)
    }

    /// Runs one exporter on a result.
    fn export_one(
        &self,
        output: &Exporter,
        chain: &[u64],
        image: &serde_json::Value,
        times: Times,
        registry: &RegistryClient,
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        // The local and tar exporters read the result through a read-only mount.
        let with_root = |export: &dyn Fn(Option<&Path>) -> Result<(), kiln_export::Error>| {
            let mount = self.mount_result(chain)?;
            export(mount.as_ref().map(kiln_store::MountGuard::path)).map_err(Error::from)
        };
        match output {
            Exporter::CacheOnly => Ok(()),
            Exporter::Local { dest } => {
                with_root(&|root| kiln_export::rootfs::export_local(root, dest))
            }
            Exporter::Tar { dest } => {
                with_root(&|root| kiln_export::rootfs::export_tar(root, dest))
            }
            Exporter::Oci(archive) | Exporter::Docker(archive) => {
                let assembled = self.assemble(chain, image, &archive.image, times, out)?;
                kiln_export::layout::write_layout(
                    self.worker.content(),
                    &assembled,
                    &archive.image,
                    &archive.dest,
                    archive.image.archive_mtime(times.created),
                )?;
                Ok(())
            }
            Exporter::Image(export) => {
                let assembled = self.assemble(chain, image, &export.image, times, out)?;
                if out.manifest.as_ref() == Some(&assembled.manifest) {
                    out.image_names = export.image_names(&assembled.manifest.digest);
                }
                if export.push {
                    out.pushed.extend(kiln_export::push::push(
                        registry,
                        self.worker.content(),
                        &assembled,
                        export,
                    )?);
                }
                Ok(())
            }
        }
    }

    /// A result's files, mounted read-only (`None` for an empty result).
    fn mount_result(&self, chain: &[u64]) -> Result<Option<kiln_store::MountGuard>, Error> {
        if chain.is_empty() {
            return Ok(None);
        }
        let snapshot = kiln_store::Snapshot {
            chain: chain.to_vec(),
        };
        let mount = self
            .worker
            .snapshots()
            .mount_readonly(&snapshot)
            .map_err(kiln_worker::Error::from)?;
        Ok(Some(mount))
    }

    /// Runs one exporter on a multi-platform result: one image per platform under an
    /// index, or one `os_arch[_variant]` directory per platform, as BuildKit's
    /// exporters write them.
    fn export_platforms(
        &self,
        output: &Exporter,
        results: &[PlatformResult],
        images: &[serde_json::Value],
        times: &dyn Fn(&PlatformResult) -> Times,
        registry: &RegistryClient,
        out: &mut BuildResult,
    ) -> Result<(), Error> {
        let assemble_all = |options: &kiln_export::ImageOptions,
                            out: &mut BuildResult|
         -> Result<kiln_export::MultiPlatformImage, Error> {
            let first_export = out.manifest_digest.is_none();
            let mut assembled = Vec::new();
            for (result, image) in results.iter().zip(images) {
                assembled.push(self.assemble(&result.chain, image, options, times(result), out)?);
            }
            let multi = kiln_export::assemble_index(self.worker.content(), assembled, options)?;
            // The build's digest is the index's, as BuildKit reports it.
            if first_export {
                out.manifest_digest = Some(multi.index.digest.clone());
                out.manifest = Some(multi.index.clone());
                out.config_digest = None;
            }
            Ok(multi)
        };
        match output {
            Exporter::CacheOnly => Ok(()),
            Exporter::Local { dest } => {
                for result in results {
                    let mount = self.mount_result(&result.chain)?;
                    kiln_export::rootfs::export_local(
                        mount.as_ref().map(kiln_store::MountGuard::path),
                        &dest.join(platform_dir(&result.platform)),
                    )?;
                }
                Ok(())
            }
            Exporter::Tar { dest } => {
                let mounts = results
                    .iter()
                    .map(|r| self.mount_result(&r.chain))
                    .collect::<Result<Vec<_>, Error>>()?;
                let dirs: Vec<String> = results.iter().map(|r| platform_dir(&r.platform)).collect();
                let trees: Vec<(&str, Option<&Path>)> = dirs
                    .iter()
                    .zip(&mounts)
                    .map(|(dir, mount)| {
                        (
                            dir.as_str(),
                            mount.as_ref().map(kiln_store::MountGuard::path),
                        )
                    })
                    .collect();
                kiln_export::rootfs::export_tar_split(&trees, dest)?;
                Ok(())
            }
            Exporter::Docker(_) => Err(Error::Usage(
                "docker exporter does not currently support exporting manifest lists".to_owned(),
            )),
            Exporter::Oci(archive) => {
                let multi = assemble_all(&archive.image, out)?;
                kiln_export::layout::write_index_layout(
                    self.worker.content(),
                    &multi,
                    &archive.image,
                    &archive.dest,
                    archive.image.archive_mtime(times(&results[0]).created),
                )?;
                Ok(())
            }
            Exporter::Image(export) => {
                let multi = assemble_all(&export.image, out)?;
                if out.manifest.as_ref() == Some(&multi.index) {
                    out.image_names = export.image_names(&multi.index.digest);
                }
                if export.push {
                    out.pushed.extend(kiln_export::push::push_index(
                        registry,
                        self.worker.content(),
                        &multi,
                        export,
                    )?);
                }
                Ok(())
            }
        }
    }
}
