//! Instruction flags (`--from=…`), declared per instruction and checked with BuildKit's
//! rules and messages (`instructions/bflag.go`).

use std::collections::BTreeMap;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    /// May repeat: `--mount=… --mount=…`.
    Strings,
}

#[derive(Debug, Clone)]
struct Flag {
    kind: FlagKind,
    values: Vec<String>,
    used: bool,
}

/// The flags an instruction accepts, and after [`Flags::parse`] the values given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    declared: BTreeMap<&'static str, Flag>,
}

impl Flags {
    pub(crate) fn bool(mut self, name: &'static str) -> Self {
        self.declare(name, FlagKind::Bool);
        self
    }

    pub(crate) fn string(mut self, name: &'static str) -> Self {
        self.declare(name, FlagKind::String);
        self
    }

    pub(crate) fn strings(mut self, name: &'static str) -> Self {
        self.declare(name, FlagKind::Strings);
        self
    }

    fn declare(&mut self, name: &'static str, kind: FlagKind) {
        self.declared.insert(
            name,
            Flag {
                kind,
                values: Vec::new(),
                used: false,
            },
        );
    }

    /// Checks the given `--flag[=value]` words against the declared flags.
    pub(crate) fn parse(mut self, given: &[String]) -> Result<Self, Error> {
        for arg in given {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(Error::new(format!("arg should start with -- : {arg}")));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let Some(flag) = self.declared.get_mut(name) else {
                return Err(Error::new(crate::suggest::with_hint(
                    format!("unknown flag: --{name}"),
                    name,
                    self.declared.keys().copied(),
                    true,
                )));
            };
            if flag.used && flag.kind != FlagKind::Strings {
                return Err(Error::new(format!("duplicate flag specified: --{name}")));
            }
            flag.used = true;
            match (flag.kind, value) {
                (FlagKind::Bool, Some("")) => {
                    return Err(Error::new(format!("missing a value on flag: --{name}")));
                }
                (FlagKind::Bool, None) => flag.values = vec!["true".to_owned()],
                (FlagKind::Bool, Some(value)) => {
                    let lower = value.to_ascii_lowercase();
                    if lower != "true" && lower != "false" {
                        return Err(Error::new(format!(
                            "expecting boolean value for flag --{name}, not: {value}"
                        )));
                    }
                    flag.values = vec![lower];
                }
                (_, None) => return Err(Error::new(format!("missing a value on flag: --{name}"))),
                (FlagKind::String, Some(value)) => flag.values = vec![value.to_owned()],
                (FlagKind::Strings, Some(value)) => flag.values.push(value.to_owned()),
            }
        }
        Ok(self)
    }

    /// Whether the flag was given at all.
    pub(crate) fn used(&self, name: &str) -> bool {
        self.declared.get(name).is_some_and(|f| f.used)
    }

    /// A string flag's value, if given.
    pub(crate) fn string_value(&self, name: &str) -> Option<String> {
        self.declared.get(name)?.values.last().cloned()
    }

    /// A string flag's value, or empty.
    pub(crate) fn value(&self, name: &str) -> String {
        self.string_value(name).unwrap_or_default()
    }

    /// A boolean flag's value (false when not given).
    pub(crate) fn is_true(&self, name: &str) -> bool {
        self.string_value(name).as_deref() == Some("true")
    }

    /// Every value of a repeatable flag, in order.
    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        self.declared
            .get(name)
            .map(|f| f.values.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn buildkit_rules() {
        let decl = || {
            Flags::default()
                .bool("link")
                .string("from")
                .strings("mount")
        };
        let f = decl()
            .parse(&args(&["--link", "--from=a", "--mount=x", "--mount=y"]))
            .unwrap();
        assert!(f.is_true("link"));
        assert_eq!(f.value("from"), "a");
        assert_eq!(f.values("mount"), ["x", "y"]);
        let err = |list: &[&str]| decl().parse(&args(list)).unwrap_err().message;
        assert_eq!(
            err(&["--form=a"]),
            "unknown flag: --form (did you mean from?)"
        );
        assert_eq!(
            err(&["--from=a", "--from=b"]),
            "duplicate flag specified: --from"
        );
        assert_eq!(err(&["--from"]), "missing a value on flag: --from");
        assert_eq!(err(&["--link="]), "missing a value on flag: --link");
        assert_eq!(
            err(&["--link=yes"]),
            "expecting boolean value for flag --link, not: yes"
        );
        assert!(
            !decl()
                .parse(&args(&["--link=FALSE"]))
                .unwrap()
                .is_true("link")
        );
    }
}
