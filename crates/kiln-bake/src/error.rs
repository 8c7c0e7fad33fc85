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
    /// An HCL (or JSON) syntax or evaluation problem, `Summary; Detail` as buildx words it.
    #[error("{0}")]
    Hcl(String),
    /// Anything else, in buildx's words.
    #[error("{0}")]
    Invalid(String),
}
