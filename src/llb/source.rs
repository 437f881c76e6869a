//! Source ops: a directory sent by the client (`local://`), an image
//! (`docker-image://`), and the empty filesystem. Attribute names follow
//! BuildKit's `solver/pb/attr.go`.

use std::collections::BTreeMap;

use super::{Common, Node, OpKind, Platform, State};
use crate::proto::pb;

/// The empty filesystem.
pub(crate) fn scratch() -> State {
    State::default()
}

/// A directory the client sends through the session, by its name (BuildKit's
/// `local://NAME`; `context` and `dockerfile` for a Dockerfile build).
pub(crate) fn local(name: impl Into<String>) -> Local {
    Local {
        name: name.into(),
        session_id: None,
        shared_key_hint: None,
        include_patterns: Vec::new(),
        exclude_patterns: Vec::new(),
        follow_paths: Vec::new(),
        differ: None,
        common: Common::default(),
    }
}

/// An image from a registry or the daemon's store (BuildKit's
/// `docker-image://REF`). Short names are normalized as Docker does:
/// `debian` becomes `docker.io/library/debian:latest`.
pub(crate) fn image(reference: impl AsRef<str>) -> Image {
    Image {
        reference: normalize_image_ref(reference.as_ref()),
        platform: None,
        internal: false,
        common: Common::default(),
    }
}

/// How BuildKit compares local files with its earlier copy (`local.differ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Differ {
    /// Resend every file (`none`).
    None,
}

impl Differ {
    fn as_str(self) -> &'static str {
        match self {
            Differ::None => "none",
        }
    }
}

/// Options of a [`local`] source.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get a State"]
pub(crate) struct Local {
    name: String,
    session_id: Option<String>,
    shared_key_hint: Option<String>,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    follow_paths: Vec<String>,
    differ: Option<(Differ, bool)>,
    common: Common,
}

impl Local {
    /// The session that has the directory (`local.session`); BuildKit's
    /// `BUILDKIT_SESSION_ID` or the `local-sessionid:NAME` option.
    pub(crate) fn session_id(mut self, id: impl Into<String>) -> Local {
        self.session_id = Some(id.into());
        self
    }

    /// Which earlier snapshot to sync into (`local.sharedkeyhint`).
    pub(crate) fn shared_key_hint(mut self, hint: impl Into<String>) -> Local {
        self.shared_key_hint = Some(hint.into());
        self
    }

    /// Send only paths matching these patterns (`local.includepattern`).
    pub(crate) fn include_patterns<I, S>(mut self, patterns: I) -> Local
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.include_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Never send paths matching these patterns (`local.excludepatterns`).
    pub(crate) fn exclude_patterns<I, S>(mut self, patterns: I) -> Local
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Send these paths, following symlinks to them (`local.followpaths`).
    pub(crate) fn follow_paths<I, S>(mut self, paths: I) -> Local
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.follow_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// How files are compared (`local.differ`). With `required`, the op also
    /// lists cap `source.local.differ` (BuildKit ≥ 0.9), so older daemons
    /// refuse it instead of ignoring the attribute.
    pub(crate) fn differ(mut self, differ: Differ, required: bool) -> Local {
        self.differ = Some((differ, required));
        self
    }

    /// The name shown in progress output.
    pub(crate) fn custom_name(mut self, name: impl Into<String>) -> Local {
        self.common.custom_name(name.into());
        self
    }

