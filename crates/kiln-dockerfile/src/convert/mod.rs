//! Dockerfile to LLB and image config, as BuildKit's `dockerfile2llb` converts it.
//!
//! [`convert`] reads a Dockerfile, resolves the stages the target needs (asking an
//! [`ImageResolver`] for each base image's config), and dispatches every instruction onto
//! `kiln_llb::State`s. It returns the target's state, ready to marshal with the target
//! platform as default, and its image config. Nothing is built or fetched here: the
//! resolver is the only outside call, so the conversion is pure and testable.

mod copy;
mod dispatch;
mod gofmt;
mod lint;
mod outline;
mod run;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kiln_llb::{LocalOptions, OpOptions, Platform, SourceMap, State, pb};
use kiln_oci::Reference;

use crate::error::{Error, SourceRange};
use crate::instructions::{self, Command, Instruction};
use crate::parser;
use crate::shell::Lexer;
use kiln_oci::image::{DEFAULT_PATH, Image};

pub use self::lint::{LintWarning, RULES, rule_description};
pub use self::outline::{Outline, OutlineArg, OutlineMount};

const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// What an image resolver says about a reference.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The canonical reference, e.g. `docker.io/library/alpine:3.20`.
    pub reference: String,
    /// The manifest digest it resolved to, if known.
    pub digest: Option<String>,
    /// The image config JSON.
    pub config: Vec<u8>,
}

/// Looks up base images' configs (a registry client, or a fixed answer in tests).
pub trait ImageResolver {
    /// Resolves `reference` (canonical, with tag) for `platform`.
    fn resolve_image_config(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, String>;
}

/// A named context (`--build-context NAME=VALUE`, Bake's `contexts`): a FROM or
/// `--from` naming it uses it, and a stage with its name is replaced by it.
#[derive(Debug, Clone)]
pub enum NamedContext {
    /// `docker-image://REF`: that image, resolved like a base image.
    Image(String),
    /// A directory the client serves as the local source `name`.
    Local {
        /// The local source's name.
        name: String,
        /// Its `.dockerignore` patterns.
        excludes: Vec<String>,
    },
    /// A state built elsewhere (Bake's `target:` links), with its image config if any.
    State {
        /// Its filesystem.
        state: Box<State>,
        /// Its image config.
        image: Option<Box<Image>>,
    },
}

/// How BuildKit keys a named context: `alpine:latest` and `docker.io/library/alpine`
/// are both `alpine`; a name that is no reference stays as written.
fn context_key(name: &str) -> String {
    let Ok(reference) = name.parse::<Reference>() else {
        return name.to_owned();
    };
    let mut familiar = reference.path.clone();
    if reference.domain != "docker.io" {
        familiar = format!("{}/{familiar}", reference.domain);
    } else if let Some(rest) = familiar.strip_prefix("library/") {
        familiar = rest.to_owned();
    }
    if let Some(tag) = reference.tag.as_deref().filter(|t| *t != "latest") {
        familiar = format!("{familiar}:{tag}");
    }
    if let Some(digest) = &reference.digest {
        familiar = format!("{familiar}@{digest}");
    }
    familiar
}

/// Conversion settings (BuildKit's `ConvertOpt` subset kiln uses).
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The stage to build (`--target`); the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// The target platform; `None` means the build platform, implicitly.
    pub target_platform: Option<Platform>,
    /// The build platform (default: the host's).
    pub build_platform: Option<Platform>,
    /// Labels added to the result (`--label`).
    pub labels: BTreeMap<String, String>,
    /// The Dockerfile's name in source maps and errors (default `Dockerfile`).
    pub filename: Option<String>,
    /// A fixed `local.unique` id for the build context, instead of a random one.
    pub context_unique_id: Option<String>,
    /// Build every stage, not only those the target needs.
    pub all_stages: bool,
    /// Return a `check=error=true` violation with the conversion (its warnings kept)
    /// instead of failing it, as a lint of the file wants.
    pub keep_lint_violation: bool,
    /// `.dockerignore` patterns of the build context.
    pub context_excludes: Vec<String>,
    /// The local source the build context is read from (default `context`).
    pub context_name: Option<String>,
    /// The client session lending the build's local sources (`local.session` on each,
    /// as BuildKit's frontend sets it); `None` leaves it out.
    pub session_id: Option<String>,
    /// Named contexts by name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// Stages whose steps ignore the cache (`--no-cache-filter`).
    pub no_cache_filter: Vec<String>,
    /// The network of RUN steps that do not choose one (`--network`).
    pub network: Option<kiln_llb::NetMode>,
    /// `/etc/hosts` entries for every RUN (`--add-host`): (name, address).
    pub extra_hosts: Vec<(String, String)>,
    /// Resource limits for every RUN (`--ulimit`): (name, soft, hard).
    pub ulimits: Vec<(String, i64, i64)>,
    /// Size of `/dev/shm` in RUN steps, in bytes (`--shm-size`; 0 keeps the default).
    pub shm_size: i64,
    /// The cgroup RUN steps are placed under (`--cgroup-parent`).
    pub cgroup_parent: Option<String>,
    /// `--pull` (`image-resolve-mode=pull`): images are resolved anew, never from an
    /// earlier resolution.
    pub force_pull: bool,
    /// Several platforms are built (BuildKit's `MultiPlatformRequested`): step names
    /// say their platform.
    pub multi_platform: bool,
}

