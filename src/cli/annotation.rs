//! `strata build --annotation [TYPE[\[PLATFORM\]]:]KEY=VALUE`, parsed as
//! `docker buildx build --annotation` parses it.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::oci::build::ImageAnnotations;
use crate::spec::Platform;

/// Where an annotation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The image manifest (also a bare `KEY=VALUE`).
    Manifest,
    /// The manifest's descriptor in the index that lists it.
    ManifestDescriptor,
    /// The image index.
    Index,
    /// The index's descriptor.
    IndexDescriptor,
}

/// Every type, for errors.
const KINDS: &str = "manifest, manifest-descriptor, index, index-descriptor";

/// One parsed `--annotation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Annotation {
    kind: Kind,
    /// Only for this platform (`manifest[linux/arm64]:KEY=VALUE`).
    platform: Option<Platform>,
    key: String,
    value: String,
}

/// Parses one `--annotation` value.
pub(crate) fn parse(s: &str) -> Result<Annotation> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--annotation `{s}`: {why}; expected [TYPE[PLATFORM]:]KEY=VALUE, TYPE one of {KINDS}"
        ))
    };
    let (lhs, value) = s.split_once('=').ok_or_else(|| bad("no `=`"))?;
    // A prefix is a type only when it looks like one (`[a-z-]+`, an optional
    // `[platform]`), as buildx decides; `com.example:x` is a plain key.
    let (kind, platform, key) = match lhs.split_once(':') {
        Some((prefix, key)) if looks_like_type(prefix) => {
            let (name, platform) = match prefix.split_once('[') {
                Some((name, rest)) => {
                    let p = rest.strip_suffix(']').ok_or_else(|| bad("no `]`"))?;
                    let p = crate::spec::Platform::parse(p)
                        .map_err(|e| bad(&format!("platform: {e}")))?;
                    (name, Some(p))
                }
                None => (prefix, None),
            };
            let kind = match name {
                "manifest" => Kind::Manifest,
                "manifest-descriptor" => Kind::ManifestDescriptor,
                "index" => Kind::Index,
                "index-descriptor" => Kind::IndexDescriptor,
                other => return Err(bad(&format!("unknown type `{other}`"))),
            };
            (kind, platform, key)
        }
        _ => (Kind::Manifest, None, lhs),
    };
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(bad("the key is empty or holds white space"));
    }
    Ok(Annotation {
        kind,
        platform,
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn looks_like_type(prefix: &str) -> bool {
    let name = prefix.split_once('[').map_or(prefix, |(n, _)| n);
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// The annotations of one platform's manifest and of its descriptor.
pub(crate) fn for_platform(all: &[Annotation], platform: &Platform) -> ImageAnnotations {
    let mut out = ImageAnnotations::default();
    for a in all {
        if a.platform.as_ref().is_some_and(|p| !platform.satisfies(p)) {
            continue;
        }
        let map = match a.kind {
            Kind::Manifest => &mut out.manifest,
            Kind::ManifestDescriptor => &mut out.descriptor,
            Kind::Index | Kind::IndexDescriptor => continue,
        };
        map.insert(a.key.clone(), a.value.clone());
    }
    out
}

/// The index's annotations. The embedded builder writes an index only for
/// several platforms: index annotations elsewhere, and `index-descriptor`
/// (it writes no descriptor of an index), are refused.
pub(crate) fn for_index(all: &[Annotation], index: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in all {
        match a.kind {
            Kind::IndexDescriptor => {
                return Err(Error::Usage(format!(
                    "--annotation index-descriptor:{}: the embedded builder writes no descriptor of an index (docker buildx build does, for an OCI layout)",
                    a.key
                )));
            }
            Kind::Index if !index => {
                return Err(Error::Usage(format!(
                    "--annotation index:{}: this build writes no image index; the embedded builder writes one for several platforms (use manifest: for the image manifest)",
                    a.key
                )));
            }
            Kind::Index => {
                out.insert(a.key.clone(), a.value.clone());
            }
            Kind::Manifest | Kind::ManifestDescriptor => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        crate::spec::Platform::parse("linux/amd64").unwrap()
    }

    #[test]
    fn types_platforms_and_plain_keys() {
        let all: Vec<Annotation> = [
            "org.opencontainers.image.title=app",
            "manifest:a=1",
            "manifest-descriptor:d=x=y",
            "manifest[linux/arm64]:arm=only",
            "manifest[linux/amd64]:amd=only",
            "com.example:colon=kept",
            "index:i=2",
        ]
        .iter()
        .map(|s| parse(s).unwrap())
        .collect();
        let a = for_platform(&all, &amd64());
        let m: Vec<(&str, &str)> = a
            .manifest
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            m,
            [
                ("a", "1"),
                ("amd", "only"),
                ("com.example:colon", "kept"),
                ("org.opencontainers.image.title", "app")
            ]
        );
        assert_eq!(a.descriptor["d"], "x=y");
        assert_eq!(for_index(&all, true).unwrap()["i"], "2");
        let err = for_index(&all, false).unwrap_err().to_string();
        assert!(err.contains("writes no image index"), "{err}");
    }

    #[test]
    fn bad_annotations_say_what_is_accepted() {
        for (bad, why) in [
            ("novalue", "no `=`"),
            ("=v", "key is empty"),
            ("manifests:k=v", "unknown type `manifests`"),
            ("manifest[linux/amd64:k=v", "no `]`"),
            ("manifest[windows]:k=v", "`windows` is not a platform"),
            ("manifest:=v", "key is empty"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(KINDS), "{bad}: {err}");
        }
        let all = [parse("index-descriptor:k=v").unwrap()];
        let err = for_index(&all, true).unwrap_err().to_string();
        assert!(err.contains("no descriptor of an index"), "{err}");
    }
}
