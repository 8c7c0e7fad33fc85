//! Platforms (`linux/amd64`, `linux/arm/v7`), normalised the containerd way.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A platform as an OCI image index names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … (empty when the architecture has no variants or uses the default).
    pub variant: String,
    /// Windows only.
    pub os_version: String,
    /// Windows only.
    pub os_features: Vec<String>,
}

/// A platform string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid platform {input:?}: {reason}")]
pub struct PlatformError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Platform {
    /// `linux/<arch>` for an architecture name, normalised.
    pub fn linux(architecture: &str) -> Self {
        Self {
            os: "linux".to_owned(),
            ..Self::default()
        }
        .with_architecture(architecture, "")
    }

    /// The platform this program runs on (`linux/amd64` on x86-64).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self::linux(arch)
    }

    fn with_architecture(mut self, architecture: &str, variant: &str) -> Self {
        (self.architecture, self.variant) = normalize_arch(architecture, variant);
        self
    }

    /// containerd's `platforms.Normalize`: the OS lowercased (`macos` is `darwin`),
    /// architecture aliases to their canonical names, default variants dropped. BuildKit
    /// normalises every op's platform so before keying it.
    pub fn normalized(&self) -> Self {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        Self {
            os,
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            ..Self::default()
        }
        .with_architecture(&self.architecture, &self.variant)
    }
}

/// containerd's `normalizeArch`: aliases to canonical names, default variants dropped.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (arch, variant) = (arch.to_ascii_lowercase(), variant.to_ascii_lowercase());
    let (arch, variant): (&str, String) = match arch.as_str() {
        "i386" => ("386", String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            if variant == "v1" { "" } else { &variant }.to_owned(),
        ),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_owned(),
                _ => variant,
            },
        ),
        "armhf" => ("arm", "v7".to_owned()),
        "armel" => ("arm", "v6".to_owned()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        _ => (&arch, variant),
    };
    (arch.to_owned(), variant)
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os[/arch[/variant]]` or a bare architecture, normalised like containerd's
    /// `platforms.Parse` + `Normalize`.
    fn from_str(input: &str) -> Result<Self, PlatformError> {
        let error = |reason| PlatformError {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(error("expected os[/arch[/variant]]"));
        }
        let os = parts[0].to_ascii_lowercase();
        let known_os = matches!(
            os.as_str(),
            "linux"
                | "windows"
                | "darwin"
                | "freebsd"
                | "netbsd"
                | "openbsd"
                | "solaris"
                | "illumos"
                | "aix"
        );
        let platform = match parts.as_slice() {
            [single] if !known_os => Self::host_os().with_architecture(single, ""),
            [_] => Self {
                os,
                ..Self::default()
            }
            .with_architecture(&Self::host().architecture, ""),
            [_, arch] => Self {
                os,
                ..Self::default()
            }
            .with_architecture(arch, ""),
            [_, arch, variant] => Self {
                os,
                ..Self::default()
            }
            .with_architecture(arch, variant),
            _ => return Err(error("expected os[/arch[/variant]]")),
        };
        Ok(platform)
    }
}

impl Platform {
    fn host_os() -> Self {
        Self {
            os: "linux".to_owned(),
            ..Self::default()
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> String {
        s.parse::<Platform>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_containerd() {
        assert_eq!(parse("linux/amd64"), "linux/amd64");
        assert_eq!(parse("linux/x86_64"), "linux/amd64");
        assert_eq!(parse("linux/arm64/v8"), "linux/arm64");
        assert_eq!(parse("linux/aarch64"), "linux/arm64");
        assert_eq!(parse("linux/arm"), "linux/arm/v7");
        assert_eq!(parse("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(parse("linux/arm/6"), "linux/arm/v6");
        assert_eq!(parse("linux/ARM64/8"), "linux/arm64");
        assert_eq!(parse("linux/arm64/9.0"), "linux/arm64/v9");
        assert_eq!(parse("arm64"), "linux/arm64");
        assert_eq!(parse("Linux/AMD64"), "linux/amd64");
        assert!("linux//amd64".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn a_platform_as_given_is_normalised_like_containerd() {
        let given = |os: &str, architecture: &str, variant: &str| Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
            ..Platform::default()
        };
        assert_eq!(
            given("Linux", "aarch64", "v8").normalized(),
            given("linux", "arm64", "")
        );
        assert_eq!(
            given("macos", "x86_64", "v1").normalized(),
            given("darwin", "amd64", "")
        );
        assert_eq!(
            given("linux", "arm", "").normalized(),
            given("linux", "arm", "v7")
        );
        assert_eq!(
            given("linux", "riscv64", "").normalized(),
            given("linux", "riscv64", "")
        );
    }
}
