//! Reading `strata.toml`: size limit, UTF-8, a Dockerfile given by mistake,
//! TOML syntax and types, unknown keys with the nearest known key.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

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

/// Parses the TOML text into the raw model; every type error of the file
/// is reported ([`parse_all`], which the loader calls).
#[cfg(test)]
pub fn parse(source: &SpecSource) -> Result<RawSpec, SpecError> {
    let parsed = parse_all(source)?;
    match parsed.raw {
        Some(raw) if parsed.errors.is_empty() => Ok(raw),
        _ => Err(SpecError::Invalid {
            diagnostics: parsed.errors,
        }),
    }
}

/// At most this many type errors are collected from one file.
const MAX_TYPE_ERRORS: usize = 50;

/// A spec read past its type errors.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The model without the values that had the wrong type (`None` when
    /// the errors left no model: a missing or mistyped `version`).
    pub raw: Option<RawSpec>,
    /// Every type error (unknown keys, wrong types, missing keys), in the
    /// order of the text when the model could be read.
    pub errors: Vec<Diag>,
    /// The text of the tables (array elements, top-level entries) an entry
    /// was dropped from: what later checks say there may be a consequence
    /// of the drop.
    pub touched: Vec<Range<usize>>,
}

/// Parses the TOML text, collecting every type error of the file rather
/// than the first: after an error the offending entry (an unknown key, a
/// value of the wrong type) is dropped from the parsed document and the
/// rest is read again. A missing key in a table an entry was dropped from
/// (`form` for `from`) is not reported, and that table is dropped in turn. Syntax errors stop at the
/// first, as the document cannot be read past them.
pub(crate) fn parse_all(source: &SpecSource) -> Result<Parsed, SpecError> {
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
    let first = match toml::from_str::<RawSpec>(text) {
        Ok(raw) => {
            return Ok(Parsed {
                raw: Some(raw),
                errors: Vec::new(),
                touched: Vec::new(),
            });
        }
        Err(e) => e,
    };
    let Ok(mut doc) = DeTable::parse(text) else {
        return Err(SpecError::Invalid {
            diagnostics: vec![toml_diag(source, &first)],
        });
    };
    let mut errors = Vec::new();
    let mut touched: Vec<Range<usize>> = Vec::new();
    let mut dropped_from: Vec<Range<usize>> = Vec::new();
    while errors.len() < MAX_TYPE_ERRORS {
        let e = match RawSpec::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(raw) => {
                errors.sort_by_key(|d: &Diag| d.span.as_ref().map_or(usize::MAX, |s| s.start));
                return Ok(Parsed {
                    raw: Some(raw),
                    errors,
                    touched,
                });
            }
            Err(e) => e,
        };
        let Some(span) = e.span() else {
            errors.push(toml_diag(source, &e));
            break;
        };
        let consequence = e.message().starts_with("missing field") && dropped_from.contains(&span);
        if !consequence {
            errors.push(toml_diag(source, &e));
        }
        match drop_at(&mut doc, &span) {
            Some(d) => {
                dropped_from.push(d.from);
                touched.push(d.extent);
            }
            None => break,
        }
    }
    Ok(Parsed {
        raw: None,
        errors,
        touched,
    })
}

/// What [`drop_at`] dropped a value from.
struct Dropped {
    /// The span of the table it was dropped from (of its header, for a
    /// `[table]`), or of the dropped array element.
    from: Range<usize>,
    /// The text that table or element covers, its entries included.
    extent: Range<usize>,
}

/// Drops the innermost entry of `doc` whose key or value holds `span` (an
/// element, for arrays). `None` when nothing but the document itself holds
/// it. A `[table]`'s own span is its header (an array of tables has its
/// first element's), so every entry is searched, deepest first.
fn drop_at(doc: &mut Spanned<DeTable<'_>>, span: &Range<usize>) -> Option<Dropped> {
    fn inside(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end
    }
    fn extent(v: &Spanned<DeValue<'_>>) -> Range<usize> {
        let mut e = v.span();
        let mut widen = |r: Range<usize>| {
            e = e.start.min(r.start)..e.end.max(r.end);
        };
        match v.get_ref() {
            DeValue::Table(t) => t.iter().for_each(|(k, v)| {
                widen(k.span());
                widen(extent(v));
            }),
            DeValue::Array(a) => a.iter().for_each(|v| widen(extent(v))),
            _ => {}
        }
        e
    }
    /// Drops from `value` (a table or an array; `me` is its span).
    fn drop_in(
        value: &mut Spanned<DeValue<'_>>,
        span: &Range<usize>,
        root: bool,
    ) -> Option<Dropped> {
        let whole = extent(value);
        let me = value.span();
        match value.get_mut() {
            DeValue::Table(t) => {
                let keys: Vec<_> = t.keys().cloned().collect();
                for key in keys {
                    let v = t.get_mut(&key).expect("a key of this table");
                    if let Some(d) = drop_in(v, span, false) {
                        return Some(d);
                    }
                    if inside(&key.span(), span) || inside(&v.span(), span) {
                        // The document's extent is all of it: for the
                        // root, only the dropped entry's.
                        let ks = key.span();
                        let vs = extent(v);
                        let extent = if root {
                            ks.start.min(vs.start)..ks.end.max(vs.end)
                        } else {
                            whole
                        };
                        t.remove(&key);
                        return Some(Dropped { from: me, extent });
                    }
                }
                None
            }
            DeValue::Array(a) => {
                for i in 0..a.len() {
                    let v = &mut a.as_mut()[i];
                    if let Some(d) = drop_in(v, span, false) {
                        return Some(d);
                    }
                    if inside(&v.span(), span) {
                        let dropped = Dropped {
                            from: v.span(),
                            extent: extent(v),
                        };
                        let mut kept = DeArray::new();
                        for (j, v) in a.iter().enumerate() {
                            if j != i {
                                kept.push(v.clone());
                            }
                        }
                        *a = kept;
                        return Some(dropped);
                    }
                }
                None
            }
            _ => None,
        }
    }
    let span_of_doc = doc.span();
    let mut root = Spanned::new(span_of_doc, DeValue::Table(std::mem::take(doc.get_mut())));
    let dropped = drop_in(&mut root, span, true);
    if let DeValue::Table(t) = root.into_inner() {
        *doc.get_mut() = t;
    }
    dropped
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
        let help = match key_before(source, e).and_then(closed_set) {
            Some(values) if message.ends_with("expected a string") => {
                format!("write one of {}", values.join(", "))
            }
            _ => type_help(&message, found_text(source, e)),
        };
        diag = diag.label("wrong type").help(help);
    } else {
        diag = diag.label("here");
    }
    diag
}

