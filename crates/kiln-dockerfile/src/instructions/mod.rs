//! Typed instructions: each [`Node`] checked with BuildKit's rules and turned into an
//! [`Instruction`], and the instructions grouped into [`Stage`]s
//! (BuildKit's `frontend/dockerfile/instructions`).
//!
//! Values that may hold variables (`--mount` options, `--chmod`, …) are kept as written;
//! they are expanded during conversion, when the build args are known. Everything that
//! can be checked without them is checked here, so a bad flag fails before any build.

mod chmod;
mod flags;
mod mount;

use crate::error::{Error, SourceRange};
use crate::parser::{Dockerfile, Heredoc, Node, chomp_heredoc_content, parse_heredoc};

pub use self::chmod::{Chmod, parse_chmod};
use self::flags::Flags;
pub use self::mount::{CacheSharing, Mount, MountType, MountValues, parse_mount};

/// `KEY=value` of ENV and LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key as written (quotes not yet processed).
    pub key: String,
    /// The value as written (quotes and variables not yet processed).
    pub value: String,
    /// The legacy `KEY value` form, without `=`.
    pub no_delimiter: bool,
}

/// One name of an ARG instruction, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub key: String,
    /// The default as written, if any (`ARG a=` has an empty one).
    pub value: Option<String>,
    /// A `# key description` comment line just before the ARG.
    pub comment: String,
}

/// A heredoc used as a COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// The file name (the heredoc's delimiter).
    pub path: String,
    /// The content (chomped for `<<-`).
    pub data: String,
    /// Whether variables in the content are expanded.
    pub expand: bool,
}

/// Sources and destination of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcesAndDest {
    /// The destination, as written.
    pub dest: String,
    /// Source paths or URLs, as written.
    pub sources: Vec<String>,
    /// Inline sources from heredocs.
    pub contents: Vec<SourceContent>,
}

/// A file given inline to RUN by a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The heredoc's delimiter.
    pub name: String,
    /// The body.
    pub data: String,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
}

/// The command of RUN, CMD and ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// The arguments: the JSON array, or one string in shell form. For ENTRYPOINT, empty
    /// means "unset" (`null` in the image config); for CMD it means `[]`.
    pub args: Vec<String>,
    /// Shell form: the stage's SHELL runs the one argument.
    pub prepend_shell: bool,
    /// Heredoc bodies.
    pub files: Vec<InlineFile>,
}

/// COPY.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyCommand {
    /// Sources and destination.
    pub paths: SourcesAndDest,
    /// `--from`: a stage name or index, an image, or a named context.
    pub from: String,
    /// `--chown`.
    pub chown: String,
    /// `--chmod` as written (octal or symbolic, perhaps with variables).
    pub chmod: String,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
}

/// ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddCommand {
    /// Sources and destination.
    pub paths: SourcesAndDest,
    /// `--chown`.
    pub chown: String,
    /// `--chmod` as written.
    pub chmod: String,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum`.
    pub checksum: String,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--unpack`, when given.
    pub unpack: Option<bool>,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunCommand {
    /// What to run.
    pub command: CommandLine,
    /// `--mount` values as written; see [`RunCommand::mounts`].
    pub mount_specs: Vec<String>,
    /// `--network`: `default`, `none` or `host`.
    pub network: String,
    /// `--security`: `sandbox` or `insecure`.
    pub security: String,
    /// `--device` values as written.
    pub devices: Vec<String>,
    /// The flags that were given, by name.
    pub flags_used: Vec<String>,
}

impl RunCommand {
    /// The mounts, each option value expanded with `expand`.
    pub fn mounts(
        &self,
        expand: &dyn Fn(&str) -> Result<String, Error>,
    ) -> Result<Vec<Mount>, Error> {
        self.mount_specs
            .iter()
            .map(|spec| parse_mount(spec, &MountValues::Expand(expand)))
            .collect()
    }
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`, in nanoseconds (0 when not given).
    pub interval: i64,
    /// `--timeout`, in nanoseconds.
    pub timeout: i64,
    /// `--start-period`, in nanoseconds.
    pub start_period: i64,
    /// `--start-interval`, in nanoseconds.
    pub start_interval: i64,
    /// `--retries`.
    pub retries: i32,
}

/// FROM: the start of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FromCommand {
    /// The base: an image reference, a stage name or `scratch`, as written.
    pub base_name: String,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// `--platform`, as written.
    pub platform: Option<String>,
    /// A `# name description` comment just before FROM.
    pub comment: String,
}

