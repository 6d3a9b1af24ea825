//! The interpreter the wheels are for: its PEP 508 marker environment and the wheel tags it
//! accepts, best first, in the order of `packaging.tags.sys_tags()` (what pip uses).

use std::collections::HashMap;

use pep508_rs::MarkerEnvironment;

/// The C library of a Linux target: decides manylinux vs musllinux tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Libc {
    Glibc { major: u16, minor: u16 },
    Musl { major: u16, minor: u16 },
}

/// A CPython on Linux, the only kind of interpreter the module embeds.
#[derive(Clone, Debug)]
pub struct TargetPython {
    /// `(major, minor, micro)`, e.g. `(3, 11, 2)`.
    pub version: (u16, u16, u16),
    /// `platform.machine()`, e.g. `x86_64` or `aarch64`.
    pub machine: String,
    pub libc: Libc,
    /// `platform.release()` and `platform.version()` of the host, for the markers that name them.
    pub platform_release: String,
    pub platform_version: String,
}

/// The tags a target accepts, with each tag's rank (0 = best).
#[derive(Clone, Debug)]
pub struct TagPriorities {
    ranks: HashMap<(String, String, String), usize>,
}

impl TagPriorities {
    /// Rank of the best tag of a wheel, or `None` when the target accepts none of them.
    pub fn best_rank<'a>(
        &self,
        tags: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Option<usize> {
        tags.filter_map(|(p, a, pl)| {
            self.ranks
                .get(&(p.to_string(), a.to_string(), pl.to_string()))
                .copied()
        })
        .min()
    }

    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }
}

impl TargetPython {
    /// A CPython `version` on `machine` with `libc` (the platform release and version markers
    /// left empty).
    pub fn new(version: (u16, u16, u16), machine: impl Into<String>, libc: Libc) -> Self {
        TargetPython {
            version,
            machine: machine.into(),
            libc,
            platform_release: String::new(),
            platform_version: String::new(),
        }
    }

    /// This host's C library and machine with the given interpreter version (the module passes the
    /// embedded interpreter's `sys.version_info`).
    pub fn host(version: (u16, u16, u16)) -> Self {
        TargetPython::new(version, std::env::consts::ARCH, host_libc())
    }

    /// The PEP 508 environment markers evaluate against.
    pub fn marker_environment(&self) -> MarkerEnvironment {
        let (major, minor, micro) = self.version;
        let full = format!("{major}.{minor}.{micro}");
        let short = format!("{major}.{minor}");
        MarkerEnvironment::try_from(pep508_rs::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: &self.machine,
            platform_python_implementation: "CPython",
            platform_release: &self.platform_release,
            platform_system: "Linux",
            platform_version: &self.platform_version,
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .expect("numeric versions always parse")
    }

    /// The platform tags, best first: the manylinux (or musllinux) tags from this libc's version
    /// down to the oldest, with their legacy aliases, then `linux_<machine>`.
    pub fn platform_tags(&self) -> Vec<String> {
        let arch = &self.machine;
        let mut tags = Vec::new();
        match self.libc {
            Libc::Glibc { major, minor } => {
                // packaging: x86_64 and i686 go back to glibc 2.5, other machines to 2.17.
                let oldest = if matches!(arch.as_str(), "x86_64" | "i686") {
                    5
                } else {
                    17
                };
                if major == 2 {
                    for m in (oldest..=minor).rev() {
                        tags.push(format!("manylinux_2_{m}_{arch}"));
                        let legacy = match m {
                            17 => Some("manylinux2014"),
                            12 => Some("manylinux2010"),
                            5 => Some("manylinux1"),
                            _ => None,
                        };
                        if let Some(legacy) = legacy {
                            tags.push(format!("{legacy}_{arch}"));
                        }
                    }
                }
            }
            Libc::Musl { major, minor } => {
                for m in (0..=minor).rev() {
                    tags.push(format!("musllinux_{major}_{m}_{arch}"));
                }
            }
        }
        tags.push(format!("linux_{arch}"));
        tags
    }

    /// Every accepted (python, abi, platform) tag, ranked as `packaging.tags.sys_tags()` orders
    /// them for CPython: cpXY-cpXY, cpXY-abi3, cpXY-none, older abi3, pyXY-none-platform,
    /// then the pure `any` wheels.
    pub fn tag_priorities(&self) -> TagPriorities {
        let (major, minor, _) = self.version;
        let cp = format!("cp{major}{minor}");
        let platforms = self.platform_tags();
        let mut ordered: Vec<(String, String, String)> = Vec::new();
        let mut add = |python: &str, abi: &str, platform: &str| {
            ordered.push((python.to_string(), abi.to_string(), platform.to_string()));
        };
        for abi in [cp.as_str(), "abi3", "none"] {
            for platform in &platforms {
                add(&cp, abi, platform);
            }
        }
        for older in (2..minor).rev() {
            for platform in &platforms {
                add(&format!("cp{major}{older}"), "abi3", platform);
            }
        }
        let generic: Vec<String> = std::iter::once(format!("py{major}{minor}"))
            .chain(std::iter::once(format!("py{major}")))
            .chain((0..minor).rev().map(|m| format!("py{major}{m}")))
            .collect();
        for python in &generic {
            for platform in &platforms {
                add(python, "none", platform);
            }
        }
        add(&cp, "none", "any");
        for python in &generic {
            add(python, "none", "any");
        }
        let mut ranks = HashMap::new();
        for (rank, tag) in ordered.into_iter().enumerate() {
            ranks.entry(tag).or_insert(rank);
        }
        TagPriorities { ranks }
    }
}

/// The host's libc, read from glibc itself (`gnu_get_libc_version`); musl builds say musl.
fn host_libc() -> Libc {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
        let text = version.to_string_lossy();
        let mut parts = text.split('.').map(|p| p.parse::<u16>().unwrap_or(0));
        Libc::Glibc {
            major: parts.next().unwrap_or(2),
            minor: parts.next().unwrap_or(17),
        }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        Libc::Musl { major: 1, minor: 2 }
    }
}

