//! Reading `strata.toml`: size limit, UTF-8, a Dockerfile given by mistake,
//! TOML syntax and types, unknown keys with the nearest known key.

use std::path::Path;

use super::error::{Diag, SpecError, SpecSource};
use super::model::RawSpec;
use super::resolved::MAX_SPEC_BYTES;

/// Reads the spec file at `path` (docs/design.md §6 size limit first).
pub fn read_source(path: &Path) -> Result<SpecSource, SpecError> {
    use crate::bounded::{Accept, ReadError, read};
    match read(path, MAX_SPEC_BYTES, Accept::AnyFile) {
        Ok(Some(bytes)) => source_from_bytes(path, bytes),
        // A directory is not a spec file (`AnyFile` refuses nothing else).
        Ok(None) | Err(ReadError::NotRegular(_)) if path.is_dir() => {
            Err(SpecError::IsDirectory { path: path.into() })
        }
        Ok(None) | Err(ReadError::NotRegular(_)) => Err(SpecError::NotFound { path: path.into() }),
        Err(ReadError::TooLarge(size)) => Err(SpecError::TooLarge {
            path: path.into(),
            size,
            limit: MAX_SPEC_BYTES,
        }),
        Err(ReadError::Io(e)) => Err(SpecError::Io {
            path: path.into(),
            source: e,
        }),
    }
}

/// Checks the size and encoding of spec bytes read from anywhere (the
/// frontend reads them over the gateway).
pub fn source_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<SpecSource, SpecError> {
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge {
            path: path.into(),
            size: Some(bytes.len() as u64),
            limit: MAX_SPEC_BYTES,
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SpecSource::new(path, text)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // The lossy text has the same bytes up to `at`.
            let source = SpecSource::new(path, text);
            let end = (at + 1..=source.text().len())
                .find(|&i| source.text().is_char_boundary(i))
                .unwrap_or(at);
            Err(SpecError::Invalid {
                diagnostics: vec![
                    Diag::error(&source, at..end, "the spec is not valid UTF-8")
                        .label("invalid byte here")
                        .help("save strata.toml as UTF-8"),
                ],
            })
        }
    }
}

/// Dockerfile instructions, to recognize a Dockerfile passed as a spec.
const DOCKERFILE_WORDS: &[&str] = &[
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ARG",
    "ENV",
    "WORKDIR",
    "ENTRYPOINT",
    "CMD",
    "LABEL",
    "EXPOSE",
    "USER",
    "VOLUME",
    "HEALTHCHECK",
    "SHELL",
    "STOPSIGNAL",
    "ONBUILD",
    "MAINTAINER",
];

/// The span of the first line that looks like a Dockerfile instruction, if
/// the text's first meaningful line is one.
fn dockerfile_line(text: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let start = offset + (line.len() - line.trim_start().len());
        offset += line.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        let word = words.next().unwrap_or("");
        let next = words.next().unwrap_or("");
        // A TOML key line is `key = value`; an instruction is `WORD args`.
        let is_instruction = DOCKERFILE_WORDS
            .iter()
            .any(|w| w.eq_ignore_ascii_case(word))
            && !next.is_empty()
            && !next.starts_with('=');
        return is_instruction.then(|| start..start + trimmed.len());
    }
    None
}

/// Parses the TOML text into the raw model.
pub fn parse(source: &SpecSource) -> Result<RawSpec, SpecError> {
    let text = source.text();
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(SpecError::Invalid {
            diagnostics: vec![
                Diag::error(source, 0..0, "the spec is empty")
                    .label("expected `version = 1`")
                    .help("a minimal spec is `version = 1` followed by `[image]` and `[[layer]]` tables (see docs/spec.md)"),
            ],
        });
    }
    if let Some(span) = dockerfile_line(text) {
        return Err(SpecError::Invalid {
            diagnostics: vec![
                Diag::error(source, span, "this looks like a Dockerfile, not a strata spec")
                    .label("a Dockerfile instruction")
                    .help("strata reads a strata.toml layer spec (docs/spec.md); build a Dockerfile with `docker buildx build -f Dockerfile .`"),
            ],
        });
    }
    toml::from_str::<RawSpec>(text).map_err(|e| SpecError::Invalid {
        diagnostics: vec![toml_diag(source, &e)],
    })
}

/// Turns a TOML error into a diagnostic, suggesting the nearest known key for
/// an unknown one.
fn toml_diag(source: &SpecSource, e: &toml::de::Error) -> Diag {
    let message = e.message().trim().trim_end_matches('.').to_string();
    let span = e.span().unwrap_or(0..0);
    let mut diag = Diag::error(source, span, first_lower(&message));
    if let Some((unknown, expected)) = parse_unknown_field(&message) {
        diag = diag.label("unknown key");
        if let Some(best) = nearest(&unknown, &expected) {
            diag.message = format!("unknown key `{unknown}`");
            diag = diag.help(format!("did you mean `{best}`?"));
        } else {
            diag.message = format!("unknown key `{unknown}`");
            diag = diag.help(format!("known keys here: {}", expected.join(", ")));
        }
    } else if message.starts_with("missing field `version`") {
        diag.message = "missing `version = 1`".into();
        diag = diag.help("add `version = 1` at the top of the spec");
    } else if message.starts_with("invalid type") {
        diag = diag.label("wrong type");
    } else {
        diag = diag.label("here");
    }
    diag
}

fn first_lower(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if !c.as_str().starts_with(|ch: char| ch.is_uppercase()) => {
            f.to_lowercase().collect::<String>() + c.as_str()
        }
        Some(f) => f.to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" message.
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((unknown.to_string(), expected))
}

/// The known key closest to `word`, when it is close enough to be a typo.
pub fn nearest(word: &str, known: &[String]) -> Option<String> {
    if let Some(k) = known
        .iter()
        .filter(|k| k.len() > word.len() && word.len() >= 3)
        .find(|k| k.starts_with(word))
    {
        return Some(k.clone());
    }
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_dockerfiles_but_not_toml() {
        assert!(dockerfile_line("# syntax=docker/dockerfile:1\nFROM debian\nRUN x\n").is_some());
        assert!(dockerfile_line("ARG BASE=debian\nFROM ${BASE}\n").is_some());
        assert!(dockerfile_line("# syntax=x\nversion = 1\n").is_none());
        assert!(dockerfile_line("[image]\nfrom = \"x\"\n").is_none());
    }

    #[test]
    fn suggests_nearest_key() {
        let known: Vec<String> = ["from", "to", "mode", "exclude"].map(String::from).into();
        assert_eq!(nearest("form", &known).as_deref(), Some("from"));
        assert_eq!(nearest("excludes", &known).as_deref(), Some("exclude"));
        assert_eq!(nearest("zzzzzzz", &known), None);
    }
}