/// A typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Instruction {
    Add(AddCommand),
    Arg(Vec<ArgDecl>),
    Cmd(CommandLine),
    Copy(CopyCommand),
    Entrypoint(CommandLine),
    Env(Vec<KeyValue>),
    /// Ports as written, sorted.
    Expose(Vec<String>),
    From(FromCommand),
    Healthcheck(Healthcheck),
    Label(Vec<KeyValue>),
    Maintainer(String),
    /// The trigger instruction, as written (heredoc bodies appended).
    Onbuild(String),
    Run(RunCommand),
    Shell(Vec<String>),
    StopSignal(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// What it does.
    pub instruction: Instruction,
    /// The keyword as written.
    pub keyword: String,
    /// The instruction's text, trimmed (used in history and progress).
    pub code: String,
    /// Its lines.
    pub location: SourceRange,
}

/// A build stage: a FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The FROM that starts it.
    pub from: FromCommand,
    /// Position among the stages (what `COPY --from=0` names).
    pub index: usize,
    /// The FROM instruction's text.
    pub code: String,
    /// The FROM's lines.
    pub location: SourceRange,
    /// The instructions after FROM.
    pub commands: Vec<Command>,
}

/// A Dockerfile as stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instructions {
    /// ARGs before the first FROM.
    pub meta_args: Vec<Command>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The labs channel's instructions and flags are on (see [`Features`]).
    pub features: Features,
}

/// What the Dockerfile's `# syntax=` directive turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// `docker/dockerfile:…-labs`: `COPY --parents`, `COPY`/`ADD --exclude`,
    /// `RUN --security` and `RUN --device`; without it they are unknown flags (or, for
    /// devices, refused), as in BuildKit's built-in frontend.
    pub labs: bool,
}

impl Features {
    /// The features a parsed Dockerfile's directives ask for.
    pub fn of(dockerfile: &Dockerfile) -> Self {
        let labs = dockerfile
            .directives
            .iter()
            .find(|d| d.name == "syntax")
            .and_then(|d| d.value.split(' ').next())
            .is_some_and(crate::parser::is_labs_syntax);
        Self { labs }
    }
}

