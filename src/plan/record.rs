//! The record each strata layer leaves in the image's history (docs/design.md
//! §5): `created_by = "strata layer ID"` and `comment = "strata/v1 WORD…
//! NAME=VALUE…"`. Both backends write it through [`Record`]; `strata plan
//! --against` and `strata diff` read it back through [`layer_id`] and
//! [`Record::parse`]. A new fact is a new word (`run`) or field
//! (`compression=zstd`): readers skip what they do not know, so the tag stays
//! `strata/v1`.

use std::fmt;

/// What `created_by` starts with; the layer ID follows.
const CREATED_BY: &str = "strata layer ";
/// The first word of every comment strata writes.
const TAG: &str = "strata/v1";

/// `created_by` of the layer `id`: `strata layer ID`.
pub fn created_by(id: &str) -> String {
    format!("{CREATED_BY}{id}")
}

/// The layer ID a history entry's `created_by` names, if strata wrote it.
pub fn layer_id(created_by: &str) -> Option<&str> {
    created_by.strip_prefix(CREATED_BY)
}

/// A strata history comment: bare words (`run`), then `NAME=VALUE` fields,
/// each in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Bare words after the tag, such as `run` for a run layer.
    pub words: Vec<String>,
    /// `NAME=VALUE` fields, such as `key`, `inputs` and `compression`.
    pub fields: Vec<(String, String)>,
}

impl Record {
    /// A copy layer's record: its layer key and input digest.
    pub fn copy(key: impl fmt::Display, inputs: impl fmt::Display) -> Record {
        Record::default().field("key", key).field("inputs", inputs)
    }

    /// A run layer's record.
    pub fn run() -> Record {
        Record {
            words: vec!["run".to_owned()],
            fields: Vec::new(),
        }
    }

    /// The record with the field `name=value` added after the others.
    pub fn field(mut self, name: &str, value: impl fmt::Display) -> Record {
        self.fields.push((name.to_owned(), value.to_string()));
        self
    }

    /// The value of the field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the bare word `word` is present.
    #[cfg(test)]
    pub fn has(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    /// Reads a history comment; `None` when strata did not write it (no
    /// `strata/v1` tag).
    pub fn parse(comment: &str) -> Option<Record> {
        let mut parts = comment.split_whitespace();
        if parts.next() != Some(TAG) {
            return None;
        }
        let mut record = Record::default();
        for part in parts {
            match part.split_once('=') {
                Some((name, value)) => record.fields.push((name.to_owned(), value.to_owned())),
                None => record.words.push(part.to_owned()),
            }
        }
        Some(record)
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TAG)?;
        for w in &self.words {
            write!(f, " {w}")?;
        }
        for (name, value) in &self.fields {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const INPUTS: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// The bytes both backends wrote before this module existed: history
    /// entries of images already built stay readable and identical.
    #[test]
    fn writes_the_established_forms() {
        assert_eq!(
            created_by("models@/app/m/shard-2.bin"),
            "strata layer models@/app/m/shard-2.bin"
        );
        assert_eq!(
            Record::copy(KEY, INPUTS).to_string(),
            format!("strata/v1 key={KEY} inputs={INPUTS}")
        );
        assert_eq!(
            Record::copy(KEY, INPUTS)
                .field("compression", "zstd")
                .to_string(),
            format!("strata/v1 key={KEY} inputs={INPUTS} compression=zstd")
        );
        assert_eq!(Record::run().to_string(), "strata/v1 run");
        assert_eq!(
            Record::run().field("normalize", "off").to_string(),
            "strata/v1 run normalize=off"
        );
    }

    #[test]
    fn reads_what_it_writes_and_skips_the_unknown() {
        for r in [
            Record::copy(KEY, INPUTS),
            Record::copy(KEY, INPUTS).field("compression", "zstd"),
            Record::run(),
            Record::run().field("normalize", "off"),
        ] {
            assert_eq!(Record::parse(&r.to_string()), Some(r));
        }
        let r = Record::parse(&format!("strata/v1 inputs={INPUTS} future=1 newword")).unwrap();
        assert_eq!(r.get("inputs"), Some(INPUTS));
        assert_eq!(r.get("key"), None);
        assert!(r.has("newword") && !r.has("run"));
        assert!(Record::parse("strata/v1 run x=1").unwrap().has("run"));
        assert_eq!(Record::parse("buildkit.dockerfile.v0"), None);
        assert_eq!(Record::parse(&format!("strata/v2 key={KEY}")), None);
        assert_eq!(Record::parse(""), None);
    }

    #[test]
    fn layer_ids_from_created_by() {
        assert_eq!(layer_id("strata layer app"), Some("app"));
        assert_eq!(layer_id("strata layer m@/a b.bin"), Some("m@/a b.bin"));
        assert_eq!(layer_id("COPY app /app # buildkit"), None);
        assert_eq!(layer_id("strata layerapp"), None);
    }
}
