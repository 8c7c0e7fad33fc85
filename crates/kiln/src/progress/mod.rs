//! Progress displays and build-check reports. Only BuildKit's `plain` format exists so
//! far (`auto` and `tty` use it too).

pub(crate) mod checks;
pub(crate) mod plain;
