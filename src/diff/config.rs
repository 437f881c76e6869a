//! The config: a JSON diff of the fields that differ, as JSON Pointer paths
//! (`/created`, `/config/Env/1`, `/history/3/created_by`).

use serde::Serialize;
use serde_json::Value;

/// One differing field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct FieldDiff {
    /// JSON Pointer to the field.
    pub(crate) path: String,
    /// A's value (`null` when A lacks the field).
    pub(crate) a: Value,
    /// B's value (`null` when B lacks the field).
    pub(crate) b: Value,
}

/// Config fields `--semantic` ignores: times, history and the diffIDs (the
/// layers are compared file by file instead).
pub(crate) const SEMANTIC_IGNORED: &[&str] = &["/created", "/history", "/rootfs/diff_ids"];

/// The differing fields of two configs, skipping paths under `ignored`.
pub(crate) fn diff_json(a: &Value, b: &Value, ignored: &[&str]) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    walk(a, b, String::new(), ignored, &mut out);
    out
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn walk(a: &Value, b: &Value, path: String, ignored: &[&str], out: &mut Vec<FieldDiff>) {
    if ignored.contains(&path.as_str()) || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(
                    ma.get(k).unwrap_or(&Value::Null),
                    mb.get(k).unwrap_or(&Value::Null),
                    format!("{path}/{}", escape(k)),
                    ignored,
                    out,
                );
            }
        }
        (Value::Array(va), Value::Array(vb)) => {
            for i in 0..va.len().max(vb.len()) {
                walk(
                    va.get(i).unwrap_or(&Value::Null),
                    vb.get(i).unwrap_or(&Value::Null),
                    format!("{path}/{i}"),
                    ignored,
                    out,
                );
            }
        }
        _ => out.push(FieldDiff {
            path,
            a: a.clone(),
            b: b.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_named_by_pointer() {
        let a = json!({"created": "1980", "config": {"Env": ["A=1", "B=2"], "a/b": 1},
                       "history": [{"created_by": "x"}]});
        let b = json!({"created": "2024", "config": {"Env": ["A=1"], "a/b": 2},
                       "history": [{"created_by": "y"}]});
        let d = diff_json(&a, &b, &[]);
        let paths: Vec<&str> = d.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/config/Env/1",
                "/config/a~1b",
                "/created",
                "/history/0/created_by"
            ]
        );
        assert_eq!(d[0].b, Value::Null);
        let s = diff_json(&a, &b, SEMANTIC_IGNORED);
        assert_eq!(s.len(), 2);
    }
}