#[cfg(target_env = "gnu")]
extern "C" {
    fn gnu_get_libc_version() -> *const std::ffi::c_char;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp311_glibc() -> TargetPython {
        TargetPython::new(
            (3, 11, 2),
            "x86_64",
            Libc::Glibc {
                major: 2,
                minor: 36,
            },
        )
    }

    fn rank(target: &TargetPython, tag: (&str, &str, &str)) -> Option<usize> {
        target.tag_priorities().best_rank(std::iter::once(tag))
    }

    #[test]
    fn orders_tags_as_pip_does() {
        let t = cp311_glibc();
        let order = [
            ("cp311", "cp311", "manylinux_2_36_x86_64"),
            ("cp311", "cp311", "manylinux_2_17_x86_64"),
            ("cp311", "cp311", "manylinux2014_x86_64"),
            ("cp311", "cp311", "linux_x86_64"),
            ("cp311", "abi3", "manylinux_2_28_x86_64"),
            ("cp311", "none", "manylinux1_x86_64"),
            ("cp37", "abi3", "manylinux2014_x86_64"),
            ("py311", "none", "linux_x86_64"),
            ("py3", "none", "manylinux_2_17_x86_64"),
            ("cp311", "none", "any"),
            ("py311", "none", "any"),
            ("py3", "none", "any"),
            ("py30", "none", "any"),
        ];
        let ranks: Vec<usize> = order.iter().map(|t2| rank(&t, *t2).unwrap()).collect();
        let mut sorted = ranks.clone();
        sorted.sort();
        assert_eq!(ranks, sorted, "{order:?}");
    }

    #[test]
    fn refuses_foreign_tags() {
        let t = cp311_glibc();
        for tag in [
            ("cp311", "cp311", "musllinux_1_2_x86_64"),
            ("cp311", "cp311", "manylinux_2_37_x86_64"),
            ("cp311", "cp311", "manylinux_2_17_aarch64"),
            ("cp310", "cp310", "manylinux_2_17_x86_64"),
            ("cp312", "abi3", "manylinux_2_17_x86_64"),
            ("py2", "none", "any"),
            ("cp311", "cp311", "win_amd64"),
            ("cp311", "cp311d", "linux_x86_64"),
        ] {
            assert_eq!(rank(&t, tag), None, "{tag:?}");
        }
    }

    #[test]
    fn musl_targets_take_musllinux_only() {
        let mut t = cp311_glibc();
        t.libc = Libc::Musl { major: 1, minor: 2 };
        assert!(rank(&t, ("cp311", "cp311", "musllinux_1_1_x86_64")).is_some());
        assert_eq!(rank(&t, ("cp311", "cp311", "manylinux2014_x86_64")), None);
    }

    #[test]
    fn markers_see_the_target() {
        let env = cp311_glibc().marker_environment();
        let req: pep508_rs::Requirement = "a ; python_version >= '3.8' and sys_platform == 'linux' and platform_machine == 'x86_64'"
            .parse()
            .unwrap();
        assert!(req.evaluate_markers(&env, &[]));
        let old: pep508_rs::Requirement = "a ; python_version < '3'".parse().unwrap();
        assert!(!old.evaluate_markers(&env, &[]));
    }

    #[test]
    fn host_libc_is_glibc_here() {
        let host = TargetPython::host((3, 11, 2));
        assert!(matches!(host.libc, Libc::Glibc { major: 2, minor } if minor >= 17));
    }
}
