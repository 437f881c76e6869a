//! Image locations on disk: `oci-layout:DIR[:TAG]` (alias `oci:`),
//! `oci-archive:FILE[:TAG]` and `docker-archive:FILE[:NAME[:TAG]]`. One
//! parser serves the spec's `from`, `--output`, `--against` and `strata
//! diff`. As in skopeo, the path ends at the first `:` after the transport,
//! so a path cannot contain `:`; whatever follows is the tag (a layout's
//! `org.opencontainers.image.ref.name`) or, for a docker archive, the image
//! name (`docker-archive:base.tar:app:1` is the image `app:1` in
//! `base.tar`). `docs/spec.md` documents the same rule.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The transports, with the text that starts each.
const TRANSPORTS: [&str; 4] = ["oci-layout:", "oci:", "oci-archive:", "docker-archive:"];

/// Where an image is read from or written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI layout directory, optionally a tag in it.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` to select.
        tag: Option<String>,
    },
    /// A tar of an OCI layout.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The tag to select or write.
        tag: Option<String>,
    },
    /// A `docker save` archive.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// `NAME[:TAG]` to select or write.
        reference: Option<String>,
    },
}

/// A malformed image location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{reference}`: {reason}")]
pub struct ImageRefError {
    /// The text as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ImageRef {
    /// Whether `s` names one of these transports (and so is no registry
    /// reference, even where it would parse as one: `oci:dir` is a layout,
    /// not the image `oci` with the tag `dir`).
    pub fn is_local(s: &str) -> bool {
        TRANSPORTS.iter().any(|t| s.starts_with(t))
    }

    /// The directory or file.
    pub fn path(&self) -> &Path {
        match self {
            Self::OciLayout { path, .. }
            | Self::OciArchive { path, .. }
            | Self::DockerArchive { path, .. } => path,
        }
    }

    /// The same location with its path replaced by `f(path)` (to resolve a
    /// relative path against a directory).
    pub fn map_path(&self, f: impl FnOnce(&Path) -> PathBuf) -> ImageRef {
        let mut r = self.clone();
        match &mut r {
            Self::OciLayout { path, .. }
            | Self::OciArchive { path, .. }
            | Self::DockerArchive { path, .. } => *path = f(path),
        }
        r
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    /// Parses `TRANSPORT:PATH[:REST]` (see the module docs).
    fn from_str(s: &str) -> Result<Self, ImageRefError> {
        let invalid = |reason: &str| ImageRefError {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (transport, rest) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected oci-layout:, oci-archive: or docker-archive:"))?;
        let (path, extra) = match rest.split_once(':') {
            Some((p, e)) => (p, Some(e)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(invalid("missing path"));
        }
        if extra == Some("") {
            return Err(invalid("empty tag after `:`"));
        }
        let path = PathBuf::from(path);
        let extra = extra.map(str::to_owned);
        match transport {
            "oci-layout" | "oci" => Ok(Self::OciLayout { path, tag: extra }),
            "oci-archive" => Ok(Self::OciArchive { path, tag: extra }),
            "docker-archive" => Ok(Self::DockerArchive {
                path,
                reference: extra,
            }),
            _ => Err(invalid(
                "expected oci-layout:, oci-archive: or docker-archive:",
            )),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, extra) = match self {
            Self::OciLayout { path, tag } => ("oci-layout", path, tag),
            Self::OciArchive { path, tag } => ("oci-archive", path, tag),
            Self::DockerArchive { path, reference } => ("docker-archive", path, reference),
        };
        write!(f, "{transport}:{}", path.display())?;
        if let Some(e) = extra {
            write!(f, ":{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(path: &str, tag: Option<&str>) -> ImageRef {
        ImageRef::OciLayout {
            path: path.into(),
            tag: tag.map(Into::into),
        }
    }

    /// Every form the two earlier parsers (the spec's and the embedded
    /// builder's) read alike.
    #[test]
    fn the_forms_both_earlier_parsers_agreed_on() {
        let r: ImageRef = "oci-layout:out:v1".parse().unwrap();
        assert_eq!(r, layout("out", Some("v1")));
        assert_eq!(r.to_string(), "oci-layout:out:v1");
        assert_eq!(
            "oci-layout:base/layout:v1".parse::<ImageRef>().unwrap(),
            layout("base/layout", Some("v1"))
        );
        assert_eq!(
            "oci-layout:base/layout".parse::<ImageRef>().unwrap(),
            layout("base/layout", None)
        );
        assert_eq!(
            "oci-archive:base.tar:v2".parse::<ImageRef>().unwrap(),
            ImageRef::OciArchive {
                path: "base.tar".into(),
                tag: Some("v2".into())
            }
        );
        let r: ImageRef = "docker-archive:base.tar".parse().unwrap();
        assert_eq!(
            r,
            ImageRef::DockerArchive {
                path: "base.tar".into(),
                reference: None
            }
        );
        assert_eq!(r.to_string(), "docker-archive:base.tar");
        for bad in [
            "nothing",
            "http:x",
            "oci-archive:",
            "oci-layout:",
            "oci-layout:x:",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }

    /// The cases they read differently, resolved one way: the path ends at
    /// the first `:`.
    #[test]
    fn the_path_ends_at_the_first_colon() {
        // The spec read the whole rest as the archive's path; it is the
        // image `app:1` in `base.tar`.
        let r: ImageRef = "docker-archive:base.tar:app:1".parse().unwrap();
        assert_eq!(
            r,
            ImageRef::DockerArchive {
                path: "base.tar".into(),
                reference: Some("app:1".into())
            }
        );
        assert_eq!(r.to_string(), "docker-archive:base.tar:app:1");
        assert_eq!(
            "docker-archive:img.tar:localhost:5000/app:1"
                .parse::<ImageRef>()
                .unwrap(),
            ImageRef::DockerArchive {
                path: "img.tar".into(),
                reference: Some("localhost:5000/app:1".into())
            }
        );
        // The spec took the tag after the last `:` (and none containing
        // `/`): `a:b` was the path.
        assert_eq!(
            "oci-layout:a:b:c".parse::<ImageRef>().unwrap(),
            layout("a", Some("b:c"))
        );
        assert_eq!(
            "oci-layout:dir:team/app".parse::<ImageRef>().unwrap(),
            layout("dir", Some("team/app"))
        );
        // `oci:` is `oci-layout:` everywhere (the spec read it as the
        // registry image `oci`).
        assert_eq!(
            "oci:out:v1".parse::<ImageRef>().unwrap(),
            layout("out", Some("v1"))
        );
        assert!(ImageRef::is_local("oci:out"));
        assert!(ImageRef::is_local("docker-archive:x.tar"));
        assert!(!ImageRef::is_local("python:3.11-slim"));
        assert!(!ImageRef::is_local("ocean:1"));
    }

    #[test]
    fn paths_map_and_read_back() {
        let r: ImageRef = "docker-archive:b.tar:app:1".parse().unwrap();
        let m = r.map_path(|p| Path::new("/ctx").join(p));
        assert_eq!(m.path(), Path::new("/ctx/b.tar"));
        assert_eq!(m.to_string(), "docker-archive:/ctx/b.tar:app:1");
    }
}
