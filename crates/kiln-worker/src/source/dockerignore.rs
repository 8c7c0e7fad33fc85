//! `.dockerignore` patterns: LLB's own (`kiln_llb::patterns`), with their errors as
//! the worker reports them.

pub(crate) use kiln_llb::patterns::Matcher;
