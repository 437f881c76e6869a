//! A [`Gateway`] with no daemon, for `strata llb`: local sources read from
//! the disk, capabilities chosen by `--engine-caps`, no base image (its
//! directories are absent and its config empty) and no helper runs (copy
//! layer records are placeholders). The Definition it captures is a
//! debugging aid, not a build.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message as _;

use super::error::FrontendError;
use super::gateway::{
    Caps, FileRange, FrontendResult, Gateway, ImageConfig, Platform, Ref, ResolveMode, ResultRefs,
    SolveOptions, Stat, Warning,
};
use super::status::ErrorStatus;
use crate::proto::pb;

/// The engines `--engine-caps` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineCaps {
    /// A current BuildKit (Docker 28.5, containerd store).
    Modern,
    /// BuildKit 0.13 (Docker 26.1).
    V013,
    /// BuildKit 0.8 (Docker 20.10): no MergeOp, DiffOp, secret env or Warn.
    V08,
}

/// The daemon-less gateway.
#[derive(Debug)]
pub(crate) struct OfflineGateway {
    caps: EngineCaps,
    /// Directory of each local source name.
    locals: BTreeMap<String, PathBuf>,
    solved: Mutex<Vec<Vec<u8>>>,
    result: Mutex<Option<Vec<u8>>>,
    error: Mutex<Option<String>>,
    warnings: Mutex<Vec<String>>,
}

impl OfflineGateway {
    /// A gateway serving `local://NAME` sources from `locals`.
    pub(crate) fn new(caps: EngineCaps, locals: BTreeMap<String, PathBuf>) -> Self {
        Self {
            caps,
            locals,
            solved: Mutex::new(Vec::new()),
            result: Mutex::new(None),
            error: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The warnings the frontend sent, in order, for the caller to print.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("lock").clone()
    }

    /// The Definition returned as the result, or the error returned.
    pub(crate) fn outcome(&self) -> Result<Vec<u8>, String> {
        if let Some(e) = self.error.lock().expect("lock").clone() {
            return Err(e);
        }
        self.result
            .lock()
            .expect("lock")
            .clone()
            .ok_or_else(|| "the frontend returned no result".to_string())
    }

    /// Every Definition solved so far, in order (the image's, the records'
    /// and the checks').
    #[cfg(test)]
    pub(crate) fn solved(&self) -> Vec<Vec<u8>> {
        self.solved.lock().expect("lock").clone()
    }

    fn definition(&self, r: &Ref) -> Option<Vec<u8>> {
        let i: usize = r.id.strip_prefix("offline-")?.parse().ok()?;
        self.solved.lock().expect("lock").get(i).cloned()
    }

    /// The directory of the local source a ref was solved from, if any.
    fn local_dir(&self, r: &Ref) -> Option<PathBuf> {
        let def = pb::Definition::decode(self.definition(r)?.as_slice()).ok()?;
        def.def.iter().find_map(|bytes| {
            let op = pb::Op::decode(bytes.as_slice()).ok()?;
            match op.op? {
                pb::op::Op::Source(s) => {
                    let name = s.identifier.strip_prefix("local://")?;
                    self.locals.get(name).cloned()
                }
                _ => None,
            }
        })
    }

    /// Whether a ref comes from an exec (a helper's record output).
    fn has_exec(&self, r: &Ref) -> bool {
        let Some(bytes) = self.definition(r) else {
            return false;
        };
        let Ok(def) = pb::Definition::decode(bytes.as_slice()) else {
            return false;
        };
        def.def.iter().any(|b| {
            pb::Op::decode(b.as_slice()).is_ok_and(|op| matches!(op.op, Some(pb::op::Op::Exec(_))))
        })
    }

    fn path(&self, r: &Ref, path: &str) -> Result<PathBuf, FrontendError> {
        match self.local_dir(r) {
            Some(dir) => Ok(dir.join(path.trim_start_matches('/'))),
            None => Err(not_found(path)),
        }
    }
}

fn not_found(path: &str) -> FrontendError {
    FrontendError::rpc(
        "offline",
        tonic::Status::not_found(format!("{path}: not available offline")),
    )
}

fn stat(path: &Path, name: String) -> Option<Stat> {
    let m = fs_err::symlink_metadata(path).ok()?;
    const DIR: u32 = 1 << 31;
    const LINK: u32 = 1 << 27;
    let kind = if m.is_dir() {
        DIR
    } else if m.file_type().is_symlink() {
        LINK
    } else {
        0
    };
    Some(Stat {
        path: name,
        mode: (m.mode() & 0o777) | kind,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size() as i64,
        linkname: fs_err::read_link(path)
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Default::default()
    })
}

impl Gateway for OfflineGateway {
    async fn ping(&self) -> Result<Caps, FrontendError> {
        let mut llb: BTreeSet<String> = [
            "source.local",
            "source.image",
            "exec.mount.cache",
            "file.base",
        ]
        .map(String::from)
        .into();
        let mut gateway: BTreeSet<String> = ["proto.refarray", "gateway.solve.evaluate"]
            .map(String::from)
            .into();
        if self.caps != EngineCaps::V08 {
            llb.extend(
                [
                    "mergeop",
                    "diffop",
                    "exec.secretenv",
                    "source.local.differ",
                    "exec.mount.cache.content",
                ]
                .map(String::from),
            );
            gateway.insert("gateway.warnings".into());
        }
        Ok(Caps {
            gateway,
            llb,
            workers: Vec::new(),
        })
    }

