//! Progress displays. Only BuildKit's `plain` format exists so far (`auto` and `tty`
//! use it too).

pub(crate) mod plain;