impl Instructions {
    /// The stage with this name (case-insensitive) or index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.from.name.as_deref() == Some(lower.as_str()))
            .or_else(|| lower.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

/// The instructions BuildKit knows, for "did you mean" hints.
const KNOWN_INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Groups a parsed Dockerfile into stages, checking every instruction.
pub fn parse(dockerfile: &Dockerfile) -> Result<Instructions, Error> {
    let features = Features::of(dockerfile);
    let mut out = Instructions {
        features,
        ..Instructions::default()
    };
    for node in &dockerfile.children {
        let command = parse_command(node, features).map_err(Error::in_instruction)?;
        match command.instruction {
            Instruction::From(from) => out.stages.push(Stage {
                from,
                index: out.stages.len(),
                code: command.code,
                location: command.location,
                commands: Vec::new(),
            }),
            Instruction::Arg(_) if out.stages.is_empty() => out.meta_args.push(command),
            _ => match out.stages.last_mut() {
                Some(stage) => stage.commands.push(command),
                None => {
                    return Err(Error::at(
                        "no build stage in current context",
                        node.location,
                    ));
                }
            },
        }
    }
    Ok(out)
}

/// Checks one node and turns it into a [`Command`].
pub fn parse_command(node: &Node, features: Features) -> Result<Command, Error> {
    let instruction =
        parse_instruction(node, features).map_err(|e| e.with_location(node.location))?;
    Ok(Command {
        instruction,
        keyword: node.keyword.clone(),
        code: node.original.trim().to_owned(),
        location: node.location,
    })
}

/// The arguments as BuildKit's `nodeArgs` flattens them (ONBUILD: the trigger's keyword
/// and its arguments).
fn node_args(node: &Node) -> Vec<String> {
    match &node.sub {
        Some(sub) => {
            let mut args = vec![sub.keyword.clone()];
            args.extend(node_args(sub));
            args
        }
        None => node.args.clone(),
    }
}

fn parse_instruction(node: &Node, features: Features) -> Result<Instruction, Error> {
    let args = node_args(node);
    let keyword = node.command();
    let no_flags = || Flags::default().parse(&node.flags);
    Ok(match keyword.as_str() {
        "env" => {
            no_flags()?;
            Instruction::Env(key_values(&args, "ENV")?)
        }
        "label" => {
            no_flags()?;
            Instruction::Label(key_values(&args, "LABEL")?)
        }
        "maintainer" => {
            let value = exactly_one(&args, "MAINTAINER")?;
            no_flags()?;
            Instruction::Maintainer(value)
        }
        "add" => Instruction::Add(parse_add(node, &args, features)?),
        "copy" => Instruction::Copy(parse_copy(node, &args, features)?),
        "from" => Instruction::From(parse_from(node, &args)?),
        "onbuild" => Instruction::Onbuild(parse_onbuild(node, &args)?),
        "workdir" => {
            let value = exactly_one(&args, "WORKDIR")?;
            no_flags()?;
            Instruction::Workdir(value)
        }
        "run" => Instruction::Run(parse_run(node, &args, features)?),
        "cmd" => {
            no_flags()?;
            Instruction::Cmd(command_line(node, &args))
        }
        "entrypoint" => {
            no_flags()?;
            Instruction::Entrypoint(command_line(node, &args))
        }
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(node, &args)?),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags()?;
            let mut ports = args;
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            let value = exactly_one(&args, "USER")?;
            no_flags()?;
            Instruction::User(value)
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags()?;
            let mut volumes = Vec::with_capacity(args.len());
            for volume in &args {
                let volume = volume.trim();
                if volume.is_empty() {
                    return Err(Error::new("VOLUME specified can not be an empty string"));
                }
                volumes.push(volume.to_owned());
            }
            Instruction::Volume(volumes)
        }
        // BuildKit does not look at STOPSIGNAL's or ARG's flags.
        "stopsignal" => Instruction::StopSignal(exactly_one(&args, "STOPSIGNAL")?),
        "arg" => Instruction::Arg(parse_arg(node, &args)?),
        "shell" => {
            no_flags()?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(Error::new(
                    "SHELL requires the arguments to be in JSON form",
                ));
            }
            Instruction::Shell(args)
        }
        _ => {
            return Err(Error::new(crate::suggest::with_hint(
                format!("unknown instruction: {}", node.keyword),
                &node.keyword,
                KNOWN_INSTRUCTIONS,
                false,
            )));
        }
    })
}

fn at_least_one(command: &str) -> Error {
    Error::new(format!("{command} requires at least one argument"))
}

fn exactly_one(args: &[String], command: &str) -> Result<String, Error> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(Error::new(format!(
            "{command} requires exactly one argument"
        ))),
    }
}

fn key_values(args: &[String], command: &str) -> Result<Vec<KeyValue>, Error> {
    if args.is_empty() {
        return Err(at_least_one(command));
    }
    if !args.len().is_multiple_of(3) {
        return Err(Error::new(format!(
            "Bad input to {command}, too many arguments"
        )));
    }
    args.chunks(3)
        .map(|triple| {
            if triple[0].is_empty() {
                return Err(Error::new(format!("{command} names can not be blank")));
            }
            Ok(KeyValue {
                key: triple[0].clone(),
                value: triple[1].clone(),
                no_delimiter: triple[2].is_empty(),
            })
        })
        .collect()
}

/// `# name description` comments: the text after `name `.
fn comment_for(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_owned()
}

