//! The Dockerfile frontend's side of the engine: converting a Dockerfile for a request
//! (named contexts, platforms, checks), its lint and targets, and a failed step shown
//! with the Dockerfile lines it came from, as BuildKit shows them.

use super::*;

/// A Dockerfile's lint: what BuildKit's `frontend.lint` subrequest reports.
#[derive(Debug, Clone)]
struct LintReport {
    /// The build checks that fired.
    checks: Vec<CheckWarning>,
    /// What stopped the conversion (a parse error, a `check=error=true` violation),
    /// with its lines when known.
    error: Option<kiln_dockerfile::Error>,
}

/// Every stage of a Dockerfile, in order (BuildKit's `frontend.targets` list).
fn dockerfile_targets(source: &[u8]) -> Result<Vec<subrequests::Target>, kiln_dockerfile::Error> {
    let parsed = kiln_dockerfile::parser::parse(source)?;
    let stages = kiln_dockerfile::instructions::parse(&parsed)?.stages;
    let last = stages.len().saturating_sub(1);
    Ok(stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| subrequests::Target {
            name: stage.from.name.unwrap_or_default(),
            default: i == last,
            description: stage.from.comment,
            base: stage.from.base_name,
            platform: stage.from.platform.unwrap_or_default(),
            location: subrequests::Location::first_source(api_range(stage.location)),
        })
        .collect())
}

/// The outline of a conversion's target, in the subrequest's terms.
fn outline_answer(outline: convert::Outline, source: &[u8]) -> subrequests::Outline {
    let mount = |m: convert::OutlineMount| subrequests::OutlineMount {
        name: m.name,
        required: m.required,
        location: subrequests::Location::first_source(api_range(m.location)),
    };
    subrequests::Outline {
        name: outline.name,
        description: outline.description,
        args: outline
            .args
            .into_iter()
            .map(|a| subrequests::OutlineArg {
                name: a.name,
                description: a.description,
                value: a.value,
                location: subrequests::Location::first_source(api_range(a.location)),
            })
            .collect(),
        secrets: outline.secrets.into_iter().map(mount).collect(),
        ssh: outline.ssh.into_iter().map(mount).collect(),
        sources: vec![source.to_vec()],
    }
}

/// A lint report in the subrequest's terms, the Dockerfile its one source.
fn lint_results(report: LintReport, source: &[u8], filename: &str) -> subrequests::LintResults {
    subrequests::LintResults {
        warnings: report
            .checks
            .into_iter()
            .map(|check| subrequests::LintWarning {
                rule_name: check.rule,
                description: check.description,
                url: check.url,
                detail: check.message,
                location: subrequests::Location::first_source(check.location),
            })
            .collect(),
        sources: vec![subrequests::SourceInfo {
            filename: filename.to_owned(),
            data: source.to_vec(),
            language: "Dockerfile".to_owned(),
        }],
        build_error: report.error.map(|error| subrequests::BuildError {
            message: error.to_string(),
            location: error
                .location
                .map(api_range)
                .and_then(subrequests::Location::first_source)
                .unwrap_or_default(),
        }),
    }
}

struct Resolver<'a>(&'a Worker, &'a RegistryClient, ResolveMode);

impl ImageResolver for Resolver<'_> {
    fn resolve_image_config(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, String> {
        let (name, digest, config) = self
            .0
            .resolve_image_config(Some(self.1), reference, platform, self.2)
            .map_err(|e| e.to_string())?;
        Ok(ResolvedImage {
            reference: name,
            digest: Some(digest),
            config,
        })
    }
}

/// A failed step with the Dockerfile lines it came from, as BuildKit prints them:
/// `Dockerfile:7`, up to two lines of context either side, the failing lines marked.
pub(crate) fn step_error(
    error: kiln_worker::Error,
    definition: &LoadedDefinition,
    source: &[u8],
    path: &Path,
) -> Error {
    let kiln_worker::Error::Vertex { digest, .. } = &error else {
        return Error::Worker(error);
    };
    let range = digest
        .parse()
        .ok()
        .and_then(|d| definition.locations(&d))
        .and_then(|l| l.locations.first())
        .and_then(|l| l.ranges.first())
        .and_then(|r| Some((r.start?.line as usize, r.end?.line as usize)));
    let excerpt = range
        .filter(|(s, _)| *s > 0)
        .map(|(start, end)| source_excerpt(source, &file_name(path), start, end))
        .unwrap_or_default();
    Error::Step {
        excerpt,
        source: error,
    }
}

