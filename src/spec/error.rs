//! Spec errors: `miette` diagnostics with a span into the spec text and a help line.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

/// The spec text with the name it is shown under; cheap to clone.
#[derive(Debug, Clone)]
pub struct SpecSource(Arc<SourceInner>);

#[derive(Debug)]
struct SourceInner {
    path: PathBuf,
    text: Arc<str>,
    /// The text named by its path, for rendering.
    named: NamedSource<Arc<str>>,
}

impl SpecSource {
    /// Wraps a text read from `path`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let path = path.into();
        let text = text.into();
        let named = NamedSource::new(path.display().to_string(), text.clone());
        Self(Arc::new(SourceInner { path, text, named }))
    }

    /// Path of the spec file as the user named it.
    pub fn path(&self) -> &std::path::Path {
        &self.0.path
    }

    /// The text (lossy UTF-8 when the file is not valid UTF-8).
    pub fn text(&self) -> &str {
        &self.0.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let text = self.text();
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The text of the 1-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        self.text()
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One spec diagnostic: an error or a warning about a place in the spec.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Diag {
    /// What is wrong, lowercase, no final period.
    pub message: String,
    /// The spec it is about.
    pub spec: SpecSource,
    /// Where; `None` for diagnostics about the whole file.
    pub span: Option<Range<usize>>,
    /// The label shown under the span.
    pub label: String,
    /// What to do about it.
    pub help: Option<String>,
    /// Error or warning.
    pub severity: Severity,
}

impl Diag {
    /// An error at `span`.
    pub fn error(source: &SpecSource, span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            spec: source.clone(),
            span: Some(span),
            label: "here".into(),
            help: None,
            severity: Severity::Error,
        }
    }

    /// A warning at `span` (or about the whole file).
    pub fn warning(
        source: &SpecSource,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            message: message.into(),
            spec: source.clone(),
            span,
            label: "here".into(),
            help: None,
            severity: Severity::Warning,
        }
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// 1-based line and column of the start of the span (1:1 without one).
    pub fn line_col(&self) -> (usize, usize) {
        self.span
            .as_ref()
            .map_or((1, 1), |s| self.spec.line_col(s.start))
    }

    /// `path:line:col`, for one-line messages.
    pub fn location(&self) -> String {
        let (line, col) = self.line_col();
        format!("{}:{line}:{col}", self.spec.path().display())
    }
}

impl Diagnostic for Diag {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.span.as_ref()?;
        Some(&self.spec.0.named as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span.clone()?;
        let len = span.end.saturating_sub(span.start);
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(self.label.clone()), (span.start, len)),
        )))
    }
}

impl Diag {
    /// Renders the diagnostic for a terminal (`color`) or a plain stream.
    pub fn render(&self, color: bool) -> String {
        let report = miette::Report::new(self.clone());
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_context_lines(1)
            .with_width(100);
        let mut out = String::new();
        let _ = handler.render_report(&mut out, report.as_ref());
        if self.span.is_none() {
            // Diagnostics about the whole file still name it.
            out = format!("{}: {out}", self.spec.path().display());
        }
        out
    }
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file does not exist (a wrong input: exit 1).
    #[error("spec file `{path}` not found")]
    NotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// The spec path is a directory (a wrong input: exit 1).
    #[error(
        "spec file `{}` is a directory: give the file (`-f {}`), or the directory as the context",
        .path.display(),
        .path.join("strata.toml").display()
    )]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Reading the spec or stating the context failed (trouble: exit 2).
    #[error("{}", crate::io_error::io_message(path, source))]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The spec is larger than the limit (docs/design.md §6).
    #[error(
        "spec file `{path}` is {}, over the limit of {limit} bytes (2 MiB)",
        crate::bounded::describe_size(*.size, *.limit)
    )]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size; `None` when only reading found it too large (a device,
        /// a pipe).
        size: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// The context directory is missing or not a directory.
    #[error("build context `{path}` is not a directory")]
    BadContext {
        /// The path.
        path: PathBuf,
    },
    /// The spec has errors; `diagnostics` also holds the warnings found.
    #[error("{}", summary(.diagnostics))]
    Invalid {
        /// Errors first, then warnings.
        diagnostics: Vec<Diag>,
    },
    /// A target that the spec does not declare was asked for.
    #[error("unknown target `{name}`{}", known_targets(.known))]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The targets the spec declares.
        known: Vec<String>,
    },
}

fn known_targets(known: &[String]) -> String {
    if known.is_empty() {
        ": the spec declares no targets".into()
    } else {
        format!(": the spec declares {}", known.join(", "))
    }
}

fn summary(diags: &[Diag]) -> String {
    let errors: Vec<&Diag> = diags.iter().filter(|d| d.is_error()).collect();
    match errors.first() {
        Some(first) if errors.len() == 1 => format!("{}: {}", first.location(), first.message),
        Some(first) => format!(
            "{}: {} (and {} more errors)",
            first.location(),
            first.message,
            errors.len() - 1
        ),
        None => "invalid spec".into(),
    }
}

impl SpecError {
    /// Exit status (docs/design.md §8): 1 when the input is wrong, 2 for trouble.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpecError::Io { .. } => 2,
            _ => 1,
        }
    }
}
