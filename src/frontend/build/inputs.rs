//! The build's inputs read through local sources: the spec, its
//! `.dockerignore` (else the context's) and `strata.lock`; and a spec
//! diagnostic as BuildKit's located error.

use std::path::Path;

use super::BuildError;
use super::copy::input_set_hint;
use super::options::Options;
use crate::frontend::gateway::{Caps, FileRange, Gateway, Ref, SolveOptions, cap};
use crate::frontend::status::{ErrorStatus, SourceLocation};
use crate::llb;
use crate::plan::ignore::Matcher;
use crate::plan::lock::{LOCK_FILE, Lock};
use crate::spec::{Diag, SpecError};

/// The spec's source files as read through the `dockerfile` local source.
pub(super) struct SpecFiles {
    pub(crate) filename: String,
    pub(crate) spec: Vec<u8>,
    pub(crate) ignore: Option<Vec<u8>>,
    pub(crate) lock: Option<Vec<u8>>,
}

/// What the build reads besides the spec: the ignore patterns and the lock.
pub(super) struct Inputs {
    /// The spec's ignore file's patterns, else the context's `.dockerignore`'s.
    pub(crate) ignore: Vec<String>,
    /// `strata.lock` beside the spec, if any.
    pub(crate) lock: Option<Lock>,
}

/// At most one byte over the limit of the files read whole (docs/design.md
/// §6), so a huge file is never read whole.
const BOUNDED: FileRange = FileRange {
    offset: 0,
    length: crate::bounded::MAX_SMALL_FILE + 1,
};

async fn read_optional<G: Gateway>(gw: &G, r: &Ref, path: &str) -> Option<Vec<u8>> {
    gw.read_file(r, path, Some(BOUNDED)).await.ok()
}

/// Fails when a file read with [`BOUNDED`] holds more than the limit.
pub(super) fn check_bounded(what: &str, bytes: Option<&Vec<u8>>) -> Result<(), BuildError> {
    use crate::bounded::{MAX_SMALL_FILE, describe_size};
    match bytes {
        Some(b) if b.len() as u64 > MAX_SMALL_FILE => Err(super::spec_error(
            what,
            format!(
                "is {}, over the limit of {MAX_SMALL_FILE} bytes (2 MiB)",
                describe_size(None, MAX_SMALL_FILE)
            ),
        )),
        _ => Ok(()),
    }
}

pub(super) async fn read_spec<G: Gateway>(
    gw: &G,
    opts: &Options,
    caps: &Caps,
) -> Result<SpecFiles, BuildError> {
    let filename = opts.filename.clone();
    let key = opts.spec_key.as_str();
    let ignore_name = format!("{filename}.dockerignore");
    let base = Path::new(&filename)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = if base.is_empty() {
        LOCK_FILE.to_string()
    } else {
        format!("{base}/{LOCK_FILE}")
    };
    let follow = [filename.clone(), ignore_name.clone(), lock_path.clone()];
    let mut local = llb::local(key)
        .session_id(&opts.session_id)
        .shared_key_hint(input_set_hint(&[], &[], &follow))
        .follow_paths(follow)
        // The first vertex of every build names strata's version and
        // commit, so a build log says which strata built the image.
        .custom_name(format!("[strata {}] load {filename}", crate::VERSION));
    if caps.has_llb(cap::SOURCE_LOCAL_DIFFER) {
        local = local.differ(llb::Differ::None, false);
    }
    let def = local.build().marshal().to_bytes();
    let r = gw.solve(&def, &SolveOptions::default()).await?;
    let (spec, ignore, lock) = tokio::join!(
        gw.read_file(&r, &filename, Some(BOUNDED)),
        read_optional(gw, &r, &ignore_name),
        read_optional(gw, &r, &lock_path),
    );
    Ok(SpecFiles {
        spec: spec?,
        ignore,
        lock,
        filename,
    })
}

pub(super) async fn read_context_ignore<G: Gateway>(
    gw: &G,
    opts: &Options,
) -> Result<Option<Vec<u8>>, BuildError> {
    let follow = [".dockerignore".to_string()];
    let def = llb::local(&opts.context_key)
        .session_id(&opts.session_id)
        .shared_key_hint(input_set_hint(&[], &[], &follow))
        .follow_paths(follow)
        .custom_name("[strata] load .dockerignore")
        .build()
        .marshal()
        .to_bytes();
    let r = gw.solve(&def, &SolveOptions::default()).await?;
    Ok(read_optional(gw, &r, ".dockerignore").await)
}

impl Inputs {
    /// Parses the spec's ignore file (else `context_ignore`) and lock file.
    pub(crate) fn parse(
        files: &SpecFiles,
        context_ignore: Option<Vec<u8>>,
    ) -> Result<Inputs, BuildError> {
        check_bounded(
            &format!("{}.dockerignore", files.filename),
            files.ignore.as_ref(),
        )?;
        check_bounded(".dockerignore", context_ignore.as_ref())?;
        check_bounded(LOCK_FILE, files.lock.as_ref())?;
        let ignore_bytes = files.ignore.clone().or(context_ignore);
        let ignore = match &ignore_bytes {
            Some(b) => Matcher::parse_ignore_file(b, ".dockerignore")
                .map_err(|source| BuildError::Ignore {
                    file: ".dockerignore".into(),
                    source,
                })?
                .patterns(),
            None => Vec::new(),
        };
        let lock = match &files.lock {
            Some(b) => Some(Lock::parse(
                Path::new(LOCK_FILE),
                &String::from_utf8_lossy(b),
            )?),
            None => None,
        };
        Ok(Inputs { ignore, lock })
    }
}

/// A spec diagnostic as BuildKit's located error.
pub(super) fn spec_status(files: &SpecFiles, err: &SpecError) -> ErrorStatus {
    let first: Option<&Diag> = match err {
        SpecError::Invalid { diagnostics } => diagnostics.iter().find(|d| d.is_error()),
        _ => None,
    };
    match first {
        Some(d) => {
            let (line, _) = d.line_col();
            let mut message = format!("{}: {}", d.location(), d.message);
            if let Some(h) = &d.help {
                message.push_str(&format!(" (help: {h})"));
            }
            ErrorStatus::new(message).with_source(&SourceLocation::line(
                files.filename.clone(),
                files.spec.clone(),
                line as u32,
            ))
        }
        None => ErrorStatus::new(format!("{}: {err}", files.filename)),
    }
}
