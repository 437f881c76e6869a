//! Checks of a resolved spec against the build context: sources exist and stay
//! inside it (no `..`, no symlink leading out), base archives exist, and no two
//! copy entries write the same file. Only stats; reads no file content.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::error::Diag;
use super::resolved::{BaseRef, LayerKind, ResolvedSpec};

/// Every problem found, as diagnostics.
pub fn validate_context(spec: &ResolvedSpec) -> Vec<Diag> {
    let mut diags = Vec::new();
    let src = &spec.source;
    let context = &spec.context;
    let mut check_source = |rel: &str, span: Range<usize>, what: &str| {
        if let Some(d) = check_inside(context, rel) {
            diags.push(match d {
                Problem::Missing(hint) => {
                    let mut d = Diag::error(
                        src,
                        span,
                        format!(
                            "{what} `{rel}` does not exist in the build context `{}`",
                            context.display()
                        ),
                    )
                    .label("no such file or directory");
                    if let Some(h) = hint {
                        d = d.help(format!("did you mean `{h}`?"));
                    } else {
                        d = d.help("paths are relative to the build context directory");
                    }
                    d
                }
                Problem::Escapes(to) => Diag::error(
                    src,
                    span,
                    format!(
                        "{what} `{rel}` leads outside the build context (it resolves to `{}`)",
                        to.display()
                    ),
                )
                .label("symlink out of the context")
                .help("copy the files into the context, or point the symlink inside it"),
                Problem::Io(e) => Diag::error(src, span, format!("cannot stat `{rel}`: {e}")),
            });
        }
    };
    for layer in &spec.layers {
        match &layer.kind {
            LayerKind::Copy(c) => {
                // A stage copy's `from` is a path in the stage, not the context.
                for e in c.entries.iter().filter(|e| e.stage.is_none()) {
                    check_source(&e.from, e.from_span.clone(), "copy source");
                }
            }
            LayerKind::Run(r) => {
                for i in &r.inputs {
                    check_source(&i.path, i.span.clone(), "run input");
                }
            }
        }
    }
    for step in spec.stages.iter().flat_map(|s| &s.steps) {
        for i in &step.run.inputs {
            check_source(&i.path, i.span.clone(), "stage step input");
        }
    }
    match &spec.image.from {
        BaseRef::Local(r) => {
            let full = context.join(r.path());
            if !full.exists() {
                diags.push(
                    Diag::error(
                        src,
                        spec.image.from_span.clone(),
                        format!("base image `{}` does not exist", full.display()),
                    )
                    .label("no such file or directory")
                    .help("base image paths are relative to the build context"),
                );
            }
        }
        BaseRef::Scratch | BaseRef::Registry(_) => {}
    }
    diags.extend(file_overlaps(spec));
    diags
}

enum Problem {
    Missing(Option<String>),
    Escapes(PathBuf),
    Io(std::io::Error),
}

fn check_inside(context: &Path, rel: &str) -> Option<Problem> {
    let full = context.join(rel);
    match fs_err::symlink_metadata(&full) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(Problem::Missing(sibling_hint(context, rel)));
        }
        Err(e) => return Some(Problem::Io(e)),
        Ok(_) => {}
    }
    match fs_err::canonicalize(&full) {
        Ok(real) if real.starts_with(context) => None,
        Ok(real) => Some(Problem::Escapes(real)),
        // A dangling symlink, or a link loop: it cannot be inside.
        Err(_) => Some(Problem::Escapes(
            fs_err::read_link(&full).unwrap_or_else(|_| full.clone()),
        )),
    }
}

/// The nearest existing name in the same directory, for "did you mean".
fn sibling_hint(context: &Path, rel: &str) -> Option<String> {
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let names: Vec<String> = fs_err::read_dir(context.join(dir))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let best = super::parse::nearest(name, &names)?;
    Some(if dir.is_empty() {
        best
    } else {
        format!("{dir}/{best}")
    })
}

