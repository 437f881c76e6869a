//! What BuildKit tells a frontend through its environment
//! (buildkit-gateway.md §1): the options (`BUILDKIT_FRONTEND_OPT_<i>`), the
//! session ID and the workers; and the cache imports among the options.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::FrontendError;
use super::gateway::{CacheImport, Platform, Worker};

/// Prefix of the option variables.
const OPT_PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";

/// The frontend's inputs from its environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FrontendEnv {
    /// Frontend options (`filename`, `build-arg:NAME`, `cache-from`, …).
    pub(crate) opts: BTreeMap<String, String>,
    /// `BUILDKIT_SESSION_ID`: the client session that serves local sources.
    pub(crate) session_id: String,
    /// `BUILDKIT_WORKERS`; empty when absent or unreadable.
    pub(crate) workers: Vec<Worker>,
}

impl FrontendEnv {
    /// Reads the process environment. An unreadable `BUILDKIT_WORKERS` is
    /// reported on stderr (the daemon's log) and left empty, as BuildKit's own
    /// client does.
    pub(crate) fn from_env() -> FrontendEnv {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let (env, err) = FrontendEnv::from_vars(vars);
        if let Some(err) = err {
            eprintln!("strata: {err}");
        }
        env
    }

    /// Reads `(name, value)` pairs; also returns the `BUILDKIT_WORKERS` error,
    /// if any.
    pub(crate) fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> (FrontendEnv, Option<FrontendError>) {
        let mut env = FrontendEnv::default();
        let mut err = None;
        for (name, value) in vars {
            if name.starts_with(OPT_PREFIX) {
                let (key, value) = value.split_once('=').unwrap_or((value.as_str(), ""));
                env.opts.insert(key.to_string(), value.to_string());
            } else if name == "BUILDKIT_SESSION_ID" {
                env.session_id = value;
            } else if name == "BUILDKIT_WORKERS" {
                match parse_workers(&value) {
                    Ok(workers) => env.workers = workers,
                    Err(e) => err = Some(e),
                }
            }
        }
        (env, err)
    }

    /// An option's value.
    pub(crate) fn opt(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }

    /// The caches to import: `cache-imports` (JSON), then the legacy
    /// `cache-from` (comma-separated registry references).
    pub(crate) fn cache_imports(&self) -> Result<Vec<CacheImport>, FrontendError> {
        cache_imports(&self.opts)
    }
}