/// The Dockerfile lines `start..=end` marked, with context around them, as BuildKit
/// prints them under an error or a check warning.
fn source_excerpt(source: &[u8], file: &str, start: usize, end: usize) -> String {
    let range = kiln_api::build::SourceRange::lines(start, end);
    subrequests::source_excerpt(file, source, &[range])
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned())
}

/// `FromAsCasing` → `https://docs.docker.com/go/dockerfile/rule/from-as-casing/`.
pub(crate) fn rule_url(rule: &str) -> String {
    let chars: Vec<char> = rule.chars().collect();
    let mut kebab = String::new();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| p.is_lowercase() || (p.is_uppercase() && next_lower));
        if boundary {
            kebab.push('-');
        }
        kebab.extend(c.to_lowercase());
    }
    format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
}

pub(crate) fn check_warnings(
    conversion: &convert::Conversion,
    source: &[u8],
    path: &Path,
) -> Vec<CheckWarning> {
    lint_checks(&conversion.warnings, source, path)
}

pub(crate) fn lint_checks(
    warnings: &[convert::LintWarning],
    source: &[u8],
    path: &Path,
) -> Vec<CheckWarning> {
    warnings
        .iter()
        .map(|w| {
            let (start, end) = (
                w.location.start.line,
                w.location.end.line.max(w.location.start.line),
            );
            CheckWarning {
                rule: w.rule.clone(),
                message: w.message.clone(),
                url: rule_url(&w.rule),
                line: start,
                excerpt: if start > 0 {
                    source_excerpt(source, &file_name(path), start, end)
                } else {
                    String::new()
                },
                description: convert::rule_description(&w.rule).to_owned(),
                location: api_range(w.location),
            }
        })
        .collect()
}

/// A `check=error=true` violation as the build's error (it has no lines to show).
pub(crate) fn violation_error(error: kiln_dockerfile::Error) -> Error {
    Error::Dockerfile {
        excerpt: String::new(),
        error,
    }
}

/// A Dockerfile range as the front door's.
pub fn api_range(range: SourceRange) -> kiln_api::build::SourceRange {
    let position = |p: kiln_dockerfile::Position| kiln_api::build::Position {
        line: p.line,
        character: p.character,
    };
    kiln_api::build::SourceRange {
        start: position(range.start),
        end: position(range.end),
    }
}

impl Engine {
    /// Answers a Dockerfile frontend subrequest (BuildKit's `requestid` option:
    /// `frontend.lint`, `frontend.outline`, `frontend.targets`,
    /// `frontend.subrequests.describe`) with its result's metadata.
    pub fn subrequest(
        &self,
        request: &BuildRequest,
        id: &str,
    ) -> Result<subrequests::Metadata, Error> {
        if id == subrequests::DESCRIBE {
            return Ok(subrequests::describe_metadata());
        }
        let dockerfile = fs::read(&request.dockerfile)
            .map_err(|e| Error::Usage(format!("reading the Dockerfile: {e}")))?;
        match id {
            subrequests::LINT => {
                let report = self.lint(request, &dockerfile)?;
                let filename = file_name(&request.dockerfile);
                Ok(lint_results(report, &dockerfile, &filename).to_metadata())
            }
            subrequests::TARGETS => {
                let targets =
                    dockerfile_targets(&dockerfile).map_err(|error| Error::Dockerfile {
                        excerpt: String::new(),
                        error,
                    })?;
                let list = subrequests::TargetList {
                    targets,
                    sources: vec![dockerfile],
                };
                Ok(list.to_metadata())
            }
            subrequests::OUTLINE => {
                let conversion = self.convert(
                    request,
                    &dockerfile,
                    &mut LocalDirs::unlent(&mut BTreeMap::new()),
                    self.worker.registry(),
                    request.platforms.first(),
                )?;
                Ok(outline_answer(conversion.outline, &dockerfile).to_metadata())
            }
            other => Err(Error::UnknownSubrequest(other.to_owned())),
        }
    }

    /// Lints the Dockerfile as BuildKit's `frontend.lint` subrequest does: the checks
    /// that fire over every stage (or the target's), and the error that stops the
    /// conversion, which is part of the answer rather than a failure.
    fn lint(&self, request: &BuildRequest, dockerfile: &[u8]) -> Result<LintReport, Error> {
        let registry = self.worker.registry();
        let target_platform = request.platforms.first();
        match self.convert_for(
            request,
            dockerfile,
            &mut LocalDirs::unlent(&mut BTreeMap::new()),
            registry,
            true,
            target_platform,
        ) {
            Ok(conversion) => Ok(LintReport {
                checks: check_warnings(&conversion, dockerfile, &request.dockerfile),
                error: conversion.lint_violation,
            }),
            Err(Error::Dockerfile { error, .. }) => Ok(LintReport {
                checks: lint_checks(&error.warnings, dockerfile, &request.dockerfile),
                error: Some(error),
            }),
            Err(other) => Err(other),
        }
    }