    /// Encodes the source op.
    pub(crate) fn build(self) -> State {
        let mut meta = self.common.meta;
        let mut attrs = BTreeMap::new();
        meta.cap("source.local");
        if let Some(id) = self.session_id {
            attrs.insert("local.session".to_owned(), id);
            meta.cap("source.local.sessionid");
        }
        if !self.include_patterns.is_empty() {
            attrs.insert(
                "local.includepattern".to_owned(),
                json_strings(&self.include_patterns),
            );
            meta.cap("source.local.includepatterns");
        }
        if !self.exclude_patterns.is_empty() {
            attrs.insert(
                "local.excludepatterns".to_owned(),
                json_strings(&self.exclude_patterns),
            );
            meta.cap("source.local.excludepatterns");
        }
        if !self.follow_paths.is_empty() {
            attrs.insert(
                "local.followpaths".to_owned(),
                json_strings(&self.follow_paths),
            );
            meta.cap("source.local.followpaths");
        }
        if let Some(hint) = self.shared_key_hint {
            attrs.insert("local.sharedkeyhint".to_owned(), hint);
            meta.cap("source.local.sharedkeyhint");
        }
        if let Some((differ, required)) = self.differ {
            attrs.insert("local.differ".to_owned(), differ.as_str().to_owned());
            if required {
                meta.cap("source.local.differ");
            }
        }
        let op = pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: format!("local://{}", self.name),
                attrs,
            })),
            ..Default::default()
        };
        State::from_output(Node::build(op, Vec::new(), OpKind::Source, meta), 0)
    }
}

/// Where BuildKit looks for an image: an image source's
/// `image.resolvemode`, and the gateway's `ResolveImageConfig` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ResolveMode {
    /// The daemon's default (`default`; local store first for `# syntax=`).
    #[default]
    Default,
    /// Always ask the registry (`pull`).
    ForcePull,
    /// Use the local store when it has the image (`local`).
    PreferLocal,
}

impl ResolveMode {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResolveMode::Default => "default",
            ResolveMode::ForcePull => "pull",
            ResolveMode::PreferLocal => "local",
        }
    }
}

/// Options of an [`image`] source.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get a State"]
pub(crate) struct Image {
    reference: String,
    platform: Option<Platform>,
    internal: bool,
    common: Common,
}

impl Image {
    /// Which platform of a multi-platform image.
    pub(crate) fn platform(mut self, platform: Platform) -> Image {
        self.platform = Some(platform);
        self
    }

    /// Records the pull as the build's own tooling (`image.recordtype` =
    /// `internal`), as BuildKit's frontends do for their helper images. The
    /// attribute changes the op, not its cache key (the image's manifest and
    /// config), so the op is never the very vertex BuildKit loaded the
    /// frontend with.
    pub(crate) fn internal(mut self) -> Image {
        self.internal = true;
        self
    }

    /// The name shown in progress output.
    pub(crate) fn custom_name(mut self, name: impl Into<String>) -> Image {
        self.common.custom_name(name.into());
        self
    }

    /// Encodes the source op.
    pub(crate) fn build(self) -> State {
        let mut meta = self.common.meta;
        let mut attrs = BTreeMap::new();
        meta.cap("source.image");
        if self.internal {
            attrs.insert("image.recordtype".to_owned(), "internal".to_owned());
        }
        let op = pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: format!("docker-image://{}", self.reference),
                attrs,
            })),
            platform: self.platform.as_ref().map(super::platform_to_proto),
            ..Default::default()
        };
        State::from_output(Node::build(op, Vec::new(), OpKind::Source, meta), 0)
    }
}

/// A JSON array of strings, as BuildKit expects pattern attributes.
fn json_strings(items: &[String]) -> String {
    serde_json::to_string(items).expect("a list of strings always serializes")
}

/// Docker's normalization of an image reference: a domain is added when the
/// first component is not one (`docker.io`, plus `library/` for one-component
/// names), and `:latest` when there is neither tag nor digest.
fn normalize_image_ref(reference: &str) -> String {
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    // A tag is a `:` after the last `/`; an earlier one is a registry port.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut out = if has_domain {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_image_ref;

    #[test]
    fn image_references_are_normalized_like_docker() {
        let cases = [
            ("debian", "docker.io/library/debian:latest"),
            ("debian:bookworm", "docker.io/library/debian:bookworm"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/library/debian:12", "docker.io/library/debian:12"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            ("ghcr.io/o/r@sha256:ab", "ghcr.io/o/r@sha256:ab"),
            (
                "debian:12@sha256:ab",
                "docker.io/library/debian:12@sha256:ab",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_image_ref(input), want, "{input}");
        }
    }
}
