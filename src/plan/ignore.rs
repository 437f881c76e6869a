//! Docker's `.dockerignore` rules (docs/design.md §3), also used for a copy
//! entry's `exclude` patterns (relative to its `from`).
//!
//! These are Docker's semantics, not git's. Written against the behaviour of
//! `moby/patternmatcher` (which builds one regular expression per pattern)
//! and of BuildKit's context walker (`tonistiigi/fsutil`), which is what
//! `docker buildx build` applies:
//!
//! - The file: a UTF-8 BOM is dropped, lines starting with `#` are comments
//!   (only in column one), each line is trimmed, blank lines are skipped. A
//!   leading `!` re-includes; the rest is cleaned like Go's `filepath.Clean`
//!   (`./a` → `a`, `a//b/../c` → `a/c`, `a/` → `a`) and one leading `/` is
//!   dropped, so every pattern is relative to the context root and anchored
//!   there.
//! - `*` matches any run of characters except `/`, `?` one character except
//!   `/`, `[a-z]` / `[^a-z]` a class (the class is a regular-expression class:
//!   a negated class also matches `/`), `\x` the character `x`. `**` matches
//!   any number of directories: `**/x` matches `x` and `a/b/x`, `a/**/b`
//!   matches `a/b` and `a/x/y/b`, `a/**` matches everything under `a` but not
//!   `a` itself. Like Docker, a pattern starting with `**` is a plain suffix
//!   test when the rest has no wildcard (`**foo` matches `barfoo`), and one
//!   ending in `**` with no other wildcard is a plain prefix test (`foo**`
//!   matches `foobar`).
//! - Patterns are tried in order and the last one that matches decides. A
//!   pattern that matches a directory also matches everything under it.
//!   As in BuildKit's walker, a pattern is tested against a parent directory
//!   only where it was tested for that directory itself: `x/y` then `!x`
//!   leaves `x/y` excluded, since `!x` was skipped when `x` was not excluded.
//! - An excluded directory is skipped whole when no `!` pattern could bring
//!   something under it back (BuildKit's rule); otherwise its contents are
//!   tested one by one and it is kept when something under it is kept.
//!
//! Where Docker's regular-expression translation does something a user would
//! not expect, the pattern is rejected with an explanation instead of
//! silently matching differently: `\` before a letter or digit (Docker reads
//! `\d` as "any digit"), before a non-ASCII character (an error in Docker),
//! and an unescaped `*`, `?` or `[:` inside `[...]` (which Docker garbles).

use std::path::{Path, PathBuf};

use regex::bytes::Regex;

use super::error::{PlanError, io_with};

