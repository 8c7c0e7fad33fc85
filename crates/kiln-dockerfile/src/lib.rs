//! Dockerfile frontend: directives, parser, heredocs, shell lexer, typed instructions,
//! build checks, and the conversion to LLB plus an image config.
//!
//! Four layers, each usable on its own:
//! - [`parser`]: bytes to [`parser::Node`]s, BuildKit's way (directives, continuations,
//!   JSON vs shell form, flags, ONBUILD, heredocs), each with its line range;
//! - [`shell`]: BuildKit's word expansion ([`shell::Lexer`]);
//! - [`instructions`]: nodes to typed, validated instructions grouped into stages;
//! - [`convert`]: stages to LLB (`kiln_llb::State`) and a `kiln_oci::image::Image`, as
//!   BuildKit's `dockerfile2llb` converts them, with its build checks (lint), outline
//!   and targets; images are resolved through [`convert::ImageResolver`], the one
//!   callback a conversion makes.
//!
//! This crate must not depend on the engine (solver, worker, store, exec, export): a
//! frontend only produces LLB.

pub mod convert;
mod error;
pub mod instructions;
pub mod parser;
mod quote;
pub mod shell;
mod suggest;

pub use error::{Error, Position, SourceRange};
pub use quote::go_quote;

/// Reads a Dockerfile completely: parses it and checks every instruction.
pub fn read(source: &[u8]) -> Result<(parser::Dockerfile, instructions::Instructions), Error> {
    let dockerfile = parser::parse(source)?;
    let stages = instructions::parse(&dockerfile)?;
    Ok((dockerfile, stages))
}