/// An object's member, its key matched case-insensitively.
fn member<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Parses `BUILDKIT_WORKERS`: a JSON array of workers whose keys are
/// `ID/Labels/Platforms` up to BuildKit 0.9 and `id/labels/platforms` later.
pub(crate) fn parse_workers(json: &str) -> Result<Vec<Worker>, FrontendError> {
    let invalid = |reason: String| FrontendError::Option {
        key: "BUILDKIT_WORKERS".into(),
        reason,
    };
    if json.trim().is_empty() || json.trim() == "null" {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    let list = value
        .as_array()
        .ok_or_else(|| invalid("not a JSON array".into()))?;
    list.iter()
        .map(|w| {
            let w = w
                .as_object()
                .ok_or_else(|| invalid("a worker is not a JSON object".into()))?;
            let platforms = member(w, "platforms")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(Value::as_object)
                        .map(|p| Platform {
                            os: str_of(member(p, "os")),
                            architecture: str_of(member(p, "architecture")),
                            variant: Some(str_of(member(p, "variant"))).filter(|v| !v.is_empty()),
                            os_version: None,
                            os_features: None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let version = member(w, "buildkitVersion")
                .and_then(Value::as_object)
                .and_then(|v| member(v, "version"))
                .and_then(Value::as_str);
            Ok(Worker {
                id: str_of(member(w, "id")),
                labels: string_map(member(w, "labels")),
                platforms,
                buildkit_version: version.map(str::to_string),
            })
        })
        .collect()
}

/// The cache imports among frontend options: `cache-imports`, a JSON array of
/// `{"Type", "Attrs"}` (keys matched case-insensitively), then each non-empty
/// entry of the legacy `cache-from` as `type=registry,ref=ENTRY`.
pub(crate) fn cache_imports(
    opts: &BTreeMap<String, String>,
) -> Result<Vec<CacheImport>, FrontendError> {
    let mut out = Vec::new();
    if let Some(json) = opts.get("cache-imports").filter(|s| !s.trim().is_empty()) {
        let invalid = |reason: String| FrontendError::Option {
            key: "cache-imports".into(),
            reason,
        };
        let value: Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        if !value.is_null() {
            let list = value
                .as_array()
                .ok_or_else(|| invalid("not a JSON array".into()))?;
            for entry in list {
                let entry = entry
                    .as_object()
                    .ok_or_else(|| invalid("an entry is not a JSON object".into()))?;
                out.push(CacheImport {
                    kind: str_of(member(entry, "type")),
                    attrs: string_map(member(entry, "attrs")),
                });
            }
        }
    }
    if let Some(list) = opts.get("cache-from") {
        for reference in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(CacheImport {
                kind: "registry".into(),
                attrs: [("ref".to_string(), reference.to_string())].into(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_split_at_the_first_equals_sign() {
        let (env, err) = FrontendEnv::from_vars(vars(&[
            ("BUILDKIT_FRONTEND_OPT_0", "filename=spec.toml"),
            ("BUILDKIT_FRONTEND_OPT_1", "build-arg:X=a=b"),
            ("BUILDKIT_FRONTEND_OPT_17", "no-cache"),
            ("BUILDKIT_FRONTEND_OPT_2", "label:empty="),
            ("BUILDKIT_SESSION_ID", "s3ss10n"),
            ("PATH", "/bin"),
        ]));
        assert!(err.is_none());
        assert_eq!(env.opt("filename"), Some("spec.toml"));
        assert_eq!(env.opt("build-arg:X"), Some("a=b"));
        assert_eq!(env.opt("no-cache"), Some(""));
        assert_eq!(env.opt("label:empty"), Some(""));
        assert_eq!(env.opt("PATH"), None);
        assert_eq!(env.opts.len(), 4);
        assert_eq!(env.session_id, "s3ss10n");
    }

    #[test]
    fn workers_old_spelling() {
        // BuildKit 0.8: Go field names, platforms with OCI's lowercase tags.
        let json = r#"[{"ID":"abc","Labels":{"org.mobyproject.buildkit.worker.executor":"runc"},
            "Platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"arm","os":"linux","variant":"v7"}],
            "GCPolicy":null}]"#;
        let workers = parse_workers(json).unwrap();
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].id, "abc");
        assert_eq!(
            workers[0].labels["org.mobyproject.buildkit.worker.executor"],
            "runc"
        );
        let platforms: Vec<String> = workers[0].platforms.iter().map(|p| p.to_string()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm/v7"]);
    }

    #[test]
    fn workers_new_spelling() {
        let json = r#"[{"id":"w0","labels":{},"platforms":[{"architecture":"arm64","os":"linux","variant":"v8"}],
            "gcPolicy":[{"all":true}],"buildkitVersion":{"version":"v0.25.0"}}]"#;
        let workers = parse_workers(json).unwrap();
        assert_eq!(workers[0].id, "w0");
        assert_eq!(workers[0].platforms[0].to_string(), "linux/arm64/v8");
        assert_eq!(workers[0].buildkit_version.as_deref(), Some("v0.25.0"));
    }

    #[test]
    fn bad_workers_are_reported_not_fatal() {
        let (env, err) = FrontendEnv::from_vars(vars(&[
            ("BUILDKIT_WORKERS", "{not json"),
            ("BUILDKIT_FRONTEND_OPT_0", "filename=x"),
        ]));
        assert!(env.workers.is_empty());
        assert_eq!(env.opt("filename"), Some("x"));
        let err = err.unwrap().to_string();
        assert!(
            err.starts_with("invalid frontend option `BUILDKIT_WORKERS`"),
            "{err}"
        );
        assert!(parse_workers("").unwrap().is_empty());
        assert!(parse_workers("null").unwrap().is_empty());
    }

    #[test]
    fn cache_imports_from_both_options() {
        let opts: BTreeMap<String, String> = [
            (
                "cache-imports".to_string(),
                r#"[{"Type":"local","Attrs":{"src":"/cache"}},{"type":"gha","attrs":{"scope":"x"}}]"#
                    .to_string(),
            ),
            ("cache-from".to_string(), "r.example/a:c, ,r.example/b:c".to_string()),
        ]
        .into();
        let got = cache_imports(&opts).unwrap();
        let summary: Vec<(String, Vec<(String, String)>)> = got
            .iter()
            .map(|c| (c.kind.clone(), c.attrs.clone().into_iter().collect()))
            .collect();
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            summary,
            vec![
                ("local".to_string(), vec![pair("src", "/cache")]),
                ("gha".to_string(), vec![pair("scope", "x")]),
                ("registry".to_string(), vec![pair("ref", "r.example/a:c")]),
                ("registry".to_string(), vec![pair("ref", "r.example/b:c")]),
            ]
        );
    }

    #[test]
    fn empty_cache_options_give_nothing() {
        // Docker 20.10 always sends `cache-from`, often empty.
        let opts: BTreeMap<String, String> = [
            ("cache-from".to_string(), String::new()),
            ("cache-imports".to_string(), String::new()),
        ]
        .into();
        assert!(cache_imports(&opts).unwrap().is_empty());
    }

    #[test]
    fn bad_cache_imports_name_the_option() {
        let opts: BTreeMap<String, String> =
            [("cache-imports".to_string(), "{".to_string())].into();
        let err = cache_imports(&opts).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid frontend option `cache-imports`"),
            "{err}"
        );
    }
}