impl ConvertOptions {
    fn named_context(&self, name: &str) -> Option<(&str, &NamedContext)> {
        let key = context_key(name);
        self.named_contexts
            .iter()
            .find(|(k, _)| context_key(k) == key)
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The target stage's filesystem and metadata; marshal it with `platform` as default.
    pub state: State,
    /// The target's image config.
    pub image: Image,
    /// The target platform (the marshal default).
    pub platform: Platform,
    /// Build-check warnings.
    pub warnings: Vec<LintWarning>,
    /// `--build-arg`s no ARG declares (BuildKit's "were not consumed" warning).
    pub unused_build_args: Vec<String>,
    /// The `check=error=true` violation, when [`ConvertOptions::keep_lint_violation`]
    /// kept it here rather than failing the conversion.
    pub lint_violation: Option<Error>,
    /// What the target can be given: build args, secrets, ssh sockets.
    pub outline: Outline,
}

/// Build args BuildKit never reports as unused: the proxy variables and its own.
fn always_consumed(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "http_proxy" | "https_proxy" | "ftp_proxy" | "no_proxy" | "all_proxy"
    ) || name.starts_with("BUILDKIT_")
        || name == "SOURCE_DATE_EPOCH"
        || AUTOMATIC_ARGS.contains(&name)
}

/// One command of a stage, with the stages it reads from.
#[derive(Debug, Clone)]
struct StageCommand {
    command: Command,
    /// For COPY --from: the source stage; for RUN: one entry per mount.
    sources: Vec<Option<usize>>,
    on_build: bool,
}

/// BuildKit's `dispatchState`: a stage being converted.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// Lower-cased `AS` name.
    name: Option<String>,
    /// Name shown in progress (`stage-N` for unnamed stages; empty with one stage).
    display_name: String,
    base_name: String,
    source_code: String,
    location: SourceRange,
    platform: Option<Platform>,
    commands: Vec<StageCommand>,
    base: Option<usize>,
    deps: BTreeSet<usize>,
    state: State,
    image: Image,
    dispatched: bool,
    resolved: bool,
    onbuild_init: bool,
    unregistered: bool,
    build_args: Vec<(String, Option<String>)>,
    ctx_paths: BTreeSet<String>,
    cmd_total: usize,
    cmd_index: usize,
    cmd_is_onbuild: bool,
    workdir_set: bool,
    cmd_set: bool,
    ignore_cache: bool,
    /// Replaced by a named context: nothing of the stage's own runs.
    noinit: bool,
    /// The `# name description` comment before its FROM.
    description: String,
    outline: outline::OutlineCapture,
}

impl StageState {
    fn unregistered(base_name: &str, location: SourceRange) -> Self {
        Self {
            base_name: base_name.to_owned(),
            location,
            unregistered: true,
            ..Self::default()
        }
    }

    /// The working directory a RUN runs in and a COPY's relative destination is read
    /// from (`/` until WORKDIR sets one, as every BuildKit state starts).
    fn working_dir(&self) -> String {
        self.state
            .meta()
            .dir
            .clone()
            .unwrap_or_else(|| "/".to_owned())
    }
}

/// What every dispatch needs and nothing changes.
struct Context<'a> {
    options: &'a ConvertOptions,
    lexer: Lexer,
    target_platform: Platform,
    implicit_target: bool,
    global_args: Vec<(String, String)>,
    epoch: Option<i64>,
    proxy: Option<pb::ProxyEnv>,
    source_map: Arc<SourceMap>,
    build_context: State,
    cache_namespace: String,
    hostname: Option<String>,
    /// What the `# syntax=` directive turns on.
    features: instructions::Features,
}

/// Converts a Dockerfile. `resolver` answers for every base image of a needed stage.
pub fn convert(
    source: &[u8],
    options: &ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<Conversion, Error> {
    // The build context's followed paths are known only after every stage ran; convert
    // once to learn them, then again with the narrowed context. Each image is resolved
    // once for both (the second pass must see the same digests, and costs no round trip).
    let resolver = ResolveOnce {
        resolver,
        answers: Default::default(),
    };
    let first = Converter::new(source, options, &resolver, None)?.run()?;
    let paths = first.1;
    let (conversion, _) = Converter::new(source, options, &resolver, Some(paths))?.run()?;
    Ok(conversion)
}

/// A resolver that asks the one it wraps once per reference and platform.
struct ResolveOnce<'a> {
    resolver: &'a dyn ImageResolver,
    answers: std::sync::Mutex<HashMap<(String, Platform), Result<ResolvedImage, String>>>,
}

impl ImageResolver for ResolveOnce<'_> {
    fn resolve_image_config(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, String> {
        let key = (reference.to_owned(), platform.clone());
        if let Some(answer) = self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return answer.clone();
        }
        let answer = self.resolver.resolve_image_config(reference, platform);
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, answer.clone());
        answer
    }
}

struct Converter<'a> {
    ctx: Context<'a>,
    resolver: &'a dyn ImageResolver,
    parsed: instructions::Instructions,
    stages: Vec<StageState>,
    by_name: HashMap<String, usize>,
    lint: lint::Linter,
    /// The global ARGs as every stage's outline starts with them.
    meta_outline: outline::OutlineCapture,
}

fn env_get<'e>(env: &'e [(String, String)], key: &str) -> Option<&'e str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn env_set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => env.push((key.to_owned(), value)),
    }
}

/// containerd's `platforms.Format`: `os/arch[/variant]`.
fn format_platform(p: &Platform) -> String {
    p.to_string()
}