/// A compiled list of ignore patterns.
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    /// Any `!` pattern.
    has_exceptions: bool,
    /// Every `!` pattern is a literal path, maybe ending in `/*` or `/**`
    /// (then excluded directories can be skipped: BuildKit's rule).
    literal_exceptions: bool,
    origin: String,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!`.
    text: String,
    exception: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path equals the pattern.
    Exact,
    /// Literal text then a final `**`: a prefix test.
    Prefix,
    /// A leading `**` then literal text: a suffix test.
    Suffix,
    /// Anything else.
    Regex(Regex),
}

/// Per-pattern results for a directory, handed down to its children
/// (BuildKit's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub(crate) struct MatchState(Vec<bool>);

impl Matcher {
    /// A matcher with no patterns: nothing is excluded.
    pub fn empty() -> Matcher {
        Matcher {
            patterns: Vec::new(),
            has_exceptions: false,
            literal_exceptions: true,
            origin: String::new(),
        }
    }

    /// Compiles patterns written like `.dockerignore` lines (each is trimmed,
    /// cleaned, and a leading `/` dropped; blank ones are skipped; there are
    /// no comments). This is the form of a copy entry's `exclude` list.
    pub fn new<I, S>(patterns: I) -> Result<Matcher, PlanError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut m = Matcher::empty();
        m.origin = "exclude".to_owned();
        for p in patterns {
            if let Some(normalized) = normalize_line(p.as_ref()) {
                m.push(&normalized, p.as_ref(), None)?;
            }
        }
        Ok(m)
    }

    /// Parses the content of an ignore file; `origin` (its path) is used in
    /// error messages with the line number.
    pub fn parse_ignore_file(content: &[u8], origin: &str) -> Result<Matcher, PlanError> {
        let mut m = Matcher::empty();
        m.origin = origin.to_owned();
        let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
        for (index, line) in content.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b"#") {
                continue;
            }
            let text = std::str::from_utf8(line).map_err(|_| PlanError::Pattern {
                origin: origin.to_owned(),
                line: Some(index + 1),
                pattern: String::from_utf8_lossy(line).into_owned(),
                reason: "the line is not valid UTF-8".to_owned(),
            })?;
            if let Some(normalized) = normalize_line(text) {
                m.push(&normalized, text.trim(), Some(index + 1))?;
            }
        }
        Ok(m)
    }

    /// Loads the ignore rules for a context, as Docker does for a Dockerfile:
    /// `<spec_file>.dockerignore` (the spec file's path with `.dockerignore`
    /// appended, e.g. `strata.toml.dockerignore` beside the spec) when it
    /// exists, else `<context_dir>/.dockerignore`, else no rules.
    /// `spec_file` is the spec's path as opened (relative to the current
    /// directory or absolute).
    pub fn for_context(context_dir: &Path, spec_file: &Path) -> Result<Matcher, PlanError> {
        let mut beside_spec = spec_file.as_os_str().to_owned();
        beside_spec.push(".dockerignore");
        for candidate in [
            PathBuf::from(beside_spec),
            context_dir.join(".dockerignore"),
        ] {
            if let Some(content) = read_ignore_file(&candidate)? {
                return Self::parse_ignore_file(&content, &candidate.display().to_string());
            }
        }
        Ok(Matcher::empty())
    }

    /// Where the patterns come from: the ignore file's path, `exclude`, or
    /// empty for [`Matcher::empty`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The normalized patterns, `!` included, in the form BuildKit's local
    /// source accepts as exclude patterns.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exception {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    /// Whether `rel_path` (relative to the root the patterns are anchored
    /// at, `/`-separated; cleaned first) is excluded by the patterns, its
    /// parent directories included. The root itself (`""` or `.`) is never
    /// excluded. `is_dir` does not change the answer: Docker's syntax has no
    /// directory-only patterns (a trailing `/` is cleaned away). A walk also
    /// keeps an excluded directory that contains a re-included path; this
    /// answers for the directory entry itself.
    pub fn excluded(&self, rel_path: &[u8], is_dir: bool) -> bool {
        let _ = is_dir;
        if self.patterns.is_empty() {
            return false;
        }
        let cleaned = clean(rel_path);
        let path = cleaned.strip_prefix(b"/").unwrap_or(&cleaned);
        if path.is_empty() || path == b"." {
            return false;
        }
        let mut state = self.root_state();
        let mut excluded = false;
        for (end, _) in path
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .chain(std::iter::once((path.len(), &b'/')))
        {
            (excluded, state) = self.eval(&path[..end], &state);
        }
        excluded
    }

    /// The state for the root's children.
    pub(crate) fn root_state(&self) -> MatchState {
        MatchState(vec![false; self.patterns.len()])
    }

    /// Decides `path`, given its parent directory's state; returns the
    /// decision and the state for `path`'s own children.
    pub(crate) fn eval(&self, path: &[u8], parent: &MatchState) -> (bool, MatchState) {
        if self.patterns.is_empty() {
            return (false, MatchState::default());
        }
        let mut excluded = false;
        let mut state = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = parent.0.get(i).copied().unwrap_or(false);
            if !hit {
                // An exclude pattern only matters while the path is kept, an
                // exception only while it is excluded.
                if p.exception != excluded {
                    continue;
                }
                hit = p.matches(path);
            }
            state[i] = hit;
            if hit {
                excluded = !p.exception;
            }
        }
        (excluded, MatchState(state))
    }

    /// Whether an excluded directory can be skipped without looking inside:
    /// no `!` pattern could bring back anything under it.
    pub(crate) fn can_skip_dir(&self, dir: &[u8]) -> bool {
        if !self.has_exceptions {
            return true;
        }
        if !self.literal_exceptions {
            return false;
        }
        let mut dir_slash = dir.to_vec();
        dir_slash.push(b'/');
        !self.patterns.iter().filter(|p| p.exception).any(|p| {
            let mut prefix = without_trailing_glob(&p.text).as_bytes().to_vec();
            prefix.push(b'/');
            prefix.starts_with(&dir_slash)
        })
    }

    /// Adds one normalized pattern (`raw` is the pattern as written, for errors).
    fn push(&mut self, normalized: &str, raw: &str, line: Option<usize>) -> Result<(), PlanError> {
        let error = |reason: String| PlanError::Pattern {
            origin: self.origin.clone(),
            line,
            pattern: raw.to_owned(),
            reason,
        };
        // As patternmatcher.New: trim and clean again, then take the `!`.
        let trimmed = normalized.trim();
        if trimmed.is_empty() {
            return Ok(());
        }
        let cleaned = String::from_utf8(clean(trimmed.as_bytes()))
            .map_err(|_| error("the pattern is not valid UTF-8".to_owned()))?;
        let (exception, text) = match cleaned.strip_prefix('!') {
            Some("") => {
                return Err(error(
                    "a lone `!` re-includes nothing: write `!PATTERN`".to_owned(),
                ));
            }
            Some(rest) => (true, rest.to_owned()),
            None => (false, cleaned),
        };
        let kind = compile(&text).map_err(error)?;
        if exception {
            self.has_exceptions = true;
            if without_trailing_glob(&text).contains(['*', '[', ']', '?', '^', '\\']) {
                self.literal_exceptions = false;
            }
        }
        self.patterns.push(Pattern {
            text,
            exception,
            kind,
        });
        Ok(())
    }
}

impl Pattern {
    fn matches(&self, path: &[u8]) -> bool {
        let text = self.text.as_bytes();
        match &self.kind {
            Kind::Exact => path == text,
            Kind::Prefix => path.starts_with(&text[..text.len() - 2]),
            Kind::Suffix => {
                let suffix = &text[2..];
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// Reads an ignore file, bounded (docs/design.md §6: at most 2 MiB, a
/// regular file: a FIFO in a hostile context must not hang the build);
/// `None` when it does not exist.
fn read_ignore_file(path: &Path) -> Result<Option<Vec<u8>>, PlanError> {
    use crate::bounded::{Accept, MAX_SMALL_FILE, ReadError, describe_size, read};
    let bad = |reason: String| PlanError::BadIgnoreFile {
        path: path.to_owned(),
        reason,
    };
    match read(path, MAX_SMALL_FILE, Accept::Regular) {
        Ok(content) => Ok(content),
        Err(ReadError::Io(e)) => Err(io_with("failed to read", path)(e)),
        Err(ReadError::TooLarge(size)) => Err(bad(format!(
            "is {}, over the limit of {MAX_SMALL_FILE} bytes (2 MiB)",
            describe_size(size, MAX_SMALL_FILE)
        ))),
        Err(ReadError::NotRegular(kind)) => Err(bad(format!(
            "is a {kind}, not a regular file: remove it or replace it with a file"
        ))),
    }
}

/// One `.dockerignore` line after Docker's reader: trimmed, `!` kept,
/// the rest cleaned and one leading `/` dropped. `None` for a blank line.
fn normalize_line(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (invert, rest) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let mut pattern = String::new();
    if !rest.is_empty() {
        // Cleaning splits and joins on ASCII `/` only, so UTF-8 survives.
        let cleaned = String::from_utf8(clean(rest.as_bytes())).unwrap_or_default();
        pattern = match cleaned.strip_prefix('/') {
            Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
            _ => cleaned,
        };
    }
    Some(if invert {
        format!("!{pattern}")
    } else {
        pattern
    })
}

/// Go's `filepath.Clean` on a `/`-separated byte path: collapses repeated
/// slashes, drops `.` elements and a trailing slash, resolves `..` against
/// the preceding element (or the root), and gives `.` for an empty result.
pub(crate) fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut r = 0;
    // `..` elements before this index cannot be backtracked over.
    let mut floor = 0;
    if rooted {
        out.push(b'/');
        r = 1;
        floor = 1;
    }
    while r < n {
        let at_sep = |i: usize| i == n || path[i] == b'/';
        if path[r] == b'/' || (path[r] == b'.' && at_sep(r + 1)) {
            // An empty or `.` element.
            r += 1;
        } else if path[r] == b'.' && r + 1 < n && path[r + 1] == b'.' && at_sep(r + 2) {
            r += 2;
            if out.len() > floor {
                let mut w = out.len() - 1;
                while w > floor && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                floor = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// BuildKit's `patternWithoutTrailingGlob`: drops a final `/**`, then a final `/*`.
fn without_trailing_glob(text: &str) -> &str {
    let text = text.strip_suffix("/**").unwrap_or(text);
    text.strip_suffix("/*").unwrap_or(text)
}

/// One character other than `/`: a UTF-8 scalar, or a byte of an invalid
/// sequence (Go decodes each such byte as one rune).
const ONE_CHAR: &str = r"(?:[^/]|(?-u:[\x80-\xFF]))";

/// Translates a cleaned pattern (without `!`) the way patternmatcher does,
/// validating it with `filepath.Match`'s grammar.
fn compile(text: &str) -> Result<Kind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = text.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str("(?-u:.)*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(?:(?-u:.)*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("(?-u:[^/])*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str(ONE_CHAR);
                detected = Detected::Regex;
            }
            '\\' => {
                let next = *chars
                    .get(i)
                    .ok_or("a trailing `\\` escapes nothing (write `\\\\` for a backslash)")?;
                i += 1;
                check_escape(next)?;
                push_literal(&mut re, next);
                detected = Detected::Regex;
            }
            '[' => {
                i = compile_class(&chars, i, &mut re)?;
                detected = Detected::Regex;
            }
            ']' => {
                push_literal(&mut re, ']');
                detected = Detected::Regex;
            }
            // Docker passes `^` through to the regular expression, where it
            // anchors: it can only match as the very first character.
            '^' => re.push('^'),
            c => push_literal(&mut re, c),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix,
        Detected::Suffix => Kind::Suffix,
        Detected::Regex => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|e| format!("cannot compile: {e}"))?)
        }
    })
}

fn check_escape(c: char) -> Result<(), String> {
    if c.is_ascii_alphanumeric() {
        Err(format!(
            "Docker reads `\\{c}` as a regular-expression escape, not the character `{c}`: \
             write `{c}` without the backslash"
        ))
    } else if !c.is_ascii() {
        Err(format!(
            "Docker rejects `\\` before the non-ASCII character `{c}`: drop the backslash"
        ))
    } else {
        Ok(())
    }
}

/// Parses a `[...]` class starting after its `[` at `chars[start]` with
/// `filepath.Match`'s grammar; appends the translation; returns the index
/// after the closing `]`.
fn compile_class(chars: &[char], start: usize, re: &mut String) -> Result<usize, String> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges: Vec<(char, char)> = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            i += 1;
            break;
        }
        let lo = class_char(chars, &mut i, ranges.is_empty())?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(chars, &mut i, false)?;
        }
        if lo > hi {
            return Err(format!("the range `{lo}-{hi}` in `[...]` is reversed"));
        }
        ranges.push((lo, hi));
    }
    let mut class = String::from("[");
    if negated {
        class.push('^');
    }
    for (lo, hi) in ranges {
        push_hex(&mut class, lo);
        if hi != lo {
            class.push('-');
            push_hex(&mut class, hi);
        }
    }
    class.push(']');
    if negated {
        re.push_str(&format!(r"(?:{class}|(?-u:[\x80-\xFF]))"));
    } else {
        re.push_str(&class);
    }
    Ok(i)
}

/// One character of a class (`filepath.Match`'s `getEsc`).
fn class_char(chars: &[char], i: &mut usize, first: bool) -> Result<char, String> {
    let c = *chars.get(*i).ok_or("`[` is not closed by `]`")?;
    *i += 1;
    match c {
        '-' => Err("a `-` inside `[...]` must be escaped as `\\-`".to_owned()),
        ']' if first => Err("empty `[]`: escape a literal `]` as `\\]`".to_owned()),
        ']' => Err("a range in `[...]` has no end".to_owned()),
        '*' | '?' => Err(format!(
            "Docker mistranslates an unescaped `{c}` inside `[...]`: escape it as `\\{c}`"
        )),
        '[' if chars.get(*i) == Some(&':') => Err(
            "Docker reads `[:` inside `[...]` as a POSIX class: escape the `[` as `\\[`".to_owned(),
        ),
        '\\' => {
            let next = *chars.get(*i).ok_or("`[` is not closed by `]`")?;
            *i += 1;
            check_escape(next)?;
            Ok(next)
        }
        c => Ok(c),
    }
}

fn push_literal(re: &mut String, c: char) {
    if c.is_alphanumeric() || c == '/' {
        re.push(c);
    } else {
        push_hex(re, c);
    }
}

fn push_hex(re: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        re.push(c);
    } else {
        re.push_str(&format!(r"\x{{{:X}}}", c as u32));
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! The conformance table shared with the integration suite.

    /// One row of `ignore_conformance.txt`.
    pub(crate) struct Row {
        pub line: usize,
        pub excluded: bool,
        pub path: String,
        pub patterns: Vec<String>,
    }

    pub(crate) const TABLE: &str = include_str!("ignore_conformance.txt");

    pub(crate) fn rows() -> Vec<Row> {
        TABLE
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(i, l)| {
                let mut fields = l.split_whitespace();
                let excluded = match fields.next() {
                    Some("excluded") => true,
                    Some("included") => false,
                    other => panic!("line {}: bad expectation {other:?}", i + 1),
                };
                let path = fields.next().expect("path").to_owned();
                Row {
                    line: i + 1,
                    excluded,
                    path,
                    patterns: fields.map(str::to_owned).collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> Matcher {
        Matcher::new(patterns).unwrap()
    }

    #[test]
    fn clean_follows_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("a/", "a"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/./b/", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("../a", "../a"),
            ("../../a/../b", "../../b"),
            ("/", "/"),
            ("//a", "/a"),
            ("/../a", "/a"),
            ("/a/../..", "/"),
            ("!./x", "!./x"),
            ("a/b/../../..", ".."),
        ] {
            assert_eq!(
                String::from_utf8(clean(input.as_bytes())).unwrap(),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn lines_are_normalized_like_dockers_reader() {
        assert_eq!(normalize_line("  /a/b/ "), Some("a/b".into()));
        assert_eq!(normalize_line("! /x"), Some("!x".into()));
        assert_eq!(normalize_line("!"), Some("!".into()));
        assert_eq!(normalize_line("/"), Some("/".into()));
        assert_eq!(normalize_line("./"), Some(".".into()));
        assert_eq!(normalize_line("   "), None);
    }

    #[test]
    fn ignore_file_comments_bom_and_crlf() {
        let text = b"\xEF\xBB\xBF# comment\r\nfoo\r\n\n  # not a comment\n\t\nbar/  \r\n";
        let m = Matcher::parse_ignore_file(text, ".dockerignore").unwrap();
        assert_eq!(m.patterns(), vec!["foo", "# not a comment", "bar"]);
        assert!(m.excluded(b"foo", false));
        assert!(m.excluded(b"bar/x", false));
        assert!(m.excluded(b"# not a comment", false));
    }

    #[test]
    fn errors_name_the_file_line_and_pattern() {
        let e = Matcher::parse_ignore_file(b"ok\n\n[abc\n", "/ctx/.dockerignore").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/ctx/.dockerignore:3: invalid pattern `[abc`"),
            "{msg}"
        );
        let e = Matcher::new(["!"]).unwrap_err().to_string();
        assert!(e.contains("lone `!`"), "{e}");
        for bad in [
            "a\\",
            "[",
            "[]",
            "[a-",
            "[-a]",
            "[a-]",
            "[z-a]",
            "\\d",
            "[\\w]",
            "[*]",
            "[?]",
            "[[:alpha:]]",
            "\\é",
        ] {
            assert!(Matcher::new([bad]).is_err(), "{bad:?} should be rejected");
        }
        for good in ["[\\]a]", "a\\\\", "[\\-a]", "[[]", "a]", "x[!a]", "[^/]"] {
            assert!(Matcher::new([good]).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn match_kinds_follow_patternmatcher() {
        // Rows of patternmatcher's own table that our conformance file does
        // not restate (single pattern, path, expected).
        let rows: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**/", "file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "aae", false),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/.foo", "bar.foo", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ];
        for &(pattern, path, want) in rows {
            assert_eq!(
                m(&[pattern]).excluded(path.as_bytes(), false),
                want,
                "{pattern} {path}"
            );
        }
    }

    #[test]
    fn non_utf8_paths_and_multibyte_characters() {
        let star = m(&["a*"]);
        assert!(star.excluded(b"a\xff\xfe", false));
        let one = m(&["a?"]);
        assert!(one.excluded(b"a\xff", false));
        assert!(one.excluded("aé".as_bytes(), false));
        assert!(!one.excluded("aéé".as_bytes(), false));
        let neg = m(&["a[^b]"]);
        assert!(neg.excluded(b"a\xff", false));
        // A negated class is a regex class: it matches `/` too, as in Docker.
        assert!(m(&["a[^b]c"]).excluded(b"a/c", false));
    }

    #[test]
    fn root_is_never_excluded_and_paths_are_cleaned() {
        let all = m(&["*", "**"]);
        assert!(!all.excluded(b"", true));
        assert!(!all.excluded(b".", true));
        assert!(all.excluded(b"./a//b/", false));
    }

    #[test]
    fn skipping_excluded_directories_follows_buildkit() {
        assert!(m(&["foo"]).can_skip_dir(b"foo"));
        let keep = m(&["foo", "!foo/keep/**"]);
        assert!(!keep.can_skip_dir(b"foo"));
        assert!(!keep.can_skip_dir(b"foo/keep"));
        assert!(keep.can_skip_dir(b"bar"));
        assert!(keep.can_skip_dir(b"foo/other"));
        let wild = m(&["*", "!**/*.py"]);
        assert!(!wild.can_skip_dir(b"anything"));
    }

    #[test]
    fn patterns_round_trip_for_buildkit() {
        let m = Matcher::parse_ignore_file(b"/a/\n! ./b\n", ".dockerignore").unwrap();
        assert_eq!(m.patterns(), vec!["a", "!b"]);
    }

    #[test]
    fn for_context_prefers_the_spec_specific_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("strata.toml");
        let none = Matcher::for_context(dir.path(), &spec).unwrap();
        assert!(none.is_empty());
        fs_err::write(dir.path().join(".dockerignore"), "a\n").unwrap();
        let generic = Matcher::for_context(dir.path(), &spec).unwrap();
        assert!(generic.excluded(b"a", false) && !generic.excluded(b"b", false));
        assert!(generic.origin().ends_with("/.dockerignore"));
        fs_err::write(dir.path().join("strata.toml.dockerignore"), "b\n").unwrap();
        let specific = Matcher::for_context(dir.path(), &spec).unwrap();
        assert!(!specific.excluded(b"a", false) && specific.excluded(b"b", false));
        assert!(specific.origin().ends_with("strata.toml.dockerignore"));
    }

    #[test]
    fn conformance_table() {
        let rows = conformance::rows();
        assert!(rows.len() >= 40, "only {} rows", rows.len());
        for row in rows {
            let file = row.patterns.join("\n");
            let m = Matcher::parse_ignore_file(file.as_bytes(), "table").unwrap();
            let path = row.path.trim_end_matches('/');
            assert_eq!(
                m.excluded(path.as_bytes(), row.path.ends_with('/')),
                row.excluded,
                "ignore_conformance.txt:{}: {} with {:?}",
                row.line,
                row.path,
                row.patterns
            );
        }
    }
}
