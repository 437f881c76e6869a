//! Image model and config building.
//!
//! Manifests, indexes, descriptors and platforms are small serde types of
//! our own (with `BTreeMap` annotations), and the image config is a
//! `serde_json::Value`: oci-spec 0.10's `ImageConfiguration` has no
//! `Healthcheck` and would drop keys of a base config it does not know
//! (`Shell`, `ArgsEscaped`, ...). strata does not use oci-spec's document
//! types either: their descriptors carry oci-spec's own `Digest` and
//! `MediaType` and their platforms its `Arch`/`Os` enums, so each would be a
//! second type beside `plan::Digest`, our media-type strings and our
//! `Platform`, converted at every boundary. One type per concept means
//! these.
//! Every JSON blob is written through [`canonical_json`](super::layout::canonical_json).
//! Nothing here reads the clock: `created` is always given.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{OciError, Result};
use crate::plan::Digest;

/// Media types strata writes or reads.
pub mod media {
    /// OCI image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed layer.
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Gzip-compressed layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Zstd-compressed layer (passed through, never read).
    pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker uncompressed layer.
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
}

/// Annotation naming a manifest's tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd (and Docker ≥ 25) use for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size of the content in bytes.
    pub size: u64,
    /// Platform, on manifests listed in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Alternative locations (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// A descriptor with no platform, annotations or URLs.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            urls: None,
        }
    }
}

pub use crate::platform::Platform;

/// An image manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (also an OCI layout's `index.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Manifests (or nested indexes).
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ImageIndex {
    fn default() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media::INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// One history entry of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command or step that made the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Free-form comment (strata: `strata/v1 key=… inputs=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Docker's `Healthcheck` config (durations are written in nanoseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: Option<Duration>,
    /// Time before a check is considered hung.
    pub timeout: Option<Duration>,
    /// Start-up time during which failures do not count.
    pub start_period: Option<Duration>,
    /// Time between checks during the start period.
    pub start_interval: Option<Duration>,
    /// Consecutive failures before unhealthy.
    pub retries: Option<u32>,
}

impl Healthcheck {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("Test".into(), json!(self.test));
        let durations = [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ];
        for (key, d) in durations {
            if let Some(d) = d {
                m.insert(
                    key.into(),
                    json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                );
            }
        }
        if let Some(r) = self.retries {
            m.insert("Retries".into(), json!(r));
        }
        Value::Object(m)
    }
}

/// The runtime settings strata sets on an image; `None`/empty keeps the base's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSettings {
    /// `Entrypoint`. Setting it without `cmd` clears the base's `Cmd`, as a
    /// Dockerfile `ENTRYPOINT` does.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// Variables merged into the base's `Env` by key: a key the base has is
    /// replaced in place, a new key is appended, in this order.
    pub env: Vec<(String, String)>,
    /// `WorkingDir`.
    pub workdir: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// Labels merged over the base's.
    pub labels: BTreeMap<String, String>,
    /// Ports (`80`, `53/udp`; `/tcp` is added when absent), added to the base's.
    pub exposed_ports: Vec<String>,
    /// Volume paths, added to the base's.
    pub volumes: Vec<String>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
    /// `Healthcheck`, replacing the base's.
    pub healthcheck: Option<Healthcheck>,
}

/// Everything the image config is made from.
#[derive(Clone, Copy, Debug)]
pub struct ConfigInput<'a> {
    /// The base image's config, if any.
    pub base: Option<&'a Value>,
    /// The image's platform.
    pub platform: &'a Platform,
    /// The config's `created`, seconds since the epoch.
    pub created: u64,
    /// Runtime settings.
    pub settings: &'a ImageSettings,
    /// diffIDs of strata's layers, appended to the base's.
    pub diff_ids: &'a [Digest],
    /// History of strata's layers, appended to the base's: one entry with
    /// `empty_layer == false` per diffID, each with `created` (docs/design.md §5).
    pub history: &'a [HistoryEntry],
}