    async fn solve(&self, definition: &[u8], _: &SolveOptions) -> Result<Ref, FrontendError> {
        let mut solved = self.solved.lock().expect("lock");
        solved.push(definition.to_vec());
        Ok(Ref {
            id: format!("offline-{}", solved.len() - 1),
            definition: Some(definition.to_vec()),
        })
    }

    async fn read_file(
        &self,
        r: &Ref,
        path: &str,
        range: Option<FileRange>,
    ) -> Result<Vec<u8>, FrontendError> {
        if path == "record.json" && self.has_exec(r) {
            // A helper's record: the helper does not run offline.
            let zero = format!("sha256:{}", "0".repeat(64));
            return Ok(
                format!(r#"{{"layer":"offline","inputs":"{zero}","key":"{zero}"}}"#).into_bytes(),
            );
        }
        let p = self.path(r, path)?;
        // A range is read as BuildKit reads it: from its offset, at most its
        // length (the spec, ignore and lock files are read bounded).
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek};
            let mut f = fs_err::File::open(&p)?;
            let mut out = Vec::new();
            match range {
                Some(FileRange { offset, length }) => {
                    f.seek(std::io::SeekFrom::Start(offset))?;
                    f.take(length).read_to_end(&mut out)?;
                }
                None => {
                    f.read_to_end(&mut out)?;
                }
            }
            Ok(out)
        };
        read().map_err(|_| not_found(path))
    }

    async fn read_dir(
        &self,
        r: &Ref,
        path: &str,
        include: Option<&str>,
    ) -> Result<Vec<Stat>, FrontendError> {
        let dir = self.path(r, path)?;
        let mut out = Vec::new();
        for e in fs_err::read_dir(&dir)
            .map_err(|_| not_found(path))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if include.is_some_and(|i| i != name) {
                continue;
            }
            if let Some(s) = stat(&e.path(), name) {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn stat_file(&self, r: &Ref, path: &str) -> Result<Stat, FrontendError> {
        let p = self.path(r, path)?;
        stat(&p, path.to_string()).ok_or_else(|| not_found(path))
    }

    async fn resolve_image_config(
        &self,
        _: &str,
        _: Option<&Platform>,
        _: ResolveMode,
    ) -> Result<ImageConfig, FrontendError> {
        Ok(ImageConfig {
            digest: String::new(),
            config: b"{}".to_vec(),
        })
    }

    async fn warn(&self, w: &Warning) -> Result<(), FrontendError> {
        self.warnings.lock().expect("lock").push(w.short.clone());
        Ok(())
    }

    async fn return_result(&self, result: FrontendResult) -> Result<(), FrontendError> {
        let r = match result.refs {
            ResultRefs::Single(r) => r,
            ResultRefs::PerPlatform(map) => map.into_values().next().unwrap_or_default(),
        };
        *self.result.lock().expect("lock") = self.definition(&r);
        Ok(())
    }

    async fn return_error(&self, error: ErrorStatus) -> Result<(), FrontendError> {
        *self.error.lock().expect("lock") = Some(error.message);
        Ok(())
    }
}
