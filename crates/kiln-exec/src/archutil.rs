//! The platforms this machine runs processes of, detected as BuildKit's
//! `util/archutil` does: the native one (with the amd64 micro-architecture levels the
//! CPU has), then each other architecture whose tiny static probe binary runs, chrooted
//! into an empty directory so that only binfmt_misc handlers registered with the `F`
//! (fix binary) flag count, as they are the ones that also work inside containers.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use kiln_oci::Platform;

/// A probe: an ELF executable of one architecture that only exits with status 0.
struct Probe {
    /// GOARCH name, as platforms are named.
    architecture: &'static str,
    /// ELFCLASS64 rather than ELFCLASS32.
    class64: bool,
    big_endian: bool,
    /// `e_machine`.
    machine: u16,
    /// `e_flags` (the ABI the loader expects).
    flags: u32,
    /// `exit(0)`, in the architecture's instructions and byte order.
    code: &'static [u8],
}

/// In BuildKit's order of `SupportedPlatforms`. mips64 and mips64le are left out: the
/// Debian emulators do not run BuildKit's probes for them either.
const PROBES: &[Probe] = &[
    Probe {
        architecture: "amd64",
        class64: true,
        big_endian: false,
        machine: 62,
        flags: 0,
        // mov eax, 60; xor edi, edi; syscall
        code: &[0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05],
    },
    Probe {
        architecture: "arm64",
        class64: true,
        big_endian: false,
        machine: 183,
        flags: 0,
        // mov x0, #0; mov x8, #93; svc #0
        code: &[
            0x00, 0x00, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4,
        ],
    },
    Probe {
        architecture: "riscv64",
        class64: true,
        big_endian: false,
        machine: 243,
        flags: 0,
        // li a0, 0; li a7, 93; ecall
        code: &[
            0x13, 0x05, 0x00, 0x00, 0x93, 0x08, 0xd0, 0x05, 0x73, 0x00, 0x00, 0x00,
        ],
    },
    Probe {
        architecture: "ppc64",
        class64: true,
        big_endian: true,
        machine: 21,
        // ELFv2: the entry point is code, not a function descriptor.
        flags: 2,
        // li r0, 1; li r3, 0; sc
        code: &[
            0x38, 0x00, 0x00, 0x01, 0x38, 0x60, 0x00, 0x00, 0x44, 0x00, 0x00, 0x02,
        ],
    },
    Probe {
        architecture: "ppc64le",
        class64: true,
        big_endian: false,
        machine: 21,
        flags: 2,
        code: &[
            0x01, 0x00, 0x00, 0x38, 0x00, 0x00, 0x60, 0x38, 0x02, 0x00, 0x00, 0x44,
        ],
    },
    Probe {
        architecture: "s390x",
        class64: true,
        big_endian: true,
        machine: 22,
        flags: 0,
        // lghi %r2, 0; svc 1
        code: &[0xa7, 0x29, 0x00, 0x00, 0x0a, 0x01],
    },
    Probe {
        architecture: "386",
        class64: false,
        big_endian: false,
        machine: 3,
        flags: 0,
        // mov eax, 1; xor ebx, ebx; int 0x80
        code: &[0xb8, 0x01, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x80],
    },
    Probe {
        architecture: "loong64",
        class64: true,
        big_endian: false,
        machine: 258,
        // LP64D, object file ABI v1.
        flags: 0x43,
        // addi.w $a0, $zero, 0; addi.w $a7, $zero, 93; syscall 0
        code: &[
            0x04, 0x00, 0x80, 0x02, 0x0b, 0x74, 0x81, 0x02, 0x00, 0x00, 0x2b, 0x00,
        ],
    },
    Probe {
        architecture: "arm",
        class64: false,
        big_endian: false,
        machine: 40,
        // EABI version 5 (syscall number in r7).
        flags: 0x0500_0000,
        // mov r0, #0; mov r7, #1; svc #0
        code: &[
            0x00, 0x00, 0xa0, 0xe3, 0x01, 0x70, 0xa0, 0xe3, 0x00, 0x00, 0x00, 0xef,
        ],
    },
];

/// Where the probe is loaded.
const BASE: u64 = 0x40_0000;

