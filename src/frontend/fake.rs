//! A [`Gateway`] for unit tests of frontend logic: it records every call,
//! serves files from a map (whatever ref is asked) and images from another,
//! and answers `Solve` with fresh ref IDs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::error::FrontendError;
use super::gateway::{
    Caps, FileRange, FrontendResult, Gateway, ImageConfig, Platform, Ref, ResolveMode,
    SolveOptions, Stat, Warning,
};
use super::status::ErrorStatus;

/// One recorded gateway call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Ping,
    Solve {
        definition: Vec<u8>,
        options: SolveOptions,
    },
    ReadFile {
        id: String,
        path: String,
        range: Option<FileRange>,
    },
    ReadDir {
        id: String,
        path: String,
        include_pattern: Option<String>,
    },
    StatFile {
        id: String,
        path: String,
    },
    ResolveImageConfig {
        image: String,
        platform: Option<Platform>,
        mode: ResolveMode,
    },
    Warn(Warning),
    ReturnResult(FrontendResult),
    ReturnError(ErrorStatus),
}

/// The fake gateway.
#[derive(Debug, Default)]
pub(crate) struct FakeGateway {
    caps: Caps,
    files: BTreeMap<String, Vec<u8>>,
    images: BTreeMap<String, ImageConfig>,
    /// What every evaluated `Solve` fails with (a failing build step).
    failing_evaluate: Option<tonic::Status>,
    calls: Mutex<Vec<Call>>,
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn not_found(call: &'static str, path: &str) -> FrontendError {
    FrontendError::rpc(
        call,
        tonic::Status::not_found(format!("{path}: no such file or directory")),
    )
}

impl FakeGateway {
    /// A fake daemon with these capabilities.
    pub(crate) fn new(caps: Caps) -> FakeGateway {
        FakeGateway {
            caps,
            ..FakeGateway::default()
        }
    }

    /// Serves `data` at `path` in every ref.
    pub(crate) fn with_file(mut self, path: &str, data: impl Into<Vec<u8>>) -> FakeGateway {
        self.files.insert(clean(path), data.into());
        self
    }

    /// Resolves `image` to this digest and config.
    pub(crate) fn with_image(mut self, image: &str, digest: &str, config: &[u8]) -> FakeGateway {
        let resolved = ImageConfig {
            digest: digest.to_string(),
            config: config.to_vec(),
        };
        self.images.insert(image.to_string(), resolved);
        self
    }

    /// Fails every `Solve` that asks for evaluation with `status`, as
    /// BuildKit does when a step of the build fails.
    pub(crate) fn failing_evaluate(mut self, status: tonic::Status) -> FakeGateway {
        self.failing_evaluate = Some(status);
        self
    }

    /// The calls so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: Call) -> usize {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(call);
        calls.len()
    }

    fn stat_of(&self, path: &str) -> Option<Stat> {
        let path = clean(path);
        if let Some(data) = self.files.get(&path) {
            return Some(Stat {
                path,
                mode: 0o644,
                size: data.len() as i64,
                ..Stat::default()
            });
        }
        let prefix = format!("{path}/");
        let is_dir = path.is_empty() || self.files.keys().any(|k| k.starts_with(&prefix));
        is_dir.then(|| Stat {
            path,
            mode: (1 << 31) | 0o755,
            ..Stat::default()
        })
    }
}

impl Gateway for FakeGateway {
    async fn ping(&self) -> Result<Caps, FrontendError> {
        self.record(Call::Ping);
        Ok(self.caps.clone())
    }

    async fn solve(&self, definition: &[u8], options: &SolveOptions) -> Result<Ref, FrontendError> {
        let n = self.record(Call::Solve {
            definition: definition.to_vec(),
            options: options.clone(),
        });
        if let Some(status) = self.failing_evaluate.as_ref().filter(|_| options.evaluate) {
            return Err(FrontendError::rpc("Solve", status.clone()));
        }
        Ok(Ref {
            id: format!("ref{n}"),
            definition: Some(definition.to_vec()),
        })
    }

