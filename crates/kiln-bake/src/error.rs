//! Bake errors, in buildx's words.

use thiserror::Error;

/// What can go wrong reading or resolving Bake files.
#[derive(Debug, Error)]
pub enum Error {
    /// A Bake file that cannot be read.
    #[error("failed to read {name}")]
    Read {
        /// The file as named (`-f`, or a default name).
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No file was named and none of the default ones is there.
    #[error("couldn't find a bake definition")]
    NoDefinition,
    /// A target or group that is not defined.
    #[error("failed to find target {0}")]
    UnknownTarget(String),
    /// A `target:` context that names its own target.
    #[error("target {0} cannot link to itself")]
    SelfLink(String),
    /// `target:` contexts that lead back to where they started.
    #[error("infinite loop from {from} to {to}")]
    LinkLoop {
        /// The target whose context links.
        from: String,
        /// The target it links to, already on the way.
        to: String,
    },
    /// A linked target that does not build every platform its user builds (buildx's
    /// words, which call the user's platforms "its").
    #[error(
        "target {linked} can't be used by {user} because its platforms [{}] are not a subset of [{}]",
        user_platforms.join(" "),
        linked_platforms.join(" ")
    )]
    LinkPlatforms {
        /// The linked target.
        linked: String,
        /// The target using it.
        user: String,
        /// The user's platforms.
        user_platforms: Vec<String>,
        /// The linked target's platforms.
        linked_platforms: Vec<String>,
    },
    /// An HCL (or JSON) syntax or evaluation problem: HCL's diagnostic text,
    /// `[file:line,col: ]Summary; Detail`, exactly as buildx prints it (the function
    /// library returns go-cty's error texts, which are the diagnostics' details).
    #[error("{0}")]
    Hcl(String),
    /// A Compose file that is not YAML.
    #[error("{file}: invalid compose file")]
    ComposeSyntax {
        /// The file as named.
        file: String,
        /// The YAML error.
        #[source]
        source: serde_norway::Error,
    },
    /// A Compose file Bake cannot use, in buildx's words.
    #[error("{file}: {problem}")]
    Compose {
        /// The file as named.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// A Compose service whose name cannot name a target.
    #[error(
        "failed to parse compose file: invalid service name \"{0}\": only \"[a-zA-Z0-9_-]+\" are allowed"
    )]
    ServiceName(String),
    /// A Compose `shm_size` that is not a size.
    #[error("invalid shm_size {0:?}")]
    ShmSize(String),
    /// A target pattern (`bake 'app-*'`, `--set 'app-*.args.X=1'`) that matches nothing.
    #[error("could not find any target matching {quoted}")]
    NoMatch {
        /// The pattern, quoted as buildx quotes it there.
        quoted: String,
    },
    /// A target pattern that is not a valid pattern.
    #[error("could not match targets with '{0}': syntax error in pattern")]
    BadPattern(String),
    /// A `--set` that buildx refuses, in its words.
    #[error("{0}")]
    Override(String),
    /// A target's value that a build would refuse (buildx's `toBuildOpt`), in its words.
    #[error("{0}")]
    Target(String),
}
