//! The two sides of a comparison: `oci-layout:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME[:TAG]]` and
//! `docker-daemon:NAME[:TAG]` (through `docker save`, with the caller's
//! `DOCKER_HOST`, so it works with any engine). `registry:REF` is refused
//! with a clear error until strata reads registries.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;

use super::error::{DiffError, Result};
use crate::oci::base::ImageRef;

/// One image to compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// A layout or archive on disk.
    Image(ImageRef),
    /// An image in a Docker engine, read with `docker save`.
    DockerDaemon(String),
}

impl FromStr for Side {
    type Err = DiffError;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(name) = s.strip_prefix("docker-daemon:") {
            if name.is_empty() {
                return Err(DiffError::InvalidSide {
                    side: s.to_owned(),
                    reason: "missing image name".to_owned(),
                });
            }
            return Ok(Self::DockerDaemon(name.to_owned()));
        }
        if s.starts_with("registry:") || s.starts_with("docker://") {
            return Err(DiffError::Unsupported {
                side: s.to_owned(),
                feature: "reading images from a registry",
                hint: "copy it to a layout first, e.g. `skopeo copy docker://REF oci:DIR:TAG`, \
                       and compare `oci-layout:DIR:TAG`",
            });
        }
        s.parse::<ImageRef>()
            .map(Self::Image)
            .map_err(|e| DiffError::InvalidSide {
                side: s.to_owned(),
                reason: e
                    .reason
                    .replace("docker-archive:", "docker-archive:, docker-daemon:"),
            })
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(r) => r.fmt(f),
            Self::DockerDaemon(n) => write!(f, "docker-daemon:{n}"),
        }
    }
}

/// A side made readable: a daemon's image saved to a temporary archive,
/// deleted when this is dropped.
pub(crate) struct Opened {
    /// Where to read it.
    pub(crate) image: ImageRef,
    /// Keeps the temporary archive alive.
    _tmp: Option<tempfile::TempDir>,
}

impl Side {
    /// Makes the side readable (runs `docker save` for a daemon's image).
    pub(crate) fn open(&self) -> Result<Opened> {
        match self {
            Self::Image(r) => Ok(Opened {
                image: r.clone(),
                _tmp: None,
            }),
            Self::DockerDaemon(name) => {
                let tmp = tempfile::tempdir().map_err(|e| DiffError::Io {
                    path: std::env::temp_dir(),
                    source: e,
                })?;
                let file = tmp.path().join("image.tar");
                // `docker save REPO` saves every tag of REPO: name one.
                let by_id = name.starts_with("sha256:") || name.contains('@');
                let has_tag = name
                    .rsplit_once('/')
                    .map_or(name.as_str(), |(_, l)| l)
                    .contains(':');
                let name = if by_id || has_tag {
                    name.clone()
                } else {
                    format!("{name}:latest")
                };
                save(&name, &file)?;
                Ok(Opened {
                    image: ImageRef::DockerArchive {
                        path: file,
                        reference: (!by_id).then_some(name),
                    },
                    _tmp: Some(tmp),
                })
            }
        }
    }
}

fn save(name: &str, file: &PathBuf) -> Result<()> {
    let out = Command::new("docker")
        .args(["save", "-o"])
        .arg(file)
        .arg(name)
        .output()
        .map_err(|e| DiffError::Docker {
            name: name.to_owned(),
            reason: format!("cannot run `docker`: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DiffError::Docker {
            name: name.to_owned(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_parse() {
        assert_eq!(
            "docker-daemon:app:1".parse::<Side>().unwrap(),
            Side::DockerDaemon("app:1".into())
        );
        assert!(matches!(
            "oci-layout:out:v1".parse::<Side>().unwrap(),
            Side::Image(ImageRef::OciLayout { .. })
        ));
        let e = "registry:localhost:5000/app".parse::<Side>().unwrap_err();
        assert!(
            e.to_string().contains("registry is not supported yet"),
            "{e}"
        );
        let e = "nope:x".parse::<Side>().unwrap_err();
        assert!(e.to_string().contains("docker-daemon:"), "{e}");
        assert!("docker-daemon:".parse::<Side>().is_err());
    }
}