impl Probe {
    /// The probe as an ELF executable: a header, one loadable segment (the whole file),
    /// and the code right after them.
    fn elf(&self) -> Vec<u8> {
        let (header_size, phdr_size): (u16, u16) = if self.class64 { (64, 56) } else { (52, 32) };
        let entry = BASE + u64::from(header_size) + u64::from(phdr_size);
        let total = u64::from(header_size) + u64::from(phdr_size) + self.code.len() as u64;
        let mut out = Vec::new();
        let u16b = |out: &mut Vec<u8>, v: u16| {
            out.extend(if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let u32b = |out: &mut Vec<u8>, v: u32| {
            out.extend(if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let word = |out: &mut Vec<u8>, v: u64| {
            if self.class64 {
                out.extend(if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                })
            } else {
                u32b(out, v as u32)
            }
        };
        out.extend([0x7f, b'E', b'L', b'F']);
        out.push(if self.class64 { 2 } else { 1 });
        out.push(if self.big_endian { 2 } else { 1 });
        out.push(1); // EI_VERSION
        out.resize(16, 0);
        u16b(&mut out, 2); // ET_EXEC
        u16b(&mut out, self.machine);
        u32b(&mut out, 1); // EV_CURRENT
        word(&mut out, entry);
        word(&mut out, u64::from(header_size)); // e_phoff
        word(&mut out, 0); // e_shoff
        u32b(&mut out, self.flags);
        u16b(&mut out, header_size);
        u16b(&mut out, phdr_size);
        u16b(&mut out, 1); // e_phnum
        u16b(&mut out, 0); // e_shentsize
        u16b(&mut out, 0); // e_shnum
        u16b(&mut out, 0); // e_shstrndx
        const PT_LOAD: u32 = 1;
        const PF_R_X: u32 = 5;
        const ALIGN: u64 = 0x1_0000;
        u32b(&mut out, PT_LOAD);
        if self.class64 {
            u32b(&mut out, PF_R_X);
        }
        word(&mut out, 0); // p_offset
        word(&mut out, BASE); // p_vaddr
        word(&mut out, BASE); // p_paddr
        word(&mut out, total); // p_filesz
        word(&mut out, total); // p_memsz
        if !self.class64 {
            u32b(&mut out, PF_R_X);
        }
        word(&mut out, ALIGN);
        out.extend(self.code);
        out
    }

    /// Whether the probe runs here: written to an empty directory and run chrooted in it.
    fn runs(&self) -> bool {
        use fs_err::os::unix::fs::OpenOptionsExt as _;
        let Ok(dir) = tempfile_dir() else {
            return false;
        };
        let written = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(dir.path().join("check"))
            .and_then(|mut f| f.write_all(&self.elf()));
        written.is_ok()
            && Command::new("chroot")
                .arg(dir.path())
                .arg("/check")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }
}

/// An empty directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> std::io::Result<TempDir> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "kiln-qemu-check-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs_err::create_dir(&path)?;
    Ok(TempDir(path))
}

/// The x86-64 micro-architecture levels above v1 this CPU has (`v2`, `v3`, `v4`), as
/// `go-archvariant` finds them.
fn amd64_levels() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let v2 = has!("cmpxchg16b")
            && has!("popcnt")
            && has!("sse3")
            && has!("sse4.1")
            && has!("sse4.2")
            && has!("ssse3");
        let v3 = v2
            && has!("avx")
            && has!("avx2")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("fma")
            && has!("lzcnt")
            && has!("movbe");
        let v4 = v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl");
        [(v2, "v2"), (v3, "v3"), (v4, "v4")]
            .into_iter()
            .filter_map(|(has, level)| has.then_some(level))
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

fn linux(architecture: &str, variant: &str) -> Platform {
    Platform {
        os: "linux".to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
        ..Platform::default()
    }
}

/// Every platform this machine runs processes of, native first, in BuildKit's order
/// (`linux/amd64, linux/amd64/v2, …, linux/arm64, …, linux/arm/v7, linux/arm/v6`).
/// Probed once per process.
pub fn supported_platforms() -> &'static [Platform] {
    static PLATFORMS: OnceLock<Vec<Platform>> = OnceLock::new();
    PLATFORMS.get_or_init(|| detect(&Platform::host(), &|probe| probe.runs()))
}

fn detect(native: &Platform, runs: &dyn Fn(&Probe) -> bool) -> Vec<Platform> {
    let mut found = vec![native.clone()];
    for probe in PROBES {
        let is_native = probe.architecture == native.architecture;
        match probe.architecture {
            "amd64" if is_native || runs(probe) => {
                if !is_native {
                    found.push(linux("amd64", ""));
                }
                if is_native {
                    found.extend(amd64_levels().into_iter().map(|v| linux("amd64", v)));
                }
            }
            "arm" if is_native => found.push(linux("arm", "v6")),
            "arm" if runs(probe) => {
                found.push(linux("arm", "v7"));
                found.push(linux("arm", "v6"));
            }
            _ if !is_native && runs(probe) => found.push(linux(probe.architecture, "")),
            _ => {}
        }
    }
    found
}

/// Whether processes of `platform` run here (natively or through a registered
/// emulator): its architecture and variant are among [`supported_platforms`] (an
/// `arm` without variant is `arm/v7`).
pub fn is_supported(platform: &Platform) -> bool {
    let variant = match (platform.architecture.as_str(), platform.variant.as_str()) {
        ("arm", "") => "v7",
        (_, variant) => variant,
    };
    // The native platform needs no probe.
    let native = Platform::host();
    if platform.os == native.os
        && platform.architecture == native.architecture
        && variant == native.variant
    {
        return true;
    }
    supported_platforms().iter().any(|p| {
        p.os == platform.os && p.architecture == platform.architecture && p.variant == variant
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_headers_are_well_formed() {
        for probe in PROBES {
            let elf = probe.elf();
            assert_eq!(&elf[..4], b"\x7fELF");
            let header = if probe.class64 { 64 } else { 52 };
            let phdr = if probe.class64 { 56 } else { 32 };
            assert_eq!(
                elf.len(),
                header + phdr + probe.code.len(),
                "{}",
                probe.architecture
            );
        }
    }

    #[test]
    fn order_is_buildkit_s() {
        let native = linux("amd64", "");
        let all = detect(&native, &|p| p.architecture != "riscv64");
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        let levels = amd64_levels().len();
        assert_eq!(names[0], "linux/amd64");
        assert_eq!(
            names[1 + levels..],
            [
                "linux/arm64",
                "linux/ppc64",
                "linux/ppc64le",
                "linux/s390x",
                "linux/386",
                "linux/loong64",
                "linux/arm/v7",
                "linux/arm/v6"
            ]
        );
    }
}
