//! The one platform type, `os/architecture[/variant]`: what the spec builds
//! for, what OCI descriptors and configs declare, and (converted by
//! [`crate::llb::platform_to_proto`]) what LLB ops run on.
//!
//! It lives at the crate root, below every layer, because `llb` is a pure
//! value layer that imports nothing of `spec`, yet `spec`, `oci`, `llb`,
//! `registry` and `frontend` all speak of the same platform; `spec`
//! re-exports it as [`crate::spec::Platform`].

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A platform. Its serde form is the OCI one (`architecture`, `os`,
/// `os.version`, `os.features`, `variant`, the unset ones left out), as in
/// descriptors and image configs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's names (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Operating systems a spec or `--platform` may name.
const KNOWN_OS: &[&str] = &["linux", "windows", "freebsd", "darwin"];
/// Architectures a spec or `--platform` may name (Go's names).
const KNOWN_ARCH: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64",
];

impl Platform {
    /// Parses `os/arch[/variant]` as a spec or `--platform` writes it: known
    /// operating systems and architectures only (with a hint for the
    /// kernel's names `x86_64` and `aarch64`), lower-cased. The error is a
    /// message for a diagnostic.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "`{s}` is not a platform such as `linux/amd64` or `linux/arm64/v8`"
            ));
        }
        let os = parts[0].to_ascii_lowercase();
        if !KNOWN_OS.contains(&os.as_str()) {
            return Err(format!("unknown operating system `{}` in `{s}`", parts[0]));
        }
        let architecture = match parts[1].to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => {
                return Err(format!(
                    "unknown architecture `{}`: did you mean `amd64`?",
                    parts[1]
                ));
            }
            "aarch64" => {
                return Err(format!(
                    "unknown architecture `{}`: did you mean `arm64`?",
                    parts[1]
                ));
            }
            a if KNOWN_ARCH.contains(&a) => a.to_string(),
            _ => {
                return Err(format!(
                    "unknown architecture `{}` in `{s}`: use one of {}",
                    parts[1],
                    KNOWN_ARCH.join(", ")
                ));
            }
        };
        Ok(Platform {
            architecture,
            os,
            os_version: None,
            os_features: None,
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// The platform of the machine strata runs on: Linux, the architecture
    /// in Go's name, `arm64` with its variant `v8`, others without one.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            os_version: None,
            os_features: None,
            variant: (arch == "arm64").then(|| "v8".to_string()),
        }
    }

    /// The variant after normalization: `arm64` without one means `v8`, as
    /// in containerd.
    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, v) => v,
        }
    }

    /// Whether an image for `self` serves a request for `wanted`: same os and
    /// architecture, and the same variant where both name one (after
    /// [normalization](Self::normalized_variant)). The one platform match:
    /// base images, registry indexes and the lock all use it.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && match (self.normalized_variant(), wanted.normalized_variant()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// By os, architecture, variant, then OS version and features.
impl Ord for Platform {
    fn cmp(&self, other: &Self) -> Ordering {
        fn key(p: &Platform) -> impl Ord + '_ {
            (
                &p.os,
                &p.architecture,
                &p.variant,
                &p.os_version,
                &p.os_features,
            )
        }
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for Platform {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `os/architecture[/variant]`.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parses_known_platforms_lower_cased() {
        let arm = p("Linux/ARM64/V8");
        assert_eq!(
            (arm.os.as_str(), arm.architecture.as_str()),
            ("linux", "arm64")
        );
        assert_eq!(arm.variant.as_deref(), Some("v8"));
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/amd64").variant, None);
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("windows/amd64").os, "windows");
    }

    #[test]
    fn rejects_what_is_no_platform() {
        for bad in ["linux", "linux/", "/amd64", "linux/arm/", "a/b/c/d", ""] {
            assert!(
                Platform::parse(bad).unwrap_err().contains("not a platform"),
                "{bad}"
            );
        }
        assert!(
            Platform::parse("plan9/amd64")
                .unwrap_err()
                .contains("operating system `plan9`")
        );
        assert!(
            Platform::parse("linux/x86_64")
                .unwrap_err()
                .contains("did you mean `amd64`")
        );
        assert!(
            Platform::parse("linux/aarch64")
                .unwrap_err()
                .contains("did you mean `arm64`")
        );
        assert!(
            Platform::parse("linux/sparc")
                .unwrap_err()
                .contains("use one of amd64")
        );
    }

    #[test]
    fn arm64_without_variant_is_v8() {
        let (arm64, v8) = (p("linux/arm64"), p("linux/arm64/v8"));
        assert!(v8.satisfies(&arm64));
        assert!(arm64.satisfies(&v8));
        assert!(!p("linux/arm64/v9").satisfies(&arm64));
        assert!(!arm64.satisfies(&p("linux/arm64/v9")));
    }

    #[test]
    fn os_architecture_and_named_variants_must_agree() {
        assert!(!p("linux/amd64").satisfies(&p("linux/arm64")));
        assert!(!p("windows/amd64").satisfies(&p("linux/amd64")));
        assert!(!p("linux/arm/v6").satisfies(&p("linux/arm/v7")));
        // A variant only one side names does not keep them apart.
        assert!(p("linux/arm/v7").satisfies(&p("linux/arm")));
        assert!(p("linux/arm").satisfies(&p("linux/arm/v7")));
        assert!(p("linux/amd64").satisfies(&p("linux/amd64")));
    }

    #[test]
    fn host_is_linux_and_arm64_has_v8() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert_eq!(
            host.variant.as_deref(),
            (host.architecture == "arm64").then_some("v8")
        );
        assert!(Platform::parse(&host.to_string()).is_ok());
    }

    /// The serde form is OCI's: field order and names as descriptors and
    /// configs have always been written (golden digests depend on it).
    #[test]
    fn serializes_the_oci_fields() {
        assert_eq!(
            serde_json::to_string(&p("linux/amd64")).unwrap(),
            r#"{"architecture":"amd64","os":"linux"}"#
        );
        let mut win = p("windows/amd64/v2");
        win.os_version = Some("10.0.17763.1".into());
        win.os_features = Some(vec!["win32k".into()]);
        let json = r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1","os.features":["win32k"],"variant":"v2"}"#;
        assert_eq!(serde_json::to_string(&win).unwrap(), json);
        assert_eq!(serde_json::from_str::<Platform>(json).unwrap(), win);
        // A config's other keys are ignored; os and architecture are needed.
        let config: Platform = serde_json::from_str(
            r#"{"architecture":"arm","os":"linux","variant":"v7","config":{}}"#,
        )
        .unwrap();
        assert_eq!(config, p("linux/arm/v7"));
        assert!(serde_json::from_str::<Platform>(r#"{"os":"linux"}"#).is_err());
    }

    #[test]
    fn orders_by_os_architecture_variant() {
        let mut list = [
            p("linux/arm64/v8"),
            p("linux/arm/v7"),
            p("windows/amd64"),
            p("linux/arm64"),
            p("linux/amd64"),
        ];
        list.sort();
        let names: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "linux/amd64",
                "linux/arm/v7",
                "linux/arm64",
                "linux/arm64/v8",
                "windows/amd64"
            ]
        );
    }
}