/// The `--build-arg`s that no ARG of the Dockerfile declares.
fn unused_build_args(parsed: &instructions::Instructions, options: &ConvertOptions) -> Vec<String> {
    let declared: BTreeSet<&str> = parsed
        .meta_args
        .iter()
        .chain(parsed.stages.iter().flat_map(|s| &s.commands))
        .flat_map(|c| match &c.instruction {
            Instruction::Arg(args) => args.iter().map(|a| a.key.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();
    options
        .build_args
        .keys()
        .filter(|k| !declared.contains(k.as_str()) && !always_consumed(k))
        .cloned()
        .collect()
}

/// The args every build defines (BuildKit's `defaultArgs`).
const AUTOMATIC_ARGS: [&str; 11] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

/// The automatic platform args and `TARGETSTAGE` (BuildKit's `defaultArgs`).
fn default_args(
    build: &Platform,
    target: &Platform,
    overrides: &BTreeMap<String, String>,
    stage: &str,
) -> Vec<(String, String)> {
    let values = [
        format_platform(build),
        build.os.clone(),
        build.os_version.clone(),
        build.architecture.clone(),
        build.variant.clone(),
        format_platform(target),
        target.os.clone(),
        target.os_version.clone(),
        target.architecture.clone(),
        target.variant.clone(),
        stage.to_owned(),
    ];
    AUTOMATIC_ARGS
        .into_iter()
        .zip(values)
        .map(|(k, v)| (k.to_owned(), overrides.get(k).cloned().unwrap_or(v)))
        .collect()
}

/// Proxy build args become the exec's proxy env (never part of the cache key).
fn proxy_from_build_args(args: &BTreeMap<String, String>) -> Option<pb::ProxyEnv> {
    let mut proxy = pb::ProxyEnv::default();
    let mut set = false;
    for (key, value) in args {
        let field = match key.to_ascii_lowercase().as_str() {
            "http_proxy" => &mut proxy.http_proxy,
            "https_proxy" => &mut proxy.https_proxy,
            "ftp_proxy" => &mut proxy.ftp_proxy,
            "no_proxy" => &mut proxy.no_proxy,
            "all_proxy" => &mut proxy.all_proxy,
            _ => continue,
        };
        *field = value.clone();
        set = true;
    }
    set.then_some(proxy)
}

impl<'a> Converter<'a> {
    fn new(
        source: &[u8],
        options: &'a ConvertOptions,
        resolver: &'a dyn ImageResolver,
        context_paths: Option<BTreeSet<String>>,
    ) -> Result<Self, Error> {
        if source.is_empty() {
            return Err(Error::new("the Dockerfile cannot be empty"));
        }
        let dockerfile = parser::parse(source)?;
        // The `BUILDKIT_DOCKERFILE_CHECK` build arg replaces the `check` directive.
        let check = options
            .build_args
            .get("BUILDKIT_DOCKERFILE_CHECK")
            .map(String::as_str)
            .or(dockerfile.directive("check"));
        let mut lint = lint::Linter::new(check)?;
        for warning in &dockerfile.warnings {
            lint.report(
                "NoEmptyContinuation",
                "Empty continuation line",
                warning.location,
            );
        }
        lint::check_parsed(&dockerfile, &mut lint);
        let parsed = instructions::parse(&dockerfile)?;
        if parsed.stages.is_empty() {
            return Err(Error::new("dockerfile contains no stages to build"));
        }
        lint::check_stages(&parsed, &mut lint);

        let build_platform = options
            .build_platform
            .clone()
            .unwrap_or_else(Platform::host);
        let (target_platform, implicit_target) = match &options.target_platform {
            Some(p) => (p.clone(), false),
            None => (build_platform.clone(), true),
        };
        let target_name = match &options.target {
            Some(t) if !t.is_empty() => t.clone(),
            _ => parsed
                .stages
                .last()
                .and_then(|s| s.from.name.clone())
                .unwrap_or_default(),
        };
        let stage_arg = if target_name.is_empty() {
            "default".to_owned()
        } else {
            target_name
        };
        let lexer = Lexer::new(dockerfile.escape);
        let mut global_args = default_args(
            &build_platform,
            &target_platform,
            &options.build_args,
            &stage_arg,
        );

        // Global ARGs, with --build-arg overrides (BuildKit's `buildMetaArgs`).
        let mut meta_outline = outline::OutlineCapture::default();
        for command in &parsed.meta_args {
            let Instruction::Arg(args) = &command.instruction else {
                continue;
            };
            for (order, arg) in args.iter().enumerate() {
                lint::check_secret_key("ARG", &arg.key, command.location, &mut lint);
                let mut deps = BTreeSet::new();
                let value = match options.build_args.get(&arg.key) {
                    Some(v) => Some(v.clone()),
                    None => match &arg.value {
                        Some(default) => {
                            let expansion = lexer
                                .process(default, &global_args)
                                .map_err(|e| Error::from(e).with_location(command.location))?;
                            deps = expansion.matched;
                            // `ARG A=$A-x` depends on what the earlier A did.
                            if deps.remove(&arg.key)
                                && let Some(earlier) = meta_outline.all_args.get(&arg.key)
                            {
                                deps.extend(earlier.deps.iter().cloned());
                            }
                            Some(expansion.word)
                        }
                        None => None,
                    },
                };
                meta_outline.all_args.insert(
                    arg.key.clone(),
                    outline::ArgInfo {
                        arg: OutlineArg {
                            name: arg.key.clone(),
                            description: arg.comment.clone(),
                            value: value.clone().unwrap_or_default(),
                            location: command.location,
                        },
                        deps,
                        order,
                    },
                );
                if let Some(value) = value {
                    env_set(&mut global_args, &arg.key, value);
                }
            }
        }

        let epoch = match options
            .build_args
            .get("SOURCE_DATE_EPOCH")
            .cloned()
            .or_else(|| {
                env_get(&global_args, "SOURCE_DATE_EPOCH")
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            }) {
            Some(value) => Some(
                value
                    .parse::<i64>()
                    .map_err(|_| Error::new(format!("invalid SOURCE_DATE_EPOCH: {value}")))?,
            ),
            None => None,
        };

        let filename = options
            .filename
            .clone()
            .unwrap_or_else(|| "Dockerfile".to_owned());
        let source_map = Arc::new(SourceMap {
            filename,
            language: "Dockerfile".to_owned(),
            data: source.to_vec(),
        });
        let mut follow_paths: Vec<String> = Vec::new();
        // The context narrowed to the paths the build reads, unless it reads all of it.
        if let Some(paths) = context_paths.as_ref().filter(|p| !p.contains("/")) {
            follow_paths = paths
                .iter()
                .map(|p| match p.trim_start_matches('/') {
                    "" => ".".to_owned(),
                    relative => relative.to_owned(),
                })
                .collect();
            follow_paths.sort();
        }
        let context_name = options.context_name.as_deref().unwrap_or("context");
        let build_context = State::local(
            context_name,
            LocalOptions {
                shared_key_hint: Some(context_name.to_owned()),
                follow_paths,
                exclude_patterns: options.context_excludes.clone(),
                unique_id: options.context_unique_id.clone(),
                session_id: options.session_id.clone(),
                op: OpOptions::default().custom_name("[internal] load build context"),
                ..LocalOptions::default()
            },
        );
        let ctx = Context {
            features: parsed.features,
            options,
            lexer,
            target_platform,
            implicit_target,
            global_args,
            epoch,
            proxy: proxy_from_build_args(&options.build_args),
            source_map,
            build_context,
            cache_namespace: options
                .build_args
                .get("BUILDKIT_CACHE_MOUNT_NS")
                .cloned()
                .unwrap_or_default(),
            hostname: options.build_args.get("BUILDKIT_SANDBOX_HOSTNAME").cloned(),
        };
        Ok(Self {
            ctx,
            resolver,
            parsed,
            stages: Vec::new(),
            by_name: HashMap::new(),
            lint,
            meta_outline,
        })
    }

    fn add_state(&mut self, mut state: StageState) -> usize {
        if let Some(&base) = self.by_name.get(&state.base_name) {
            state.base = Some(base);
            state.outline = self.stages[base].outline.clone();
        }
        let index = self.stages.len();
        if let Some(name) = &state.name {
            self.by_name.insert(name.to_ascii_lowercase(), index);
        }
        self.stages.push(state);
        index
    }

    fn run(mut self) -> Result<(Conversion, BTreeSet<String>), Error> {
        let target = match self.dispatch() {
            Ok(target) => target,
            Err(mut error) => {
                error.warnings = std::mem::take(&mut self.lint.warnings);
                return Err(error);
            }
        };
        let ctx_paths: BTreeSet<String> = self
            .stages
            .iter()
            .flat_map(|s| s.ctx_paths.iter().cloned())
            .collect();
        let lint_violation = match self.lint.error() {
            Err(violation) if self.ctx.options.keep_lint_violation => Some(violation),
            other => {
                other?;
                None
            }
        };
        let outline = self.outline(target);
        let mut target_state = self.stages[target].clone();
        for (key, value) in &self.ctx.options.labels {
            target_state
                .image
                .config
                .labels
                .insert(key.clone(), value.clone());
        }
        let platform = self.ctx.target_platform.clone();
        if !self.ctx.implicit_target {
            let same_os_arch = platform.os == target_state.image.os
                && platform.architecture == target_state.image.architecture;
            target_state.image.os = platform.os.clone();
            target_state.image.architecture = platform.architecture.clone();
            if !platform.variant.is_empty() || !same_os_arch {
                target_state.image.variant = platform.variant.clone();
            }
            if !platform.os_version.is_empty() || !same_os_arch {
                target_state.image.os_version = platform.os_version.clone();
            }
            if !platform.os_features.is_empty() {
                target_state.image.os_features = platform.os_features.clone();
            }
        }
        Ok((
            Conversion {
                state: target_state.state,
                image: target_state.image,
                platform,
                warnings: self.lint.warnings,
                unused_build_args: unused_build_args(&self.parsed, self.ctx.options),
                lint_violation,
                outline,
            },
            ctx_paths,
        ))
    }

    /// What stage `target` and the stages it reads can be given.
    fn outline(&self, target: usize) -> Outline {
        let links: Vec<outline::StageLinks<'_>> = self
            .stages
            .iter()
            .map(|s| outline::StageLinks {
                capture: &s.outline,
                base: s.base,
                deps: &s.deps,
            })
            .collect();
        let stage = &self.stages[target];
        outline::outline(
            &links,
            target,
            stage.name.as_deref().unwrap_or_default(),
            &stage.description,
        )
    }

    /// Converts the stages the target needs; returns the target's index.
    fn dispatch(&mut self) -> Result<usize, Error> {
        self.build_stage_states()?;
        let target = self.resolve_target()?;
        self.build_dependency_graph()?;
        let reachable = self.resolve_stages(target)?;
        self.dispatch_stages(&reachable)?;
        Ok(target)
    }

    fn build_stage_states(&mut self) -> Result<(), Error> {
        let stages = self.parsed.stages.clone();
        self.check_default_base_names();
        let declared: BTreeSet<String> = self
            .parsed
            .meta_args
            .iter()
            .flat_map(|c| match &c.instruction {
                Instruction::Arg(args) => args.iter().map(|a| a.key.clone()).collect(),
                _ => Vec::new(),
            })
            .chain(self.ctx.global_args.iter().map(|(k, _)| k.clone()))
            .collect();
        for (i, stage) in stages.iter().enumerate() {
            let expansion = self
                .ctx
                .lexer
                .process(&stage.from.base_name, &self.ctx.global_args)
                .map_err(|e| Error::from(e).with_location(stage.location))?;
            self.report_undeclared_from_args(&expansion.unmatched, &declared, stage.location);
            let mut used_by_from = expansion.matched;
            let expanded = expansion.word;
            if expanded.is_empty() {
                return Err(Error::at(
                    format!("base name ({}) should not be blank", stage.from.base_name),
                    stage.location,
                ));
            }
            let mut state = StageState {
                name: stage.from.name.clone(),
                display_name: stage
                    .from
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("stage-{i}")),
                base_name: expanded,
                source_code: stage.code.clone(),
                location: stage.location,
                description: stage.from.comment.clone(),
                outline: self.meta_outline.clone(),
                ..StageState::default()
            };
            if let Some(platform) = &stage.from.platform {
                let expansion = self
                    .ctx
                    .lexer
                    .process(platform, &self.ctx.global_args)
                    .map_err(|e| {
                        Error::at(
                            format!("failed to process arguments for platform {platform}: {e}"),
                            stage.location,
                        )
                    })?;
                self.report_undeclared_from_args(&expansion.unmatched, &declared, stage.location);
                self.check_from_platform(stage, platform, &expansion);
                used_by_from.extend(expansion.matched.iter().cloned());
                let value = expansion.word;
                if value.is_empty() {
                    // BuildKit suggests a global ARG for a misspelt one (wrapSuggestAny).
                    let hint = expansion
                        .unmatched
                        .iter()
                        .find_map(|arg| {
                            let keys = self.ctx.global_args.iter().map(|(k, _)| k.as_str());
                            crate::suggest::search(arg, keys, true)
                        })
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    return Err(Error::at(
                        format!("empty platform value from expression {platform}{hint}"),
                        stage.location,
                    ));
                }
                let parsed: Platform = value.parse().map_err(|e| {
                    Error::at(
                        format!("failed to parse platform {platform}: {e}"),
                        stage.location,
                    )
                })?;
                state.platform = Some(parsed);
            }
            let index = self.add_state(state);
            let stage_name = self.stages[index].name.clone();
            if let Some((key, context)) =
                stage_name.and_then(|n| self.ctx.options.named_context(&n))
            {
                let (key, context) = (key.to_owned(), context.clone());
                self.replace_with_context(index, &key, &context)?;
                continue;
            }
            let st = &mut self.stages[index];
            st.outline.used_args.extend(used_by_from);
            let mut total = usize::from(st.base_name != "scratch" && st.base.is_none());
            total += stage
                .commands
                .iter()
                .filter(|c| {
                    matches!(
                        c.instruction,
                        Instruction::Add(_)
                            | Instruction::Copy(_)
                            | Instruction::Run(_)
                            | Instruction::Workdir(_)
                    )
                })
                .count();
            st.cmd_total = total;
            st.commands = stage
                .commands
                .iter()
                .map(|c| StageCommand {
                    command: c.clone(),
                    sources: Vec::new(),
                    on_build: false,
                })
                .collect();
        }
        Ok(())
    }

    /// `RedundantTargetPlatform` (`--platform=$TARGETPLATFORM`) and
    /// `FromPlatformFlagConstDisallowed` (a constant, unless the stage is named for it).
    /// `UndefinedArgInFrom`: variables of a FROM (its base or `--platform`) that no
    /// ARG declares, with the declared one a misspelling may mean.
    fn report_undeclared_from_args<'u>(
        &mut self,
        unmatched: impl IntoIterator<Item = &'u String>,
        declared: &BTreeSet<String>,
        location: SourceRange,
    ) {
        for arg in unmatched.into_iter().filter(|a| !declared.contains(*a)) {
            let hint = crate::suggest::search(arg, declared.iter().map(String::as_str), true)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            self.lint.report(
                "UndefinedArgInFrom",
                &format!("FROM argument '{arg}' is not declared{hint}"),
                location,
            );
        }
    }

    fn check_from_platform(
        &mut self,
        stage: &instructions::Stage,
        written: &str,
        expansion: &crate::shell::Expansion,
    ) {
        if expansion.matched.len() == 1
            && expansion.unmatched.is_empty()
            && expansion.matched.contains("TARGETPLATFORM")
            && env_get(&self.ctx.global_args, "TARGETPLATFORM") == Some(expansion.word.as_str())
        {
            self.lint.report(
                "RedundantTargetPlatform",
                &format!("Setting platform to predefined {written} in FROM is redundant as this is the default behavior"),
                stage.location,
            );
        }
        if !expansion.matched.is_empty() || !expansion.unmatched.is_empty() {
            return;
        }
        let Ok(platform) = expansion.word.parse::<Platform>() else {
            return;
        };
        let name = stage.from.name.as_deref().unwrap_or_default();
        if name.contains(&platform.os) || name.contains(&platform.architecture) {
            return;
        }
        self.lint.report(
            "FromPlatformFlagConstDisallowed",
            &format!(
                "FROM --platform flag should not use constant value {:?}",
                expansion.word
            ),
            stage.location,
        );
    }

    /// `InvalidDefaultArgInFrom`: with only the global ARGs' defaults (no --build-arg),
    /// a base name that is empty or no image reference.
    fn check_default_base_names(&mut self) {
        let mut args: Vec<(String, String)> = default_args(
            &self
                .ctx
                .options
                .build_platform
                .clone()
                .unwrap_or_else(Platform::host),
            &self.ctx.target_platform,
            &BTreeMap::new(),
            "",
        );
        for command in &self.parsed.meta_args {
            let Instruction::Arg(declared) = &command.instruction else {
                continue;
            };
            for arg in declared {
                if let Some(default) = &arg.value {
                    let Ok(value) = self.ctx.lexer.expand(default, &args) else {
                        return;
                    };
                    env_set(&mut args, &arg.key, value);
                }
            }
        }
        for stage in &self.parsed.stages {
            let Ok(name) = self.ctx.lexer.expand(&stage.from.base_name, &args) else {
                return;
            };
            if name.parse::<Reference>().is_err() {
                self.lint.report(
                    "InvalidDefaultArgInFrom",
                    &format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        stage.from.base_name
                    ),
                    stage.location,
                );
            }
        }
    }

    fn resolve_target(&self) -> Result<usize, Error> {
        match &self.ctx.options.target {
            None => Ok(self.stages.len() - 1),
            Some(t) if t.is_empty() => Ok(self.stages.len() - 1),
            Some(target) => self
                .by_name
                .get(&target.to_ascii_lowercase())
                .copied()
                .ok_or_else(|| {
                    let names: Vec<&str> = self
                        .stages
                        .iter()
                        .filter_map(|s| s.name.as_deref())
                        .collect();
                    Error::new(crate::suggest::with_hint(
                        format!(
                            "target stage {} could not be found",
                            crate::go_quote(target)
                        ),
                        target,
                        names,
                        true,
                    ))
                }),
        }
    }

    /// The stage a `--from` (or mount `from`) names: a stage name, an index, or an image.
    fn source_for(
        &mut self,
        from: &str,
        location: SourceRange,
        allow_index: bool,
    ) -> Result<usize, Error> {
        if let Some(index) = from.parse::<i64>().ok().filter(|_| allow_index) {
            if index < 0 || index as usize >= self.stages.len() {
                return Err(Error::at(format!("invalid stage index {index}"), location));
            }
            return Ok(index as usize);
        }
        if let Some(&i) = self.by_name.get(&from.to_ascii_lowercase()) {
            return Ok(i);
        }
        Ok(self.add_state(StageState::unregistered(from, location)))
    }

    fn command_sources(&mut self, command: &Command) -> Result<Vec<Option<usize>>, Error> {
        match &command.instruction {
            Instruction::Copy(copy) if !copy.from.is_empty() => {
                if self
                    .ctx
                    .lexer
                    .expand(&copy.from, &Vec::<(String, String)>::new())
                    .ok()
                    .as_deref()
                    != Some(copy.from.as_str())
                {
                    return Err(Error::at(
                        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                        command.location,
                    ));
                }
                Ok(vec![Some(self.source_for(
                    &copy.from,
                    command.location,
                    true,
                )?)])
            }
            Instruction::Run(run) => {
                // BuildKit v0.24 gives every mount a source state, `scratch` when it names
                // none ("this might not be a stage name but it's ok"), from `from`
                // alone: the type and other options may need variables expanded.
                let mut sources = Vec::with_capacity(run.mount_specs.len());
                for spec in &run.mount_specs {
                    let mount =
                        instructions::parse_mount(spec, &instructions::MountValues::Deferred)
                            .map_err(|e| e.with_location(command.location))?;
                    let from = if mount.from.is_empty() {
                        "scratch"
                    } else {
                        mount.from.as_str()
                    };
                    sources.push(Some(self.source_for(from, command.location, false)?));
                }
                Ok(sources)
            }
            _ => Ok(Vec::new()),
        }
    }

    fn build_dependency_graph(&mut self) -> Result<(), Error> {
        for i in 0..self.stages.len() {
            let commands = std::mem::take(&mut self.stages[i].commands);
            let mut resolved = Vec::with_capacity(commands.len());
            for mut cmd in commands {
                cmd.sources = self.command_sources(&cmd.command)?;
                for source in cmd.sources.iter().flatten() {
                    self.stages[i].deps.insert(*source);
                }
                resolved.push(cmd);
            }
            self.stages[i].commands = resolved;
        }
        // Circular dependencies between stages.
        for start in 0..self.stages.len() {
            let mut stack = vec![(start, vec![start])];
            while let Some((node, path)) = stack.pop() {
                let next: Vec<usize> = self.stages[node]
                    .deps
                    .iter()
                    .copied()
                    .chain(self.stages[node].base)
                    .collect();
                for n in next {
                    if n == start {
                        return Err(Error::new(format!(
                            "circular dependency detected on stage: {}",
                            self.stages[start].name.clone().unwrap_or_default()
                        )));
                    }
                    if !path.contains(&n) {
                        let mut p = path.clone();
                        p.push(n);
                        stack.push((n, p));
                    }
                }
            }
        }
        if self.stages.len() == 1 {
            self.stages[0].display_name.clear();
        }
        Ok(())
    }

    fn reachable_from(&self, target: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(s) = stack.pop() {
            if !seen.insert(s) {
                continue;
            }
            stack.extend(self.stages[s].base);
            stack.extend(self.stages[s].deps.iter().copied());
        }
        seen
    }

    fn resolve_stages(&mut self, target: usize) -> Result<BTreeSet<usize>, Error> {
        loop {
            let reachable = self.reachable_from(target);
            for i in 0..self.stages.len() {
                let is_reachable = reachable.contains(&i) || self.ctx.options.all_stages;
                let st = &self.stages[i];
                if st.base.is_some() || st.dispatched || st.resolved {
                    continue;
                }
                self.stages[i].resolved = is_reachable;
                self.resolve_base_image(i, is_reachable)?;
            }
            let mut new_deps = false;
            for &i in &reachable {
                self.init_stage(i);
                let mut onbuilds = std::mem::take(&mut self.stages[i].image.config.on_build);
                if let Some(base) = self.stages[i].base.filter(|_| !self.stages[i].onbuild_init) {
                    for cmd in &self.stages[base].commands {
                        if let Instruction::Onbuild(expr) = &cmd.command.instruction {
                            onbuilds.push(expr.clone());
                        }
                    }
                    self.stages[i].onbuild_init = true;
                }
                if !onbuilds.is_empty() && self.init_onbuild_triggers(i, &onbuilds)? {
                    new_deps = true;
                }
            }
            if !new_deps {
                return Ok(reachable);
            }
        }
    }

    fn init_onbuild_triggers(&mut self, i: usize, triggers: &[String]) -> Result<bool, Error> {
        let location = self.stages[i].location;
        let mut new_deps = false;
        let mut commands = Vec::with_capacity(triggers.len());
        for trigger in triggers {
            let parsed =
                parser::parse(trigger.as_bytes()).map_err(|e| e.with_location(location))?;
            let [node] = parsed.children.as_slice() else {
                return Err(Error::at(
                    "onbuild trigger should be a single expression",
                    location,
                ));
            };
            let mut node = node.clone();
            node.location = location;
            let command = instructions::parse_command(&node, self.ctx.features)?;
            if matches!(command.instruction, Instruction::From(_)) {
                return Err(Error::at(
                    "FROM isn't allowed as an ONBUILD trigger",
                    location,
                ));
            }
            let sources = self.command_sources(&command)?;
            if sources.iter().any(Option::is_some) {
                new_deps = true;
            }
            for source in sources.iter().flatten() {
                self.stages[i].deps.insert(*source);
            }
            commands.push(StageCommand {
                command,
                sources,
                on_build: true,
            });
        }
        self.stages[i].cmd_total += commands.len();
        let existing = std::mem::take(&mut self.stages[i].commands);
        commands.extend(existing);
        self.stages[i].commands = commands;
        Ok(new_deps)
    }

    /// BuildKit's `init`: a stage based on another one starts from its state.
    fn init_stage(&mut self, i: usize) {
        let Some(base) = self.stages[i].base else {
            return;
        };
        let b = self.stages[base].clone();
        let st = &mut self.stages[i];
        st.state = b.state;
        st.platform = b.platform;
        st.image = b.image;
        st.image.config.on_build.clear();
        st.workdir_set = b.workdir_set;
        st.build_args.extend(b.build_args);
    }

    /// A stage that a named context replaces (`--build-context NAME=…` and `FROM … AS
    /// NAME`): its state and image config become the context's, its own commands do
    /// not run.
    fn replace_with_context(
        &mut self,
        i: usize,
        key: &str,
        context: &NamedContext,
    ) -> Result<(), Error> {
        let st = &mut self.stages[i];
        st.commands.clear();
        st.base = None;
        st.resolved = true;
        match context {
            NamedContext::Image(reference) => {
                // Resolved like a base image, as the stage's only step.
                st.base_name = reference.clone();
                st.cmd_total = 1;
                self.resolve_base_image(i, true)?;
            }
            other => {
                st.cmd_total = 0;
                self.use_context(i, key, other);
            }
        }
        let st = &mut self.stages[i];
        st.noinit = true;
        st.dispatched = true;
        Ok(())
    }

    /// Starts stage `i` from a local or built named context (its FROM names it).
    fn use_context(&mut self, i: usize, key: &str, context: &NamedContext) {
        let platform = self.stages[i]
            .platform
            .clone()
            .unwrap_or_else(|| self.ctx.target_platform.clone());
        let (state, image) = match context {
            NamedContext::Local { name, excludes } => (
                State::local(
                    name,
                    LocalOptions {
                        shared_key_hint: Some(format!("context:{key}")),
                        exclude_patterns: excludes.clone(),
                        session_id: self.ctx.options.session_id.clone(),
                        op: OpOptions::default()
                            .custom_name(format!("[context {key}] load from client")),
                        ..LocalOptions::default()
                    },
                ),
                None,
            ),
            NamedContext::State { state, image } => ((**state).clone(), image.as_deref().cloned()),
            NamedContext::Image(_) => unreachable!("image contexts resolve as base images"),
        };
        let st = &mut self.stages[i];
        st.state = state;
        st.platform = Some(match &image {
            Some(image) if !image.os.is_empty() && !image.architecture.is_empty() => {
                let mut p = platform.clone();
                p.os = image.os.clone();
                p.architecture = image.architecture.clone();
                p.variant = image.variant.clone();
                p
            }
            _ => platform.clone(),
        });
        st.image = image.unwrap_or_else(|| Image::empty(&platform));
        if st.unregistered {
            st.dispatched = true;
        }
    }

    fn resolve_base_image(&mut self, i: usize, reachable: bool) -> Result<(), Error> {
        let st = &self.stages[i];
        if st.base_name == "scratch" {
            let platform = self.ctx.target_platform.clone();
            let st = &mut self.stages[i];
            st.state = State::scratch();
            st.image = Image::empty(&platform);
            st.platform = Some(platform);
            if st.unregistered {
                st.dispatched = true;
            }
            return Ok(());
        }
        let location = st.location;
        let mut original = st.base_name.clone();
        if let Some((key, context)) = self.ctx.options.named_context(&original) {
            match context {
                NamedContext::Image(image) => original = image.clone(),
                other => {
                    let (key, other) = (key.to_owned(), other.clone());
                    self.use_context(i, &key, &other);
                    return Ok(());
                }
            }
        }
        let reference: Reference = original.parse().map_err(|e| {
            Error::at(
                format!(
                    "failed to parse stage name {}: {e}",
                    crate::go_quote(&original)
                ),
                location,
            )
        })?;
        let platform = st
            .platform
            .clone()
            .unwrap_or_else(|| self.ctx.target_platform.clone());
        let canonical = reference.clone().tag_name_only().to_string();
        self.stages[i].base_name = canonical.clone();
        let mut is_scratch = false;
        if reachable {
            let resolved = self
                .resolver
                .resolve_image_config(&canonical, &platform)
                .map_err(|e| {
                    // A typo of a stage name is the likely cause; say so, as BuildKit does.
                    // BuildKit's `commonImageNames`, its missing `/` included.
                    let common: Vec<String> = [
                        "alpine", "busybox", "centos", "debian", "golang", "ubuntu", "fedora",
                    ]
                    .iter()
                    .flat_map(|n| {
                        [
                            n.to_string(),
                            format!("docker.io/library{n}"),
                            format!("{n}:latest"),
                            format!("docker.io/library{n}:latest"),
                        ]
                    })
                    .collect();
                    let names = self
                        .stages
                        .iter()
                        .filter_map(|s| s.name.as_deref())
                        .chain(common.iter().map(String::as_str));
                    let message = format!(
                        "{original}: failed to resolve source metadata for {canonical}: {e}"
                    );
                    Error::at(
                        crate::suggest::with_hint(message, &original, names, true),
                        location,
                    )
                })?;
            let mut image: Image = serde_json::from_slice(&resolved.config)
                .map_err(|e| Error::at(format!("failed to parse image config: {e}"), location))?;
            image.created = None;
            let mut name = resolved.reference.clone();
            if let Some(digest) = &resolved.digest {
                let base = name.split('@').next().unwrap_or(&name).to_owned();
                name = format!("{base}@{digest}");
            }
            if image.rootfs.diff_ids.as_ref().is_none_or(Vec::is_empty) {
                is_scratch = image.history.iter().all(|h| h.empty_layer);
            }
            let st = &mut self.stages[i];
            st.base_name = name;
            st.image = image;
        }
        let st = &mut self.stages[i];
        if is_scratch {
            st.state = State::scratch();
        } else {
            let op = OpOptions::default()
                .description("com.docker.dockerfile.v1.command", st.source_code.clone())
                .location(&self.ctx.source_map, vec![range_to_pb(st.location)])
                .platform(platform.clone());
            let name = dispatch::prefix_command(&self.ctx, st, &format!("FROM {}", st.base_name));
            st.state = State::image(
                &st.base_name,
                kiln_llb::ImageOptions {
                    op: op.custom_name(name),
                    resolve_mode: if self.ctx.options.force_pull {
                        kiln_llb::ResolveMode::ForcePull
                    } else {
                        kiln_llb::ResolveMode::Default
                    },
                    ..kiln_llb::ImageOptions::default()
                },
            );
        }
        st.platform = Some(platform);
        if st.unregistered {
            st.dispatched = true;
        }
        Ok(())
    }

    fn dispatch_stages(&mut self, reachable: &BTreeSet<usize>) -> Result<(), Error> {
        for i in 0..self.stages.len() {
            if self.stages[i].noinit
                || (!self.ctx.options.all_stages
                    && (!reachable.contains(&i) || self.stages[i].dispatched))
            {
                continue;
            }
            self.init_stage(i);
            let st = &mut self.stages[i];
            st.dispatched = true;
            if st.platform.is_none() {
                st.platform = Some(self.ctx.target_platform.clone());
            }
            if !st
                .image
                .config
                .env
                .iter()
                .any(|e| e.split('=').next() == Some("PATH"))
            {
                st.image.config.env.push(format!("PATH={DEFAULT_PATH}"));
            }
            for entry in st.image.config.env.clone() {
                let (k, v) = entry.split_once('=').unwrap_or((&entry, ""));
                st.state = st.state.add_env(k, v);
            }
            if let Some(hostname) = &self.ctx.hostname {
                st.state = st.state.hostname(hostname.clone());
            }
            let options = self.ctx.options;
            if let Some(network) = options.network {
                st.state = st.state.network(network);
            }
            if let Some(parent) = &options.cgroup_parent {
                st.state = st.state.cgroup_parent(parent.clone());
            }
            // A stage based on another already has them.
            for (host, address) in &options.extra_hosts {
                let entry = (host.clone(), address.clone());
                if !st.state.meta().extra_hosts.contains(&entry) {
                    st.state = st.state.add_extra_host(host, address);
                }
            }
            for (name, soft, hard) in &options.ulimits {
                if !st.state.meta().ulimits.iter().any(|u| u.name == *name) {
                    st.state = st.state.add_ulimit(name, *soft, *hard);
                }
            }
            if let Some(name) = &st.name {
                st.ignore_cache |= options
                    .no_cache_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(name));
            }
            if !st.image.config.working_dir.is_empty() {
                let wd = st.image.config.working_dir.clone();
                dispatch::set_workdir(st, &wd);
            }
            if !st.image.config.user.is_empty() {
                let user = st.image.config.user.clone();
                st.state = st.state.user(user);
            }
            let commands = st.commands.clone();
            for cmd in &commands {
                let sources: Vec<Option<(State, bool, String)>> = cmd
                    .sources
                    .iter()
                    .map(|s| {
                        s.map(|s| {
                            (
                                self.stages[s].state.clone(),
                                self.stages[s].dispatched,
                                self.stages[s].base_name.clone(),
                            )
                        })
                    })
                    .collect();
                let mut source_paths: Vec<(usize, String)> = Vec::new();
                dispatch::dispatch(
                    &self.ctx,
                    &mut self.stages[i],
                    cmd,
                    &sources,
                    &mut source_paths,
                    &mut self.lint,
                )
                .map_err(|e| e.with_location(cmd.command.location))?;
                // Paths a COPY --from read count as used in the source stage.
                let _ = source_paths;
            }
        }
        Ok(())
    }
}

pub(crate) fn range_to_pb(range: SourceRange) -> pb::Range {
    pb::Range {
        start: Some(pb::Position {
            line: range.start.line as i32,
            character: range.start.character as i32,
        }),
        end: Some(pb::Position {
            line: range.end.line as i32,
            character: range.end.character as i32,
        }),
    }
}