    /// Converts a request's Dockerfile, its local sources as `locals` says. Named
    /// contexts that are builds (Bake's `target:` links) are converted here too.
    fn convert(
        &self,
        request: &BuildRequest,
        dockerfile: &[u8],
        locals: &mut LocalDirs<'_>,
        registry: &RegistryClient,
        target_platform: Option<&Platform>,
    ) -> Result<convert::Conversion, Error> {
        let conversion = self.convert_for(
            request,
            dockerfile,
            locals,
            registry,
            false,
            target_platform,
        )?;
        match conversion.lint_violation {
            Some(violation) => Err(violation_error(violation)),
            None => Ok(conversion),
        }
    }

    /// [`Self::convert`] with a `check=error=true` violation kept with the conversion
    /// rather than failing it (the caller reports the warnings first, as BuildKit
    /// does); for a lint when `lint` is set: every stage when no target is named
    /// (BuildKit's `AllStages`); for `target_platform` (`None`: the engine's).
    pub(crate) fn convert_for(
        &self,
        request: &BuildRequest,
        dockerfile: &[u8],
        locals: &mut LocalDirs<'_>,
        registry: &RegistryClient,
        lint: bool,
        target_platform: Option<&Platform>,
    ) -> Result<convert::Conversion, Error> {
        let context_name = locals.context_name.clone();
        let session = locals.session;
        let dirs = &mut *locals.dirs;
        dirs.insert(context_name.clone(), request.context.clone());
        // `BUILDKIT_SYNTAX` overrides the directive, as in BuildKit.
        let syntax = request
            .build_args
            .get("BUILDKIT_SYNTAX")
            .map(|s| s.split(' ').next().unwrap_or_default().to_owned())
            .or_else(|| kiln_dockerfile::parser::detect_syntax(dockerfile).map(|(r, _)| r));
        if let Some(syntax) = syntax.filter(|s| !kiln_dockerfile::parser::is_builtin_syntax(s)) {
            return Err(Error::Usage(format!(
                "{}: the frontend {syntax} (from its syntax directive) is an external frontend, and kiln does not run external frontends yet; use docker/dockerfile:1 or remove the directive",
                request.dockerfile.display()
            )));
        }
        let mut named_contexts = BTreeMap::new();
        for (name, value) in &request.named_contexts {
            let context = match value {
                BuildContext::Image(reference) => NamedContext::Image(reference.clone()),
                BuildContext::Dir(dir) => {
                    if !dir.is_dir() {
                        return Err(Error::Usage(format!(
                            "named context {name}: {} is not a directory",
                            dir.display()
                        )));
                    }
                    dirs.insert(name.clone(), dir.clone());
                    NamedContext::Local {
                        name: name.clone(),
                        excludes: dockerignore::dir_excludes(dir),
                    }
                }
                BuildContext::OciLayout { path, selector } => {
                    let (digest, _, config) = kiln_worker::read_layout(
                        path,
                        selector,
                        target_platform.unwrap_or(&self.platform),
                    )?;
                    let image: kiln_oci::image::Image =
                        serde_json::from_slice(&config).map_err(|e| {
                            Error::Usage(format!("named context {name}: its image config: {e}"))
                        })?;
                    // The layout is lent to the build like a local directory.
                    let store = format!("oci-layout-{name}");
                    dirs.insert(store.clone(), path.clone());
                    NamedContext::State {
                        state: Box::new(kiln_llb::State::oci_layout(
                            &format!("{store}@{digest}"),
                            kiln_llb::OciLayoutOptions {
                                store_id: Some(store.clone()),
                                op: kiln_llb::OpOptions::default()
                                    .custom_name(format!("[context {name}] oci-layout {digest}")),
                                ..kiln_llb::OciLayoutOptions::default()
                            },
                        )),
                        image: Some(Box::new(image)),
                    }
                }
                BuildContext::Http(url) => NamedContext::State {
                    state: Box::new(kiln_llb::State::http(
                        url,
                        kiln_llb::HttpOptions {
                            op: kiln_llb::OpOptions::default()
                                .custom_name(format!("[context {name}] {url}")),
                            ..kiln_llb::HttpOptions::default()
                        },
                    )),
                    image: None,
                },
                BuildContext::Git { url, reference } => NamedContext::State {
                    state: Box::new(kiln_llb::State::git(
                        url,
                        reference,
                        kiln_llb::GitOptions {
                            op: kiln_llb::OpOptions::default()
                                .custom_name(format!("[context {name}] {url}#{reference}")),
                            ..kiln_llb::GitOptions::default()
                        },
                    )),
                    image: None,
                },
                BuildContext::Build(linked) => {
                    let linked_dockerfile = fs::read(&linked.dockerfile).map_err(|e| {
                        Error::Usage(format!(
                            "named context {name}: reading {}: {e}",
                            linked.dockerfile.display()
                        ))
                    })?;
                    let conversion = self.convert(
                        linked,
                        &linked_dockerfile,
                        &mut LocalDirs {
                            context_name: format!("{context_name}:{name}"),
                            session,
                            dirs: &mut *dirs,
                        },
                        registry,
                        target_platform,
                    )?;
                    NamedContext::State {
                        state: Box::new(conversion.state),
                        image: Some(Box::new(conversion.image)),
                    }
                }
                BuildContext::Definition {
                    definition,
                    image_config,
                    locals,
                } => {
                    let loaded = LoadedDefinition::decode(definition)?;
                    let image = match image_config {
                        Some(config) => Some(Box::new(
                            serde_json::from_slice::<kiln_oci::image::Image>(config).map_err(
                                |e| {
                                    Error::Usage(format!(
                                        "named context {name}: its image config: {e}"
                                    ))
                                },
                            )?,
                        )),
                        None => None,
                    };
                    dirs.extend(locals.iter().map(|(k, v)| (k.clone(), v.clone())));
                    NamedContext::State {
                        state: Box::new(kiln_llb::State::from_definition(loaded)?),
                        image,
                    }
                }
            };
            named_contexts.insert(name.clone(), context);
        }
        let options = ConvertOptions {
            target: request.target.clone(),
            build_args: request.build_args.clone(),
            target_platform: target_platform.cloned(),
            build_platform: Some(self.platform.clone()),
            filename: Some(
                request
                    .dockerfile
                    .file_name()
                    .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned()),
            ),
            context_excludes: dockerignore::context_excludes(&request.context, &request.dockerfile),
            context_name: Some(context_name),
            session_id: session.map(str::to_owned),
            named_contexts,
            labels: request.labels.clone(),
            no_cache_filter: request.no_cache_filter.clone(),
            network: match request.run.network.as_deref() {
                None | Some("default" | "") => None,
                Some("none") => Some(kiln_llb::NetMode::None),
                Some("host") => Some(kiln_llb::NetMode::Host),
                Some(other) => {
                    return Err(Error::Usage(format!(
                        "--network {other:?}: use default, none or host"
                    )));
                }
            },
            extra_hosts: request.run.extra_hosts.clone(),
            ulimits: request.run.ulimits.clone(),
            shm_size: request.run.shm_size,
            cgroup_parent: request.run.cgroup_parent.clone(),
            force_pull: request.pull,
            multi_platform: request.platforms.len() > 1,
            all_stages: lint && request.target.as_deref().is_none_or(str::is_empty),
            keep_lint_violation: true,
            ..ConvertOptions::default()
        };
        let mode = if request.pull {
            ResolveMode::Pull
        } else {
            ResolveMode::Default
        };
        let resolver = Resolver(&self.worker, registry, mode);
        convert::convert(dockerfile, &options, &resolver).map_err(|error| {
            let excerpt = error.location.map_or_else(String::new, |range| {
                source_excerpt(
                    dockerfile,
                    &file_name(&request.dockerfile),
                    range.start.line,
                    range.end.line,
                )
            });
            Error::Dockerfile { excerpt, error }
        })
    }
}

/// Where a conversion's local sources come from: the local source its build context
/// is read as, the client session lending them (none for the embedded engine), and
/// every directory the build reads, by local source name (added to as it converts).
pub(crate) struct LocalDirs<'a> {
    pub(crate) context_name: String,
    pub(crate) session: Option<&'a str>,
    pub(crate) dirs: &'a mut BTreeMap<String, PathBuf>,
}

impl<'a> LocalDirs<'a> {
    /// The build context as `context`, lent by no session.
    pub(crate) fn unlent(dirs: &'a mut BTreeMap<String, PathBuf>) -> Self {
        Self {
            context_name: "context".to_owned(),
            session: None,
            dirs,
        }
    }
}