fn parse_arg(node: &Node, args: &[String]) -> Result<Vec<ArgDecl>, Error> {
    if args.is_empty() {
        return Err(at_least_one("ARG"));
    }
    args.iter()
        .map(|arg| {
            let (key, value) = match arg.split_once('=') {
                Some(("", _)) => return Err(Error::new("ARG names can not be blank")),
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            let comment = comment_for(&node.comments, &key);
            Ok(ArgDecl {
                key,
                value,
                comment,
            })
        })
        .collect()
}

fn parse_from(node: &Node, args: &[String]) -> Result<FromCommand, Error> {
    let name = match args {
        [_] => None,
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(Error::new(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::go_quote(name)
                )));
            }
            Some(lower)
        }
        _ => return Err(Error::new("FROM requires either one or three arguments")),
    };
    let flags = Flags::default().string("platform").parse(&node.flags)?;
    let comment = comment_for(&node.comments, name.as_deref().unwrap_or_default());
    Ok(FromCommand {
        base_name: args[0].clone(),
        name,
        platform: flags.string_value("platform"),
        comment,
    })
}

fn parse_onbuild(node: &Node, args: &[String]) -> Result<String, Error> {
    let Some(trigger) = args.first() else {
        return Err(at_least_one("ONBUILD"));
    };
    Flags::default().parse(&node.flags)?;
    let trigger = trigger.trim().to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(Error::new(
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ));
        }
        "MAINTAINER" | "FROM" => {
            return Err(Error::new(format!(
                "{trigger} isn't allowed as an ONBUILD trigger"
            )));
        }
        _ => {}
    }
    // The original text without the leading `ONBUILD` (any case) and the blanks after it.
    let original = node.original.trim_start();
    let mut expression = match original.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => original[7..].trim_start().to_owned(),
        _ => original.to_owned(),
    };
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(expression)
}

/// BuildKit's `handleJSONArgs`: exec form as is, shell form joined into one string.
fn command_line(node: &Node, args: &[String]) -> CommandLine {
    let args = if args.is_empty() || node.json {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    };
    CommandLine {
        args,
        prepend_shell: !node.json,
        files: node
            .heredocs
            .iter()
            .map(|doc| InlineFile {
                name: doc.name.clone(),
                data: doc.content.clone(),
                chomp: doc.chomp,
            })
            .collect(),
    }
}

