//! `${NAME}` substitution (docs/design.md §7): only `[args]`, build args and the
//! platform arguments; `$${` is a literal `${`; a plain `$NAME` is left alone.

use std::collections::BTreeMap;
use std::ops::Range;

use super::error::{Diag, SpecSource};
use super::model::Sp;
use super::parse::nearest;
use super::resolved::Platform;

/// The values `${NAME}` can take.
#[derive(Debug, Clone)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Vars {
    /// Spec args (already overridden by build args) plus the platform arguments.
    pub fn new(args: &BTreeMap<String, String>, target: &Platform, build: &Platform) -> Self {
        let mut values = args.clone();
        for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
            values.insert(format!("{prefix}PLATFORM"), p.to_string());
            values.insert(format!("{prefix}OS"), p.os.clone());
            values.insert(format!("{prefix}ARCH"), p.architecture.clone());
            values.insert(
                format!("{prefix}VARIANT"),
                p.variant.clone().unwrap_or_default(),
            );
        }
        Self { values }
    }

    /// Substitutes a spanned string from the spec.
    pub fn subst(&self, source: &SpecSource, value: &Sp<String>) -> Result<String, Diag> {
        self.subst_at(source, value.get(), value.span())
    }

    /// Substitutes `text`, whose literal spans `span` in the spec.
    pub fn subst_at(
        &self,
        source: &SpecSource,
        text: &str,
        span: Range<usize>,
    ) -> Result<String, Diag> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut consumed = 0;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
                consumed += i + 3;
            } else if let Some(tail) = after.strip_prefix("${") {
                let Some(end) = tail.find('}') else {
                    return Err(Diag::error(source, span, "unterminated `${` in string")
                        .label("no closing `}`")
                        .help("write `$${` for a literal `${`"));
                };
                let name = &tail[..end];
                match self.values.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        let at = precise(source, &span, consumed + i, end + 3);
                        let known: Vec<String> = self.values.keys().cloned().collect();
                        let mut diag =
                            Diag::error(source, at, format!("unknown argument `${{{name}}}`"))
                                .label("not declared in [args]");
                        diag = match nearest(name, &known) {
                            Some(best) => diag.help(format!(
                                "did you mean `${{{best}}}`? declare new arguments in [args]; write `$${{` for a literal `${{`"
                            )),
                            None => diag.help(format!(
                                "declare it in [args], e.g. `{name} = \"...\"`; write `$${{` for a literal `${{`"
                            )),
                        };
                        return Err(diag);
                    }
                }
                rest = &tail[end + 1..];
                consumed += i + end + 3;
            } else {
                out.push('$');
                rest = &after[1..];
                consumed += i + 1;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The span of `len` bytes at `offset` into the string literal at `span`,
/// when the literal holds the text unescaped; else the whole literal.
fn precise(source: &SpecSource, span: &Range<usize>, offset: usize, len: usize) -> Range<usize> {
    let literal = source.text().get(span.clone()).unwrap_or("");
    let quote = if literal.starts_with("\"\"\"") || literal.starts_with("'''") {
        3
    } else if literal.starts_with('"') || literal.starts_with('\'') {
        1
    } else {
        return span.clone();
    };
    let start = span.start + quote + offset;
    match source.text().get(start..start + len) {
        Some(s) if s.starts_with("${") && s.ends_with('}') => start..start + len,
        _ => span.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let args = BTreeMap::from([("BASE".to_string(), "debian".to_string())]);
        let p = Platform::parse("linux/arm64/v8").unwrap();
        Vars::new(&args, &p, &Platform::host())
    }

    fn run(text: &str) -> Result<String, Diag> {
        let literal = format!("\"{text}\"");
        let src = SpecSource::new("s.toml", literal.clone());
        vars().subst_at(&src, text, 0..literal.len())
    }

    #[test]
    fn substitutes_args_and_platform_args() {
        assert_eq!(run("${BASE}:12").unwrap(), "debian:12");
        assert_eq!(run("/opt/${TARGETARCH}").unwrap(), "/opt/arm64");
        assert_eq!(run("${TARGETPLATFORM}").unwrap(), "linux/arm64/v8");
    }

    #[test]
    fn keeps_shell_variables_and_escapes() {
        assert_eq!(run("echo $HOME $1 $").unwrap(), "echo $HOME $1 $");
        assert_eq!(run("echo $${HOME}").unwrap(), "echo ${HOME}");
    }

    #[test]
    fn unknown_argument_points_at_it() {
        let err = run("x ${BASS} y").unwrap_err();
        assert_eq!(err.message, "unknown argument `${BASS}`");
        assert_eq!(err.span, Some(3..10));
        assert!(err.help.unwrap().contains("${BASE}"));
    }

    #[test]
    fn process_environment_is_never_used() {
        // PATH is always set in the environment, but is not an argument.
        assert!(run("${PATH}").is_err());
    }
}