/// Most layers Docker's graphdriver store stacks (docs/design.md §6).
pub const MAX_LAYERS: usize = crate::spec::LAYER_LIMIT as usize;

/// Fails when `base` plus `strata` layers exceed [`MAX_LAYERS`]; call it
/// before building.
pub fn check_layer_budget(base: usize, strata: usize) -> Result<()> {
    if base + strata > MAX_LAYERS {
        return Err(OciError::TooManyLayers {
            base,
            strata,
            limit: MAX_LAYERS,
        });
    }
    Ok(())
}

/// Keys of a base config that describe how the base was built, not the new
/// image, and are dropped. `OnBuild` is dropped because strata does not run
/// the triggers.
const DROPPED_KEYS: &[&str] = &[
    "container",
    "container_config",
    "docker_version",
    "id",
    "parent",
];

/// Builds the image config JSON.
pub fn build_config(input: &ConfigInput<'_>) -> Result<Value> {
    let invalid = |reason: String| OciError::InvalidConfig { reason };
    let non_empty = input.history.iter().filter(|h| !h.empty_layer).count();
    if non_empty != input.diff_ids.len() {
        return Err(invalid(format!(
            "{} layers but {non_empty} non-empty history entries",
            input.diff_ids.len()
        )));
    }
    if input.history.iter().any(|h| h.created.is_none()) {
        return Err(invalid("every history entry needs `created`".to_owned()));
    }
    let mut root = match input.base {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("base config is not a JSON object".to_owned())),
        None => Map::new(),
    };
    for key in DROPPED_KEYS {
        root.remove(*key);
    }
    let p = input.platform;
    root.insert("architecture".into(), json!(p.architecture));
    root.insert("os".into(), json!(p.os));
    match &p.variant {
        Some(v) => root.insert("variant".into(), json!(v)),
        None => root.remove("variant"),
    };
    root.insert("created".into(), json!(rfc3339(input.created)));

    let mut config = match root.remove("config") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    apply_settings(&mut config, input.settings);
    root.insert("config".into(), Value::Object(config));

    let mut diff_ids = match root.get("rootfs").and_then(|r| r.get("diff_ids")) {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    diff_ids.extend(input.diff_ids.iter().map(|d| json!(d)));
    root.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );

    let mut history = match root.remove("history") {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    for h in input.history {
        history.push(serde_json::to_value(h).map_err(|e| OciError::Json {
            what: "history entry".to_owned(),
            source: e,
        })?);
    }
    root.insert("history".into(), Value::Array(history));
    Ok(Value::Object(root))
}