/// The text of the value an error points at.
fn found_text<'a>(source: &'a SpecSource, e: &toml::de::Error) -> &'a str {
    e.span().and_then(|s| source.text().get(s)).unwrap_or("")
}

/// The key of `key = value` whose value an error points at.
fn key_before<'a>(source: &'a SpecSource, e: &toml::de::Error) -> Option<&'a str> {
    let start = e.span()?.start;
    let before = source.text().get(..start)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let key = line.trim_end().strip_suffix('=')?.trim_end();
    key.rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',')
        .next()
        .filter(|k| !k.is_empty())
}

/// The values a string key takes, for keys with a closed set.
fn closed_set(key: &str) -> Option<Vec<String>> {
    let values: &[&str] = match key {
        "compression" => &crate::spec::LayerCompression::NAMES,
        "network" => &["default", "none"],
        "split" => &["file"],
        "sharing" => &["shared", "locked", "private"],
        _ => return None,
    };
    Some(values.iter().map(|v| format!("\"{v}\"")).collect())
}

/// What to write instead of a value of the wrong type.
fn type_help(message: &str, found: &str) -> String {
    let expected = message.rsplit_once("expected ").map_or("", |(_, e)| e);
    let simple = !found.is_empty() && !found.contains(['"', '\'', '\n', '[', '{']);
    match expected {
        "a string" if simple => format!("write it as a string, in quotes: \"{found}\""),
        "a string" => "write it as a string, in quotes".to_owned(),
        "a boolean" => "write `true` or `false`, without quotes".to_owned(),
        "i64" => "write a whole number, without quotes".to_owned(),
        "a sequence" if simple => format!("write a list: [\"{found}\"]"),
        "a sequence" => "write a list: [\"…\", \"…\"]".to_owned(),
        e if e.starts_with("struct ") || e == "a map" => {
            "write a table: { key = value, … } (docs/spec.md)".to_owned()
        }
        e => format!("write {e} here (docs/spec.md)"),
    }
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

    /// Every type error of a file, unknown keys included; a table missing
    /// a key only because its mistyped value was dropped is no error.
    #[test]
    fn collects_every_type_error() {
        let text = "version = 1\n[image]\nfrom = 1\nplatforms = [\"linux/amd64\", 2]\n\
                    [[layer]]\nname = 3\ncopy = [{ from = \"a\", to = \"/a\", mode = true }]\n\
                    [[layer]]\nname = \"ok\"\nsplit_min = 16\nextra = 1\n";
        let parsed = parse_all(&SpecSource::new("strata.toml", text)).unwrap();
        let got: Vec<(usize, &str)> = parsed
            .errors
            .iter()
            .map(|d| (d.span.clone().unwrap().start, d.message.as_str()))
            .collect();
        let at = |s: &str| text.find(s).unwrap();
        assert_eq!(
            got,
            [
                (
                    at("1\nplat"),
                    "invalid type: integer `1`, expected a string"
                ),
                (at("2]"), "invalid type: integer `2`, expected a string"),
                (at("3\n"), "invalid type: integer `3`, expected a string"),
                (
                    at("true"),
                    "invalid type: boolean `true`, expected a string"
                ),
                (at("16"), "invalid type: integer `16`, expected a string"),
                (at("extra"), "unknown key `extra`"),
            ]
        );
        assert!(parsed.raw.is_some());
        // `parse` reports them all too.
        let Err(SpecError::Invalid { diagnostics }) = parse(&SpecSource::new("s.toml", text))
        else {
            panic!("errors expected");
        };
        assert_eq!(diagnostics.len(), 6);
        // A typo of a required key is one error: neither the missing key
        // nor the empty `copy` it leaves behind is another.
        let typo = "version = 1\n[[layer]]\nname = \"a\"\ncopy = [{ form = \"x\", to = \"/x\" }]\n";
        let Err(SpecError::Invalid { diagnostics }) = crate::spec::resolve_all(
            &SpecSource::new("s.toml", typo),
            &crate::spec::ResolveOptions::default(),
        ) else {
            panic!("errors expected");
        };
        let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["unknown key `form`"]);
        // A syntax error stops at the first.
        let Err(SpecError::Invalid { diagnostics }) =
            parse(&SpecSource::new("s.toml", "version = 1\n[x\nname = 1\n"))
        else {
            panic!("errors expected");
        };
        assert_eq!(diagnostics.len(), 1);
    }

    #[test]
    fn suggests_nearest_key() {
        let known: Vec<String> = ["from", "to", "mode", "exclude"].map(String::from).into();
        assert_eq!(nearest("form", &known).as_deref(), Some("from"));
        assert_eq!(nearest("excludes", &known).as_deref(), Some("exclude"));
        assert_eq!(nearest("zzzzzzz", &known), None);
    }
}