/// Two copy entries whose sources are single files writing the same destination.
/// (Directory trees are compared by the plan, which walks them.)
fn file_overlaps(spec: &ResolvedSpec) -> Vec<Diag> {
    let mut seen: BTreeMap<String, (&str, Range<usize>)> = BTreeMap::new();
    let mut diags = Vec::new();
    for layer in &spec.layers {
        let LayerKind::Copy(c) = &layer.kind else {
            continue;
        };
        for e in c.entries.iter().filter(|e| e.stage.is_none()) {
            let full = spec.context.join(&e.from);
            if !fs_err::symlink_metadata(&full).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let dest = file_destination(&e.from, &e.to, e.to_is_dir);
            if let Some((other, span)) = seen.get(&dest) {
                let (line, _) = spec.source.line_col(span.start);
                diags.push(
                    Diag::error(
                        &spec.source,
                        e.span.clone(),
                        format!("`{dest}` is written by layer `{other}` and again by layer `{}`", layer.name),
                    )
                    .label("same destination")
                    .help(format!("the first copy is on line {line}; each destination file belongs to one layer")),
                );
            } else {
                seen.insert(dest, (&layer.name, e.span.clone()));
            }
        }
    }
    diags
}

/// Where a single-file source lands: `to`, or `to/<name>` when `to` ends with `/`.
pub fn file_destination(from: &str, to: &str, to_is_dir: bool) -> String {
    if to_is_dir {
        let name = from.rsplit('/').next().unwrap_or(from);
        if to == "/" {
            format!("/{name}")
        } else {
            format!("{to}/{name}")
        }
    } else {
        to.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::{ResolveOptions, SpecSource, resolve_all};

    /// `text` resolved for linux/amd64 against the context `dir`.
    pub(crate) fn spec_in(dir: &Path, text: &str) -> ResolvedSpec {
        let opts = ResolveOptions {
            context: dir.to_path_buf(),
            platforms: vec![crate::spec::Platform::parse("linux/amd64").unwrap()],
            ..Default::default()
        };
        resolve_all(&SpecSource::new(dir.join("strata.toml"), text), &opts)
            .unwrap()
            .specs
            .remove(0)
    }

    fn messages(diags: &[Diag]) -> Vec<String> {
        diags.iter().map(|d| d.message.clone()).collect()
    }

    const HEAD: &str = "version = 1\n[image]\nfrom = \"scratch\"\n";

    #[test]
    fn a_sound_spec_has_no_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("m")).unwrap();
        fs_err::write(dir.path().join("m/a.bin"), "a").unwrap();
        let spec = spec_in(
            dir.path(),
            &format!("{HEAD}[[layer]]\nname = \"m\"\ncopy = [{{ from = \"m\", to = \"/m\" }}]\n"),
        );
        assert!(validate_context(&spec).is_empty());
    }

    #[test]
    fn missing_sources_name_a_sibling_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("model.bin"), "m").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("out")).unwrap();
        let spec = spec_in(
            dir.path(),
            &format!(
                "{HEAD}[[layer]]\nname = \"m\"\ncopy = [{{ from = \"modl.bin\", to = \"/m\" }}, \
                 {{ from = \"out\", to = \"/o\" }}]\n"
            ),
        );
        let diags = validate_context(&spec);
        let text = messages(&diags).join("\n");
        assert!(
            text.contains("copy source `modl.bin` does not exist"),
            "{text}"
        );
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `model.bin`?"));
        assert!(
            text.contains("copy source `out` leads outside the build context"),
            "{text}"
        );
    }

    #[test]
    fn a_local_base_must_exist_relative_to_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_in(
            dir.path(),
            "version = 1\n[image]\nfrom = \"docker-archive:base.tar:app:1\"\n",
        );
        let text = messages(&validate_context(&spec)).join("\n");
        assert!(
            text.contains(&format!(
                "base image `{}` does not exist",
                dir.path().join("base.tar").display()
            )),
            "{text}"
        );
        fs_err::write(dir.path().join("base.tar"), "").unwrap();
        assert!(validate_context(&spec).is_empty());
    }

    #[test]
    fn two_layers_writing_one_file_overlap() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.conf"), "a").unwrap();
        fs_err::write(dir.path().join("b.conf"), "b").unwrap();
        let spec = spec_in(
            dir.path(),
            &format!(
                "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"a.conf\", to = \"/etc/app.conf\" }}]\n\
                 [[layer]]\nname = \"b\"\ncopy = [{{ from = \"b.conf\", to = \"/etc/app.conf\" }}]\n"
            ),
        );
        let diags = validate_context(&spec);
        assert_eq!(diags.len(), 1, "{:?}", messages(&diags));
        assert!(diags[0].message.contains("/etc/app.conf"), "{:?}", diags[0]);
    }
}