fn apply_settings(c: &mut Map<String, Value>, s: &ImageSettings) {
    c.remove("OnBuild");
    if let Some(ep) = &s.entrypoint {
        c.insert("Entrypoint".into(), json!(ep));
        if s.cmd.is_none() {
            c.remove("Cmd");
        }
    }
    if let Some(cmd) = &s.cmd {
        c.insert("Cmd".into(), json!(cmd));
    }
    if !s.env.is_empty() {
        let mut env: Vec<String> = match c.get("Env") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for (k, v) in &s.env {
            let item = format!("{k}={v}");
            let key_of = |e: &String| e.split_once('=').map_or(e.clone(), |(k, _)| k.to_owned());
            match env.iter().position(|e| key_of(e) == *k) {
                Some(i) => env[i] = item,
                None => env.push(item),
            }
        }
        c.insert("Env".into(), json!(env));
    }
    if let Some(w) = &s.workdir {
        c.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &s.user {
        c.insert("User".into(), json!(u));
    }
    merge_object(
        c,
        "Labels",
        s.labels.iter().map(|(k, v)| (k.clone(), json!(v))),
    );
    merge_object(
        c,
        "ExposedPorts",
        s.exposed_ports.iter().map(|p| {
            let p = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            (p, json!({}))
        }),
    );
    merge_object(
        c,
        "Volumes",
        s.volumes.iter().map(|v| (v.clone(), json!({}))),
    );
    if let Some(sig) = &s.stop_signal {
        c.insert("StopSignal".into(), json!(sig));
    }
    if let Some(h) = &s.healthcheck {
        c.insert("Healthcheck".into(), h.to_json());
    }
}

fn merge_object(
    c: &mut Map<String, Value>,
    key: &str,
    items: impl Iterator<Item = (String, Value)>,
) {
    let mut items = items.peekable();
    if items.peek().is_none() {
        return;
    }
    let mut m = match c.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.extend(items);
    c.insert(key.into(), Value::Object(m));
}

/// A manifest for `config` and `layers` (base layers first).
pub fn build_manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    ImageManifest {
        schema_version: 2,
        media_type: Some(media::MANIFEST.to_owned()),
        config,
        layers,
        annotations: BTreeMap::new(),
    }
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1980-01-02T00:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_619_200), "1980-01-02T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn config_merges_base_and_settings() {
        let base = json!({
            "architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
            "container_config": {"Cmd": ["x"]}, "docker_version": "20.10",
            "config": {
                "Env": ["PATH=/usr/bin", "LANG=C"], "Cmd": ["bash"], "Shell": ["/bin/sh", "-c"],
                "Labels": {"a": "1"}, "ExposedPorts": {"22/tcp": {}}, "OnBuild": ["RUN x"]
            },
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"base")]},
            "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "base"}]
        });
        let settings = ImageSettings {
            entrypoint: Some(vec!["/app/run".into()]),
            env: vec![
                ("PATH".into(), "/app/bin:/usr/bin".into()),
                ("NEW".into(), "1".into()),
            ],
            labels: BTreeMap::from([("b".into(), "2".into())]),
            exposed_ports: vec!["8080".into()],
            volumes: vec!["/data".into()],
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: Some(Duration::from_secs(30)),
                retries: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        let history = [HistoryEntry {
            created: Some(rfc3339(315_619_200)),
            created_by: Some("strata layer app".into()),
            comment: Some("strata/v1".into()),
            ..Default::default()
        }];
        let platform = Platform::parse("linux/amd64").unwrap();
        let config = build_config(&ConfigInput {
            base: Some(&base),
            platform: &platform,
            created: 315_619_200,
            settings: &settings,
            diff_ids: &[Digest::of(b"layer")],
            history: &history,
        })
        .unwrap();
        let c = &config["config"];
        assert_eq!(
            c["Env"],
            json!(["PATH=/app/bin:/usr/bin", "LANG=C", "NEW=1"])
        );
        assert_eq!(c["Entrypoint"], json!(["/app/run"]));
        assert!(c.get("Cmd").is_none() && c.get("OnBuild").is_none());
        assert_eq!(c["Shell"], json!(["/bin/sh", "-c"]));
        assert_eq!(c["Labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(c["ExposedPorts"], json!({"22/tcp": {}, "8080/tcp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD", "true"], "Interval": 30_000_000_000u64, "Retries": 3})
        );
        assert_eq!(config["created"], "1980-01-02T00:00:00Z");
        assert!(config.get("container_config").is_none());
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(config["history"][1]["created_by"], "strata layer app");
        assert!(config["history"][1].get("empty_layer").is_none());
    }

    #[test]
    fn layer_budget() {
        assert!(check_layer_budget(25, 100).is_ok());
        let err = check_layer_budget(26, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "26 base layers plus 100 strata layers exceed the limit of 125 layers"
        );
    }

    #[test]
    fn config_requires_history_per_layer() {
        let platform = Platform::parse("linux/amd64").unwrap();
        let err = build_config(&ConfigInput {
            base: None,
            platform: &platform,
            created: 0,
            settings: &ImageSettings::default(),
            diff_ids: &[Digest::of(b"layer")],
            history: &[],
        })
        .unwrap_err();
        assert!(matches!(err, OciError::InvalidConfig { .. }));
    }
}