fn parse_run(node: &Node, args: &[String], features: Features) -> Result<RunCommand, Error> {
    let mut flags = Flags::default()
        .strings("mount")
        .string("network")
        .strings("device");
    if features.labs {
        flags = flags.string("security");
    }
    let flags = flags.parse(&node.flags)?;
    let mount_specs = flags.values("mount");
    for spec in &mount_specs {
        parse_mount(spec, &MountValues::Deferred)?;
    }
    // Taken as written: BuildKit does not expand `--network`.
    let network = flags
        .string_value("network")
        .unwrap_or_else(|| "default".to_owned());
    if !matches!(network.as_str(), "default" | "none" | "host") {
        return Err(Error::new(format!(
            "invalid network mode {}",
            crate::go_quote(&network)
        )));
    }
    let security = flags
        .string_value("security")
        .unwrap_or_else(|| "sandbox".to_owned());
    if !matches!(security.as_str(), "sandbox" | "insecure") {
        return Err(Error::new(format!(
            "unsupported security mode {}",
            crate::go_quote(&security)
        )));
    }
    let flags_used = ["mount", "network", "security", "device"]
        .into_iter()
        .filter(|name| flags.used(name))
        .map(str::to_owned)
        .collect();
    Ok(RunCommand {
        command: command_line(node, args),
        mount_specs,
        network,
        security,
        devices: flags.values("device"),
        flags_used,
    })
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Healthcheck, Error> {
    let Some(kind) = args.first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let kind = kind.to_ascii_uppercase();
    let rest = &args[1..];
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err(Error::new("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(Healthcheck {
            test: vec![kind],
            ..Healthcheck::default()
        });
    }
    let flags = Flags::default()
        .string("interval")
        .string("timeout")
        .string("start-period")
        .string("start-interval")
        .string("retries")
        .parse(&node.flags)?;
    if kind != "CMD" {
        return Err(Error::new(format!(
            "Unknown type \"{kind}\" in HEALTHCHECK (try CMD)"
        )));
    }
    let command = command_line(node, rest).args;
    if command.is_empty() {
        return Err(Error::new("Missing command after HEALTHCHECK CMD"));
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_owned()];
    test.extend(command);
    let interval = |name: &str| -> Result<i64, Error> {
        let value = flags.value(name);
        if value.is_empty() {
            return Ok(0);
        }
        let nanos = kiln_oci::go::parse_duration(&value).map_err(Error::new)?;
        if nanos != 0 && nanos < 1_000_000 {
            return Err(Error::new(format!(
                "Interval \"{name}\" cannot be less than 1ms"
            )));
        }
        Ok(nanos)
    };
    let retries = match flags.string_value("retries") {
        None => 0,
        Some(value) => {
            let retries: i64 = value.parse().map_err(|_| {
                Error::new(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    crate::go_quote(&value)
                ))
            })?;
            if retries < 0 {
                return Err(Error::new(format!(
                    "--retries cannot be negative ({retries})"
                )));
            }
            i32::try_from(retries).map_err(|_| {
                Error::new(format!(
                    "strconv.ParseInt: parsing {}: value out of range",
                    crate::go_quote(&value)
                ))
            })?
        }
    };
    Ok(Healthcheck {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

fn sources_and_dest(node: &Node, args: &[String], command: &str) -> Result<SourcesAndDest, Error> {
    let Some((dest, sources)) = args.split_last().filter(|(_, sources)| !sources.is_empty()) else {
        return Err(Error::new(format!(
            "{command} requires at least two arguments, but only one was provided. Destination could not be determined"
        )));
    };
    // BuildKit ignores lexing errors here (`MustParseHeredoc`).
    if parse_heredoc(dest).ok().flatten().is_some() {
        return Err(Error::new(format!(
            "{command} cannot accept a heredoc as a destination"
        )));
    }
    let mut out = SourcesAndDest {
        dest: dest.clone(),
        ..SourcesAndDest::default()
    };
    for source in sources {
        match parse_heredoc(source).ok().flatten() {
            Some(doc) => {
                let body: Option<&Heredoc> =
                    node.heredocs.iter().rev().find(|h| h.name == doc.name);
                let mut data = body.map(|h| h.content.clone()).unwrap_or_default();
                if doc.chomp {
                    data = chomp_heredoc_content(&data);
                }
                out.contents.push(SourceContent {
                    path: doc.name,
                    data,
                    expand: doc.expand,
                });
            }
            None => out.sources.push(source.clone()),
        }
    }
    Ok(out)
}

fn parse_copy(node: &Node, args: &[String], features: Features) -> Result<CopyCommand, Error> {
    if args.len() < 2 {
        return Err(Error::new(
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ));
    }
    let mut flags = Flags::default()
        .string("from")
        .string("chown")
        .string("chmod")
        .bool("link");
    if features.labs {
        flags = flags.bool("parents").strings("exclude");
    }
    let flags = flags.parse(&node.flags)?;
    Ok(CopyCommand {
        paths: sources_and_dest(node, args, "COPY")?,
        from: flags.value("from"),
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.is_true("link"),
        parents: flags.is_true("parents"),
        excludes: flags.values("exclude"),
    })
}

fn parse_add(node: &Node, args: &[String], features: Features) -> Result<AddCommand, Error> {
    if args.len() < 2 {
        return Err(Error::new(
            "ADD requires at least two arguments, but only one was provided. Destination could not be determined",
        ));
    }
    let mut flags = Flags::default()
        .string("chown")
        .string("chmod")
        .bool("link")
        .bool("keep-git-dir")
        .string("checksum")
        .bool("unpack");
    if features.labs {
        flags = flags.strings("exclude");
    }
    let flags = flags.parse(&node.flags)?;
    Ok(AddCommand {
        paths: sources_and_dest(node, args, "ADD")?,
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.is_true("link"),
        keep_git_dir: flags.is_true("keep-git-dir"),
        checksum: flags.value("checksum"),
        excludes: flags.values("exclude"),
        unpack: flags.used("unpack").then(|| flags.is_true("unpack")),
    })
}