    async fn read_file(
        &self,
        r: &Ref,
        path: &str,
        range: Option<FileRange>,
    ) -> Result<Vec<u8>, FrontendError> {
        self.record(Call::ReadFile {
            id: r.id.clone(),
            path: path.to_string(),
            range,
        });
        let data = self
            .files
            .get(&clean(path))
            .ok_or_else(|| not_found("ReadFile", path))?;
        let Some(range) = range else {
            return Ok(data.clone());
        };
        let start = usize::try_from(range.offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let len = usize::try_from(range.length).unwrap_or(usize::MAX);
        Ok(data[start..start.saturating_add(len).min(data.len())].to_vec())
    }

    async fn read_dir(
        &self,
        r: &Ref,
        path: &str,
        include_pattern: Option<&str>,
    ) -> Result<Vec<Stat>, FrontendError> {
        self.record(Call::ReadDir {
            id: r.id.clone(),
            path: path.to_string(),
            include_pattern: include_pattern.map(str::to_string),
        });
        let dir = clean(path);
        if !self.stat_of(&dir).is_some_and(|s| s.is_dir()) {
            return Err(not_found("ReadDir", path));
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut names: Vec<&str> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest))
            .collect();
        names.dedup();
        Ok(names
            .into_iter()
            .filter_map(|name| {
                let mut stat = self.stat_of(&format!("{prefix}{name}"))?;
                stat.path = name.to_string();
                Some(stat)
            })
            .collect())
    }

    async fn stat_file(&self, r: &Ref, path: &str) -> Result<Stat, FrontendError> {
        self.record(Call::StatFile {
            id: r.id.clone(),
            path: path.to_string(),
        });
        self.stat_of(path)
            .ok_or_else(|| not_found("StatFile", path))
    }

    async fn resolve_image_config(
        &self,
        image: &str,
        platform: Option<&Platform>,
        mode: ResolveMode,
    ) -> Result<ImageConfig, FrontendError> {
        self.record(Call::ResolveImageConfig {
            image: image.to_string(),
            platform: platform.cloned(),
            mode,
        });
        self.images.get(image).cloned().ok_or_else(|| {
            FrontendError::rpc(
                "ResolveImageConfig",
                tonic::Status::not_found(format!("{image}: not found")),
            )
        })
    }

    async fn warn(&self, warning: &Warning) -> Result<(), FrontendError> {
        self.record(Call::Warn(warning.clone()));
        Ok(())
    }

    async fn return_result(&self, result: FrontendResult) -> Result<(), FrontendError> {
        self.record(Call::ReturnResult(result));
        Ok(())
    }

    async fn return_error(&self, error: ErrorStatus) -> Result<(), FrontendError> {
        self.record(Call::ReturnError(error));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn serves_files_dirs_and_ranges() {
        let gw = FakeGateway::default()
            .with_file("a/b.txt", "hello")
            .with_file("a/c/d", "x")
            .with_file("top", "");
        let r = Ref::default();
        block_on(async {
            let range = FileRange {
                offset: 1,
                length: 3,
            };
            assert_eq!(
                gw.read_file(&r, "/a/b.txt", Some(range)).await.unwrap(),
                b"ell"
            );
            assert_eq!(gw.read_file(&r, "a/b.txt", None).await.unwrap(), b"hello");
            assert!(gw.read_file(&r, "nope", None).await.is_err());
            let names: Vec<String> = gw
                .read_dir(&r, "a", None)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.path)
                .collect();
            assert_eq!(names, ["b.txt", "c"]);
            assert!(gw.stat_file(&r, "a/c").await.unwrap().is_dir());
            assert_eq!(gw.stat_file(&r, "a/b.txt").await.unwrap().size, 5);
        });
        assert_eq!(gw.calls().len(), 6);
    }

    #[test]
    fn resolves_known_images() {
        let gw = FakeGateway::default().with_image("debian:12", "sha256:ab", b"{}");
        block_on(async {
            let got = gw.resolve_image_config("debian:12", None, ResolveMode::Default);
            assert_eq!(got.await.unwrap().digest, "sha256:ab");
            let missing = gw.resolve_image_config("nope", None, ResolveMode::Pull);
            assert!(missing.await.is_err());
        });
        let Call::ResolveImageConfig { mode, .. } = &gw.calls()[1] else {
            panic!()
        };
        assert_eq!(*mode, ResolveMode::Pull);
    }
}
