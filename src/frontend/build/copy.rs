//! Copy layers: the context's parts each helper reads (one local source,
//! or split files read from a listing), copies from stages, and how a
//! helper exec joins the image (docs/design.md §2, §4).

use std::collections::BTreeMap;

use super::helper::HelperMode;
use super::lower::Lower;
use super::options::Options;
use super::stages::StageState;
use super::{BuildError, spec_error};
use crate::frontend::gateway::{Caps, Gateway, Ref, Stat, cap};
use crate::helper::{CopyJob, job_for};
use crate::llb::{self, Mount, State};
use crate::plan::graph::{BaseDirs, LayerFile, LayerFileKind};
use crate::plan::ignore::Matcher;
use crate::plan::make::split_layer;
use crate::spec::{CopyLayer, LayerKind};

/// A copy layer's (state in the image, tree for the overlap check, record),
/// from `exec` run in the given [`HelperMode`]. With MergeOp the helper's
/// scratch output is the layer as is. Without it (docs/design.md §4 fallback),
/// the helper writes onto the chain, which becomes the new chain: one exec
/// (one snapshot of the layer, no FileOp) keyed by the chain and the
/// layer's sources only (the chain is a writable mount, which BuildKit keys
/// by its definition, not its content), so a builder importing an inline
/// cache finds it without running anything. The record and the paths for
/// the overlap check come from a second exec on the same sources that
/// writes no content: an inline cache holds only the image's own chain
/// (min mode), so reading another output of the copy exec would re-run it
/// (as the helpers re-ran, re-copying, when the records were their `/meta`).
pub(super) fn copy_on(
    caps: &Caps,
    modern: bool,
    chain: &mut State,
    ignore_cache: bool,
    exec: impl Fn(HelperMode<'_>) -> Result<(State, State), BuildError>,
) -> Result<(State, State, State), BuildError> {
    let skip = |s: State| if ignore_cache { s.ignore_cache() } else { s };
    if modern {
        let (out, meta) = exec(HelperMode::Scratch)?;
        let out = skip(out);
        return Ok((out.clone(), out, meta));
    }
    let by_definition = caps.has_llb(cap::EXEC_MOUNT_CONTENT_CACHE);
    let (layer, _) = exec(HelperMode::Chain(chain, by_definition))?;
    let (paths, meta) = exec(HelperMode::Record)?;
    *chain = skip(layer);
    Ok((chain.clone(), skip(paths), meta))
}

/// The shared key hint of a local source with this input set:
/// `strata/` and a digest of its include, exclude and follow paths, so
/// sources with different input sets never share BuildKit's synced
/// snapshot, and sources with the same one do (docs/design.md §2).
pub(super) fn input_set_hint(include: &[String], exclude: &[String], follow: &[String]) -> String {
    let doc = serde_json::json!({ "exclude": exclude, "follow": follow, "include": include });
    let hex = crate::plan::Digest::of(doc.to_string().as_bytes()).hex();
    format!("strata/{}", &hex[..32])
}

/// Part of the build context, sent through the session: `local://CTX_KEY`
/// with exactly the `include` paths minus `exclude`, under the shared key
/// hint of that input set ([`input_set_hint`]).
pub(super) fn context_source(
    opts: &Options,
    include: Vec<String>,
    exclude: Vec<String>,
    name: String,
) -> State {
    llb::local(&opts.context_key)
        .session_id(&opts.session_id)
        .shared_key_hint(input_set_hint(&include, &exclude, &[]))
        .include_patterns(include)
        .exclude_patterns(exclude)
        .custom_name(name)
        .build()
}

/// Sorted, without duplicates and without paths under another one: the
/// paths to mount so that each is visible once.
fn outermost(paths: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all: Vec<String> = paths.into_iter().collect();
    all.sort();
    all.dedup();
    let mut out: Vec<String> = Vec::new();
    for p in all {
        if !out.iter().any(|q| p.starts_with(&format!("{q}/"))) {
            out.push(p);
        }
    }
    out
}

/// The context source the copy layers share (docs/design.md §2): every
/// context path a copy layer reads, minus the ignore patterns, solved once,
/// with the kind of each entry's `from` (`lstat`, read from its parent
/// directory).
pub(super) struct SharedContext {
    pub state: State,
    r: Ref,
    /// Each copy entry's `from` found in the source, by path.
    roots: BTreeMap<String, Stat>,
}

impl SharedContext {
    /// A layer may read the shared source with one selector per entry when
    /// every entry is a directory or a regular file there: BuildKit would
    /// follow a symlink named as the entry (the helper refuses one leading
    /// out of the context, and says so), and a missing one is the
    /// helper's error to report. `.` keeps its own source.
    fn shares(&self, copy: &CopyLayer) -> bool {
        copy.entries.iter().all(|e| {
            e.from != "."
                && self
                    .roots
                    .get(&e.from)
                    .is_some_and(|s| s.is_dir() || s.is_file())
        })
    }
}

/// One layer of a copy layer: its ID and where its helper reads from.
/// One layer of a copy layer: its ID and where its helper reads from.
pub(super) struct CopyPart {
    pub(crate) id: String,
    source: PartSource,
}

/// The source a copy layer's helper mounts at `/src`.
enum PartSource {
    /// A local source of its own with these include and exclude patterns.
    Local {
        include: Vec<String>,
        exclude: Vec<String>,
    },
    /// The shared context source, each of these paths mounted at
    /// `/src/PATH` with a selector: BuildKit keys the helper by the
    /// content of those paths only.
    Shared { state: State, paths: Vec<String> },
    /// One split file (context path) of the listing source, mounted with a
    /// selector: the file crosses the session once, in the listing, and
    /// BuildKit keys the helper by that file's content only.
    Listed { list: State, path: String },
}

impl<G: Gateway> Lower<'_, G> {
    /// Whether the layer copies from the context only (not from a stage).
    fn from_context(copy: &CopyLayer) -> bool {
        copy.entries.iter().all(|e| e.stage.is_none())
    }

    /// The context source the copy layers share, solved, with the kind of
    /// each entry's `from`; `None` when no layer copies from the context.
    /// It holds every `from` of a context copy layer but those of a
    /// layer that copies `.` without a split (which keeps its own source).
    pub async fn shared_context(&self) -> Result<Option<SharedContext>, BuildError> {
        let layers = self.spec.layers.iter().filter_map(|l| match &l.kind {
            LayerKind::Copy(c) if Self::from_context(c) => Some(c),
            _ => None,
        });
        let froms = outermost(
            layers
                .filter(|c| c.split.is_some() || c.entries.iter().all(|e| e.from != "."))
                .flat_map(|c| c.entries.iter().map(|e| e.from.clone())),
        );
        if froms.is_empty() {
            return Ok(None);
        }
        let all: Vec<String> = self
            .spec
            .layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Copy(c) if Self::from_context(c) => Some(c),
                _ => None,
            })
            .flat_map(|c| c.entries.iter().map(|e| e.from.clone()))
            .collect();
        let state = context_source(
            self.opts,
            froms,
            self.inputs.ignore.clone(),
            "[strata] context".to_string(),
        );
        let gw = self.gw;
        let r = gw
            .solve(&state.marshal().to_bytes(), &self.solve_opts)
            .await?;
        // Each entry's parent directory, read once: its entries are
        // `lstat`ed (StatFile would follow a symlink).
        let mut parents: Vec<String> = all
            .iter()
            .map(|f| f.rsplit_once('/').map_or("", |(p, _)| p).to_string())
            .collect();
        parents.sort();
        parents.dedup();
        let listings = futures_util::future::join_all(parents.iter().map(|dir| {
            let r = &r;
            async move { gw.read_dir(r, dir, None).await.unwrap_or_default() }
        }))
        .await;
        let mut roots = BTreeMap::new();
        for (dir, listing) in parents.iter().zip(listings) {
            for st in listing {
                let path = if dir.is_empty() {
                    st.path.clone()
                } else {
                    format!("{dir}/{}", st.path)
                };
                if all.contains(&path) {
                    roots.insert(path, st);
                }
            }
        }
        Ok(Some(SharedContext { state, r, roots }))
    }

    /// The layers of a copy layer: one without a split; with `split = "file"`,
    /// the context is listed to find the files of at least `split_min` bytes
    /// (docs/design.md §1), each its own layer read from the listing, and the rest.
    pub(crate) async fn copy_parts(
        &self,
        name: &str,
        copy: &CopyLayer,
        shared: &SharedContext,
    ) -> Result<Vec<CopyPart>, BuildError> {
        let gw = self.gw;
        let ignore = self.inputs.ignore.as_slice();
        let includes: Vec<String> = copy.entries.iter().map(|e| e.from.clone()).collect();
        let Some(split) = &copy.split else {
            let source = if shared.shares(copy) {
                PartSource::Shared {
                    state: shared.state.clone(),
                    paths: outermost(includes),
                }
            } else {
                PartSource::Local {
                    include: includes,
                    exclude: ignore.to_vec(),
                }
            };
            return Ok(vec![CopyPart {
                id: name.to_string(),
                source,
            }]);
        };
        // The split lists the shared source, which holds this layer's inputs.
        let (list, r) = (&shared.state, &shared.r);
        let ignore_m = Matcher::new(ignore).map_err(|source| BuildError::Ignore {
            file: ".dockerignore".into(),
            source,
        })?;
        let mut files: Vec<LayerFile> = Vec::new();
        // Every entry's root at once: known from the shared source's
        // listing unless it is a symlink (followed here) or missing.
        let roots = futures_util::future::try_join_all(copy.entries.iter().map(|e| async move {
            match shared.roots.get(&e.from) {
                Some(st) if st.is_dir() || st.is_file() => Ok(st.clone()),
                _ => gw.stat_file(r, &e.from).await,
            }
        }))
        .await?;
        for (e, root) in copy.entries.iter().zip(roots) {
            let excl = Matcher::new(&e.exclude)
                .map_err(|err| spec_error(&self.opts.filename, format!("layer `{name}`: {err}")))?;
            if !root.is_dir() {
                let dest = crate::spec::validate::file_destination(&e.from, &e.to, e.to_is_dir);
                files.push(layer_file(&dest, root.is_file(), root.size.max(0) as u64));
                continue;
            }
            // One directory level at a time, each level's listings at once.
            let mut level = vec![String::new()];
            while !level.is_empty() {
                let listings = futures_util::future::try_join_all(level.iter().map(|rel| {
                    let dir = if rel.is_empty() {
                        e.from.clone()
                    } else {
                        format!("{}/{rel}", e.from)
                    };
                    async move { gw.read_dir(r, &dir, None).await }
                }))
                .await?;
                let mut next = Vec::new();
                for (rel, listing) in level.iter().zip(listings) {
                    for st in listing {
                        let child = if rel.is_empty() {
                            st.path.clone()
                        } else {
                            format!("{rel}/{}", st.path)
                        };
                        let ctx_path = if e.from == "." {
                            child.clone()
                        } else {
                            format!("{}/{child}", e.from)
                        };
                        if ignore_m.excluded(ctx_path.as_bytes(), st.is_dir())
                            || excl.excluded(child.as_bytes(), st.is_dir())
                        {
                            continue;
                        }
                        let dest = if e.to == "/" {
                            format!("/{child}")
                        } else {
                            format!("{}/{child}", e.to)
                        };
                        if st.is_dir() {
                            next.push(child);
                            files.push(LayerFile {
                                dest: dest.as_bytes()[1..].to_vec(),
                                kind: LayerFileKind::Dir,
                            });
                        } else {
                            files.push(layer_file(&dest, st.is_file(), st.size.max(0) as u64));
                        }
                    }
                }
                level = next;
            }
        }
        files.sort_by(|a, b| crate::plan::entries::path_order(&a.dest, &b.dest));
        let mut out = Vec::new();
        let mut split_sources = Vec::new();
        let mut rest = None;
        for (id, _) in split_layer(name, Some(split.min), files) {
            match id.split_once('@') {
                Some((_, dest)) => {
                    // The one source file of this layer, as a context path.
                    let path = source_of(copy, dest).unwrap_or_else(|| includes[0].clone());
                    split_sources.push(escape_pattern(&path));
                    out.push(CopyPart {
                        id,
                        source: PartSource::Listed {
                            list: list.clone(),
                            path,
                        },
                    });
                }
                None => {
                    rest = Some(out.len());
                    out.push(CopyPart {
                        id,
                        source: PartSource::Local {
                            include: includes.clone(),
                            exclude: Vec::new(),
                        },
                    });
                }
            }
        }
        // The rest layer never reads the split files: their changes leave it cached.
        if let Some(i) = rest
            && let PartSource::Local { exclude, .. } = &mut out[i].source
        {
            *exclude = ignore.iter().cloned().chain(split_sources).collect();
        }
        Ok(out)
    }

    /// A copy layer from a stage: the helper of context copies
    /// (docs/design.md §2), with each entry's `from` in the stage's final state
    /// mounted read-only at `/src/<entry index>/<name>` instead of a local
    /// source. BuildKit keys the exec by the content of those paths only, so
    /// the helper re-runs only when the stage produced other files, and writes
    /// the same layer whenever it produced the same ones.
    pub(crate) fn stage_copy_exec(
        &self,
        name: &str,
        copy: &CopyLayer,
        stages: &BTreeMap<String, StageState>,
        base_dirs: &BaseDirs,
        mode: HelperMode<'_>,
        range: &[llb::SourceRange],
    ) -> Result<(State, State), BuildError> {
        let mut local = copy.clone();
        let mut mounts = Vec::new();
        for (i, e) in local.entries.iter_mut().enumerate() {
            let stage = e.stage.take().unwrap_or_default();
            let st = stages.get(&stage).ok_or_else(|| {
                BuildError::Internal(format!(
                    "layer `{name}` copies from stage `{stage}`, which is not built"
                ))
            })?;
            let base = e.from.rsplit('/').next().unwrap_or("");
            let rel = if base.is_empty() {
                i.to_string()
            } else {
                format!("{i}/{base}")
            };
            mounts.push(
                Mount::bind(format!("/src/{rel}"), &st.state)
                    .selector(&e.from)
                    .readonly(),
            );
            e.from = rel;
        }
        let job = job_for(
            name,
            name,
            &local,
            &[],
            self.spec.image.timestamp,
            base_dirs,
        );
        self.helper
            .copy_exec(name, &job, mounts, mode, &self.map, range)
    }

    /// The helper exec of a context copy layer (docs/design.md §2).
    pub(crate) fn helper_exec(
        &self,
        part: &CopyPart,
        job: &CopyJob,
        mode: HelperMode<'_>,
        range: &[llb::SourceRange],
    ) -> Result<(State, State), BuildError> {
        let id = &part.id;
        let mount = match &part.source {
            PartSource::Local { include, exclude } => {
                let src = context_source(
                    self.opts,
                    include.clone(),
                    exclude.clone(),
                    format!("[strata] context for {id}"),
                );
                vec![Mount::bind("/src", &src).readonly()]
            }
            PartSource::Shared { state, paths } => paths
                .iter()
                .map(|p| {
                    Mount::bind(format!("/src/{p}"), state)
                        .selector(p)
                        .readonly()
                })
                .collect(),
            PartSource::Listed { list, path } => vec![
                Mount::bind(format!("/src/{path}"), list)
                    .selector(path)
                    .readonly(),
            ],
        };
        self.helper
            .copy_exec(id, job, mount, mode, &self.map, range)
    }
}

/// A path as an exclude pattern that matches only itself.
fn escape_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A listed file as a [`LayerFile`] for the split partition (content unknown).
fn layer_file(dest: &str, regular: bool, size: u64) -> LayerFile {
    let dest = dest.trim_start_matches('/').as_bytes().to_vec();
    if regular {
        LayerFile {
            dest,
            kind: LayerFileKind::File {
                source: Default::default(),
                size,
                mode: 0,
                content: crate::plan::digest::Digest::of(b""),
                input: None,
            },
        }
    } else {
        LayerFile {
            dest,
            kind: LayerFileKind::Symlink { target: Vec::new() },
        }
    }
}

/// The context path a destination comes from.
fn source_of(copy: &CopyLayer, dest: &str) -> Option<String> {
    for e in &copy.entries {
        if crate::spec::validate::file_destination(&e.from, &e.to, e.to_is_dir) == dest {
            return Some(e.from.clone());
        }
        let prefix = if e.to == "/" {
            "/".to_string()
        } else {
            format!("{}/", e.to)
        };
        if let Some(rest) = dest.strip_prefix(&prefix) {
            return Some(if e.from == "." {
                rest.to_string()
            } else {
                format!("{}/{rest}", e.from)
            });
        }
    }
    None
}
