//! The BuildKit gateway as the frontend sees it: the [`Gateway`] trait, its
//! value types, and [`GrpcGateway`], the tonic implementation that talks to
//! the `LLBBridge` service (buildkit-gateway.md §2). Frontend logic is written
//! against the trait, so unit tests run it on a fake.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;
use tonic::transport::Channel;

use super::error::FrontendError;
use super::status::{ErrorStatus, SourceLocation};
use super::stdio::{MAX_DECODING_MESSAGE_SIZE, MAX_REQUEST_SIZE};
use crate::proto::moby::buildkit::v1::frontend as gw;
use crate::proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient;
use crate::proto::{fsutil, pb};

/// Capability IDs strata checks (buildkit-gateway.md §4).
pub(crate) mod cap {
    /// `Result.ref`/`refs` instead of the deprecated string IDs (v0.7).
    pub(crate) const PROTO_REF_ARRAY: &str = "proto.refarray";
    /// `Solve{Evaluate}` (v0.8).
    pub(crate) const SOLVE_EVALUATE: &str = "gateway.solve.evaluate";
    /// The `Warn` RPC (v0.10).
    pub(crate) const WARNINGS: &str = "gateway.warnings";
    /// `local.differ` on local sources (LLB, v0.9).
    pub(crate) const SOURCE_LOCAL_DIFFER: &str = "source.local.differ";
    /// `MergeOp` (LLB, v0.10).
    pub(crate) const MERGE_OP: &str = "mergeop";
    /// `DiffOp` (LLB, v0.10).
    pub(crate) const DIFF_OP: &str = "diffop";
    /// Secrets as environment variables (LLB, v0.10).
    pub(crate) const EXEC_SECRET_ENV: &str = "exec.secretenv";
    /// `Meta.removeMountStubsRecursive` (LLB, v0.11).
    pub(crate) const EXEC_REMOVE_MOUNT_STUBS_RECURSIVE: &str =
        "exec.meta.removemountstubs.recursive";
    /// `Mount.contentCache` (LLB, v0.13).
    pub(crate) const EXEC_MOUNT_CONTENT_CACHE: &str = "exec.mount.cache.content";
}

/// How long `Ping` may take, as in BuildKit's own client.
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes asked for per `ReadFile` call: well under every daemon's limits.
pub(crate) const READ_CHUNK: u64 = 2 << 20;

/// An OCI platform: the LLB one, the only platform type the BuildKit
/// protocol code uses.
pub(crate) use crate::llb::Platform;

/// A BuildKit worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Worker {
    /// Its ID.
    pub(crate) id: String,
    /// Labels such as `org.mobyproject.buildkit.worker.snapshotter`.
    pub(crate) labels: BTreeMap<String, String>,
    /// The platforms it builds for, native first.
    pub(crate) platforms: Vec<Platform>,
    /// BuildKit's version, where the daemon reports it (from 0.11).
    pub(crate) buildkit_version: Option<String>,
}

/// What the daemon supports: the enabled gateway and LLB capabilities, and
/// its workers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Caps {
    /// Enabled gateway capabilities (`proto.refarray`, …).
    pub(crate) gateway: BTreeSet<String>,
    /// Enabled LLB capabilities (`mergeop`, …).
    pub(crate) llb: BTreeSet<String>,
    /// The workers.
    pub(crate) workers: Vec<Worker>,
}

impl Caps {
    /// Whether a gateway capability is enabled.
    pub(crate) fn has_gateway(&self, id: &str) -> bool {
        self.gateway.contains(id)
    }

    /// Whether an LLB capability is enabled.
    pub(crate) fn has_llb(&self, id: &str) -> bool {
        self.llb.contains(id)
    }

    /// The first worker's native platform, if it reported any.
    pub(crate) fn default_platform(&self) -> Option<&Platform> {
        self.workers.first().and_then(|w| w.platforms.first())
    }

    fn from_pong(pong: gw::PongResponse) -> Caps {
        let enabled = |caps: Vec<crate::proto::moby::buildkit::v1::apicaps::ApiCap>| {
            caps.into_iter()
                .filter(|c| c.enabled)
                .map(|c| c.id)
                .collect::<BTreeSet<_>>()
        };
        Caps {
            gateway: enabled(pong.frontend_api_caps),
            llb: enabled(pong.llb_caps),
            workers: pong
                .workers
                .into_iter()
                .map(|w| Worker {
                    id: w.id,
                    labels: w.labels,
                    platforms: w
                        .platforms
                        .iter()
                        .map(crate::llb::platform_from_proto)
                        .collect(),
                    buildkit_version: w.buildkit_version.map(|v| v.version),
                })
                .collect(),
        }
    }
}

/// A cache to import, as `--cache-from` gives it (`type=registry,ref=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CacheImport {
    /// `registry`, `local`, `gha`, …
    pub(crate) kind: String,
    /// Its attributes.
    pub(crate) attrs: BTreeMap<String, String>,
}

/// How to solve a definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SolveOptions {
    /// Caches to import.
    pub(crate) cache_imports: Vec<CacheImport>,
    /// Build now rather than when the result is first read.
    pub(crate) evaluate: bool,
}

/// A solved result on the daemon. The empty ID is scratch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Ref {
    /// The daemon's ID for it.
    pub(crate) id: String,
    /// The definition it was solved from (an encoded `pb.Definition`), to
    /// build on it in later definitions; absent from old daemons.
    pub(crate) definition: Option<Vec<u8>>,
}

/// A byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileRange {
    /// The first byte.
    pub(crate) offset: u64,
    /// How many bytes at most.
    pub(crate) length: u64,
}

/// File metadata from `StatFile` and `ReadDir`. `mode` holds Go's
/// `os.FileMode` bits, as fsutil sends them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Stat {
    /// The path, relative to the directory read or as asked.
    pub(crate) path: String,
    /// Go `os.FileMode` bits: permissions plus type and special-bit flags.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Size in bytes, for non-directories.
    pub(crate) size: i64,
    /// Modification time, Unix nanoseconds.
    pub(crate) mod_time: i64,
    /// A symlink's target.
    pub(crate) linkname: String,
    /// Device major number.
    pub(crate) devmajor: i64,
    /// Device minor number.
    pub(crate) devminor: i64,
    /// Extended attributes.
    pub(crate) xattrs: BTreeMap<String, Vec<u8>>,
}

/// Go `os.FileMode` flags.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;
/// Go's `ModeType`: dir, symlink, device, named pipe, socket, char device,
/// irregular.
const GO_MODE_TYPE: u32 =
    GO_MODE_DIR | GO_MODE_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_STICKY: u32 = 1 << 20;

impl Stat {
    /// Whether it is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.mode & GO_MODE_DIR != 0
    }

    /// Whether it is a symlink.
    pub(crate) fn is_symlink(&self) -> bool {
        self.mode & GO_MODE_SYMLINK != 0
    }

    /// Whether it is a regular file.
    pub(crate) fn is_file(&self) -> bool {
        self.mode & GO_MODE_TYPE == 0
    }

    /// The Unix permission bits, special bits included (`0o1777` for `/tmp`).
    pub(crate) fn permissions(&self) -> u32 {
        let mut mode = self.mode & 0o777;
        if self.mode & GO_MODE_SETUID != 0 {
            mode |= 0o4000;
        }
        if self.mode & GO_MODE_SETGID != 0 {
            mode |= 0o2000;
        }
        if self.mode & GO_MODE_STICKY != 0 {
            mode |= 0o1000;
        }
        mode
    }

    fn from_pb(s: fsutil::types::Stat) -> Stat {
        Stat {
            path: s.path,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.size,
            mod_time: s.mod_time,
            linkname: s.linkname,
            devmajor: s.devmajor,
            devminor: s.devminor,
            xattrs: s.xattrs,
        }
    }
}

/// Where `ResolveImageConfig` looks: the one mode type, shared with the
/// LLB image source.
pub(crate) use crate::llb::ResolveMode;

/// A resolved image: its manifest digest and config JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ImageConfig {
    /// `sha256:…` of the manifest.
    pub(crate) digest: String,
    /// The image config, JSON.
    pub(crate) config: Vec<u8>,
}

/// A warning shown with the build's progress (`gateway.warnings`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Warning {
    /// The digest of the vertex it belongs to.
    pub(crate) vertex: String,
    /// Its level; BuildKit's linter uses 1.
    pub(crate) level: i64,
    /// One line.
    pub(crate) short: String,
    /// More lines.
    pub(crate) detail: Vec<String>,
    /// A link to documentation.
    pub(crate) url: Option<String>,
    /// Where in the spec.
    pub(crate) location: Option<SourceLocation>,
}

/// The refs of a frontend result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResultRefs {
    /// One image.
    Single(Ref),
    /// One ref per platform ID (`linux/arm64`); the metadata must carry
    /// `refs.platforms`.
    PerPlatform(BTreeMap<String, Ref>),
}

/// What a frontend returns: refs and exporter metadata such as
/// `containerimage.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrontendResult {
    /// The refs.
    pub(crate) refs: ResultRefs,
    /// Exporter metadata.
    pub(crate) metadata: BTreeMap<String, Vec<u8>>,
}

/// The calls a frontend makes on BuildKit. Each future is `Send`.
pub(crate) trait Gateway {
    /// The daemon's enabled capabilities and workers.
    fn ping(&self) -> impl Future<Output = Result<Caps, FrontendError>> + Send;

    /// Solves an encoded `pb.Definition` (empty bytes: scratch).
    fn solve(
        &self,
        definition: &[u8],
        options: &SolveOptions,
    ) -> impl Future<Output = Result<Ref, FrontendError>> + Send;

    /// Reads a file of a solved ref, all of it or a range, in chunks of
    /// [`READ_CHUNK`] bytes.
    fn read_file(
        &self,
        r: &Ref,
        path: &str,
        range: Option<FileRange>,
    ) -> impl Future<Output = Result<Vec<u8>, FrontendError>> + Send;

    /// Lists a directory of a solved ref, optionally filtered by a pattern.
    fn read_dir(
        &self,
        r: &Ref,
        path: &str,
        include_pattern: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Stat>, FrontendError>> + Send;

    /// The metadata of one path of a solved ref (symlinks not followed).
    fn stat_file(
        &self,
        r: &Ref,
        path: &str,
    ) -> impl Future<Output = Result<Stat, FrontendError>> + Send;

    /// Resolves an image reference to its manifest digest and config.
    fn resolve_image_config(
        &self,
        image: &str,
        platform: Option<&Platform>,
        mode: ResolveMode,
    ) -> impl Future<Output = Result<ImageConfig, FrontendError>> + Send;

    /// Shows a warning (needs [`cap::WARNINGS`]).
    fn warn(&self, warning: &Warning) -> impl Future<Output = Result<(), FrontendError>> + Send;

    /// Hands the build's result to BuildKit. Call once, then exit 0.
    fn return_result(
        &self,
        result: FrontendResult,
    ) -> impl Future<Output = Result<(), FrontendError>> + Send;

    /// Fails the build with an error. Call once, then exit 0.
    fn return_error(
        &self,
        error: ErrorStatus,
    ) -> impl Future<Output = Result<(), FrontendError>> + Send;
}

/// The gateway over gRPC.
#[derive(Debug)]
pub(crate) struct GrpcGateway {
    client: LlbBridgeClient<Channel>,
    session_id: String,
    caps: OnceLock<Caps>,
    legacy_refs: bool,
}

impl GrpcGateway {
    /// A gateway on a connected channel. `session_id` is
    /// `BUILDKIT_SESSION_ID`, used to resolve images through the client.
    pub(crate) fn new(channel: Channel, session_id: impl Into<String>) -> GrpcGateway {
        let client = LlbBridgeClient::new(channel)
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_REQUEST_SIZE);
        GrpcGateway {
            client,
            session_id: session_id.into(),
            caps: OnceLock::new(),
            legacy_refs: false,
        }
    }

    /// Connects over stdin/stdout. Must run inside a tokio runtime.
    pub(crate) async fn connect(
        session_id: impl Into<String>,
    ) -> Result<GrpcGateway, FrontendError> {
        Ok(GrpcGateway::new(super::stdio::connect().await?, session_id))
    }

    fn client(&self) -> LlbBridgeClient<Channel> {
        self.client.clone()
    }

    async fn caps(&self) -> Result<&Caps, FrontendError> {
        if self.caps.get().is_none() {
            self.ping().await?;
        }
        self.caps.get().ok_or_else(|| FrontendError::Protocol {
            call: "Ping",
            what: "no capabilities".into(),
        })
    }

    async fn read_range(
        &self,
        id: &str,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, FrontendError> {
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let request = gw::ReadFileRequest {
            r#ref: id.to_string(),
            file_path: path.to_string(),
            range: Some(gw::FileRange {
                offset: to_i64(offset),
                length: to_i64(length),
            }),
            mount_index: 0,
        };
        let answer = self
            .client()
            .read_file(request)
            .await
            .map_err(|s| FrontendError::rpc("ReadFile", s))?;
        Ok(answer.into_inner().data)
    }
}

/// Fails before sending a request BuildKit before 0.14 would refuse.
fn check_size(call: &'static str, request: &impl Message) -> Result<(), FrontendError> {
    let size = request.encoded_len();
    if size > MAX_REQUEST_SIZE {
        return Err(FrontendError::RequestTooLarge {
            call,
            size,
            limit: MAX_REQUEST_SIZE,
        });
    }
    Ok(())
}

/// Reads a range (or everything, with `None`) in calls of at most
/// [`READ_CHUNK`] bytes, until a short answer or the range's end.
async fn read_chunked<F, Fut>(
    range: Option<FileRange>,
    mut read: F,
) -> Result<Vec<u8>, FrontendError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, FrontendError>>,
{
    let (start, limit) = match range {
        Some(FileRange { offset, length }) => (offset, Some(length)),
        None => (0, None),
    };
    let mut data = Vec::new();
    loop {
        let done = data.len() as u64;
        let want = match limit {
            Some(limit) if done >= limit => break,
            Some(limit) => READ_CHUNK.min(limit - done),
            None => READ_CHUNK,
        };
        let chunk = read(start + done, want).await?;
        let short = (chunk.len() as u64) < want;
        data.extend_from_slice(&chunk);
        if short {
            break;
        }
    }
    Ok(data)
}

fn ref_from_pb(r: gw::Ref) -> Ref {
    Ref {
        id: r.id,
        definition: r.def.map(|d| d.encode_to_vec()),
    }
}

fn ref_to_pb(r: &Ref) -> Result<gw::Ref, FrontendError> {
    let def = match &r.definition {
        Some(bytes) => {
            Some(pb::Definition::decode(bytes.as_slice()).map_err(FrontendError::Definition)?)
        }
        None => None,
    };
    Ok(gw::Ref {
        id: r.id.clone(),
        def,
    })
}

/// The wire form of a result: `Ref`/`RefMap` with `proto.refarray`, else the
/// deprecated string IDs (only `Ref.id` is read by BuildKit either way).
fn result_to_pb(result: FrontendResult, ref_array: bool) -> Result<gw::Result, FrontendError> {
    use gw::result::Result as R;
    let refs = match &result.refs {
        ResultRefs::Single(r) if ref_array => R::Ref(ref_to_pb(r)?),
        ResultRefs::Single(r) => R::RefDeprecated(r.id.clone()),
        ResultRefs::PerPlatform(map) if ref_array => R::Refs(gw::RefMap {
            refs: map
                .iter()
                .map(|(k, r)| Ok((k.clone(), ref_to_pb(r)?)))
                .collect::<Result<_, FrontendError>>()?,
        }),
        ResultRefs::PerPlatform(map) => R::RefsDeprecated(gw::RefMapDeprecated {
            refs: map.iter().map(|(k, r)| (k.clone(), r.id.clone())).collect(),
        }),
    };
    Ok(gw::Result {
        result: Some(refs),
        metadata: result.metadata,
    })
}

fn source_info(location: &SourceLocation) -> (pb::SourceInfo, Vec<pb::Range>) {
    let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let info = pb::SourceInfo {
        filename: location.filename.clone(),
        data: location.data.clone(),
        ..Default::default()
    };
    let ranges = location
        .lines
        .iter()
        .map(|&(start, end)| pb::Range {
            start: Some(pb::Position {
                line: to_i32(start),
                character: 0,
            }),
            end: Some(pb::Position {
                line: to_i32(end),
                character: 0,
            }),
        })
        .collect();
    (info, ranges)
}

impl Gateway for GrpcGateway {
    async fn ping(&self) -> Result<Caps, FrontendError> {
        let mut client = self.client();
        let answer = tokio::time::timeout(PING_TIMEOUT, client.ping(gw::PingRequest {}))
            .await
            .map_err(|_| FrontendError::Timeout {
                call: "Ping",
                secs: PING_TIMEOUT.as_secs(),
            })?
            .map_err(|s| FrontendError::rpc("Ping", s))?;
        let caps = Caps::from_pong(answer.into_inner());
        let _ = self.caps.set(caps.clone());
        Ok(caps)
    }

    async fn solve(&self, definition: &[u8], options: &SolveOptions) -> Result<Ref, FrontendError> {
        let definition = pb::Definition::decode(definition).map_err(FrontendError::Definition)?;
        let request = gw::SolveRequest {
            definition: Some(definition),
            allow_result_return: true,
            allow_result_array_ref: true,
            cache_imports: options
                .cache_imports
                .iter()
                .map(|c| gw::CacheOptionsEntry {
                    r#type: c.kind.clone(),
                    attrs: c.attrs.clone(),
                })
                .collect(),
            evaluate: options.evaluate,
            ..Default::default()
        };
        check_size("Solve", &request)?;
        let answer = self
            .client()
            .solve(request)
            .await
            .map_err(|s| FrontendError::rpc("Solve", s))?
            .into_inner();
        use gw::result::Result as R;
        match answer.result.and_then(|r| r.result) {
            Some(R::Ref(r)) => Ok(ref_from_pb(r)),
            Some(R::RefDeprecated(id)) => Ok(Ref {
                id,
                definition: None,
            }),
            None => Ok(Ref {
                id: answer.r#ref,
                definition: None,
            }),
            Some(R::Refs(_) | R::RefsDeprecated(_)) => Err(FrontendError::Protocol {
                call: "Solve",
                what: "a map of refs where one ref was expected".into(),
            }),
        }
    }

    async fn read_file(
        &self,
        r: &Ref,
        path: &str,
        range: Option<FileRange>,
    ) -> Result<Vec<u8>, FrontendError> {
        read_chunked(range, |offset, length| {
            self.read_range(&r.id, path, offset, length)
        })
        .await
    }

    async fn read_dir(
        &self,
        r: &Ref,
        path: &str,
        include_pattern: Option<&str>,
    ) -> Result<Vec<Stat>, FrontendError> {
        let request = gw::ReadDirRequest {
            r#ref: r.id.clone(),
            dir_path: path.to_string(),
            include_pattern: include_pattern.unwrap_or_default().to_string(),
            mount_index: 0,
        };
        let answer = self
            .client()
            .read_dir(request)
            .await
            .map_err(|s| FrontendError::rpc("ReadDir", s))?;
        Ok(answer
            .into_inner()
            .entries
            .into_iter()
            .map(Stat::from_pb)
            .collect())
    }

    async fn stat_file(&self, r: &Ref, path: &str) -> Result<Stat, FrontendError> {
        let request = gw::StatFileRequest {
            r#ref: r.id.clone(),
            path: path.to_string(),
            mount_index: 0,
        };
        let answer = self
            .client()
            .stat_file(request)
            .await
            .map_err(|s| FrontendError::rpc("StatFile", s))?;
        answer
            .into_inner()
            .stat
            .map(Stat::from_pb)
            .ok_or_else(|| FrontendError::Protocol {
                call: "StatFile",
                what: format!("no stat for `{path}`"),
            })
    }

    async fn resolve_image_config(
        &self,
        image: &str,
        platform: Option<&Platform>,
        mode: ResolveMode,
    ) -> Result<ImageConfig, FrontendError> {
        let request = gw::ResolveImageConfigRequest {
            r#ref: image.to_string(),
            platform: platform.map(crate::llb::platform_to_proto),
            resolve_mode: mode.as_str().to_string(),
            log_name: format!("[strata] load metadata for {image}"),
            session_id: self.session_id.clone(),
            ..Default::default()
        };
        let answer = self
            .client()
            .resolve_image_config(request)
            .await
            .map_err(|s| FrontendError::rpc("ResolveImageConfig", s))?
            .into_inner();
        Ok(ImageConfig {
            digest: answer.digest,
            config: answer.config,
        })
    }

    async fn warn(&self, warning: &Warning) -> Result<(), FrontendError> {
        let (info, ranges) = match &warning.location {
            Some(location) => {
                let (info, ranges) = source_info(location);
                (Some(info), ranges)
            }
            None => (None, Vec::new()),
        };
        let request = gw::WarnRequest {
            digest: warning.vertex.clone(),
            level: warning.level,
            short: warning.short.clone().into_bytes(),
            detail: warning
                .detail
                .iter()
                .map(|d| d.clone().into_bytes())
                .collect(),
            url: warning.url.clone().unwrap_or_default(),
            info,
            ranges,
        };
        check_size("Warn", &request)?;
        self.client()
            .warn(request)
            .await
            .map_err(|s| FrontendError::rpc("Warn", s))?;
        Ok(())
    }

    async fn return_result(&self, result: FrontendResult) -> Result<(), FrontendError> {
        let ref_array = !self.legacy_refs && self.caps().await?.has_gateway(cap::PROTO_REF_ARRAY);
        let request = gw::ReturnRequest {
            result: Some(result_to_pb(result, ref_array)?),
            error: None,
        };
        check_size("Return", &request)?;
        self.client()
            .r#return(request)
            .await
            .map_err(|s| FrontendError::rpc("Return", s))?;
        Ok(())
    }

    async fn return_error(&self, error: ErrorStatus) -> Result<(), FrontendError> {
        let mut request = gw::ReturnRequest {
            result: None,
            error: Some(error.to_proto()),
        };
        // The error must get through: without room for its details, send the
        // message alone.
        if check_size("Return", &request).is_err() {
            request.error = Some(
                ErrorStatus {
                    details: Vec::new(),
                    ..error
                }
                .to_proto(),
            );
        }
        check_size("Return", &request)?;
        self.client()
            .r#return(request)
            .await
            .map_err(|s| FrontendError::rpc("Return", s))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::moby::buildkit::v1::apicaps::ApiCap;
    use crate::proto::moby::buildkit::v1::types::WorkerRecord;

    #[test]
    fn caps_keep_only_enabled_ones() {
        let cap = |id: &str, enabled| ApiCap {
            id: id.into(),
            enabled,
            ..Default::default()
        };
        let pong = gw::PongResponse {
            frontend_api_caps: vec![cap("proto.refarray", true), cap("gateway.exec", false)],
            llb_caps: vec![cap("mergeop", false), cap("file.base", true)],
            workers: vec![WorkerRecord {
                id: "w1".into(),
                platforms: vec![pb::Platform {
                    architecture: "arm".into(),
                    os: "linux".into(),
                    variant: "v7".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let caps = Caps::from_pong(pong);
        assert!(caps.has_gateway(cap::PROTO_REF_ARRAY));
        assert!(!caps.has_gateway("gateway.exec"));
        assert!(!caps.has_llb(cap::MERGE_OP));
        assert!(caps.has_llb("file.base"));
        assert_eq!(caps.default_platform().unwrap().to_string(), "linux/arm/v7");
    }

    #[test]
    fn stat_decodes_go_file_modes() {
        let dir = Stat {
            mode: GO_MODE_DIR | GO_MODE_STICKY | 0o777,
            ..Default::default()
        };
        assert!(dir.is_dir() && !dir.is_file() && !dir.is_symlink());
        assert_eq!(dir.permissions(), 0o1777);
        let link = Stat {
            mode: GO_MODE_SYMLINK | 0o777,
            ..Default::default()
        };
        assert!(link.is_symlink() && !link.is_file());
        let file = Stat {
            mode: GO_MODE_SETUID | 0o755,
            ..Default::default()
        };
        assert!(file.is_file());
        assert_eq!(file.permissions(), 0o4755);
    }

    fn chunked(file: &[u8], range: Option<FileRange>) -> (Vec<u8>, Vec<(u64, u64)>) {
        let calls = std::cell::RefCell::new(Vec::new());
        let read = |offset: u64, length: u64| {
            calls.borrow_mut().push((offset, length));
            let start = (offset as usize).min(file.len());
            let end = (start + length as usize).min(file.len());
            std::future::ready(Ok(file[start..end].to_vec()))
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let data = runtime.block_on(read_chunked(range, read)).unwrap();
        (data, calls.into_inner())
    }

    #[test]
    fn large_files_are_read_in_chunks() {
        let c = READ_CHUNK;
        let file: Vec<u8> = (0..(2 * c + 5)).map(|i| i as u8).collect();
        let (data, calls) = chunked(&file, None);
        assert_eq!(data, file);
        assert_eq!(calls, [(0, c), (c, c), (2 * c, c)]);

        // A file of exactly one chunk needs one more, empty, answer.
        let (data, calls) = chunked(&file[..c as usize], None);
        assert_eq!(data.len() as u64, c);
        assert_eq!(calls, [(0, c), (c, c)]);

        let range = FileRange {
            offset: 3,
            length: c + 1,
        };
        let (data, calls) = chunked(&file, Some(range));
        assert_eq!(data, &file[3..(c + 4) as usize]);
        assert_eq!(calls, [(3, c), (c + 3, 1)]);

        let (data, calls) = chunked(b"small", None);
        assert_eq!(data, b"small");
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn results_use_ref_messages_only_with_refarray() {
        use gw::result::Result as R;
        let def = pb::Definition {
            def: vec![vec![1, 2]],
            ..Default::default()
        };
        let r = Ref {
            id: "abc".into(),
            definition: Some(def.encode_to_vec()),
        };
        let single = FrontendResult {
            refs: ResultRefs::Single(r.clone()),
            metadata: [("containerimage.config".to_string(), b"{}".to_vec())].into(),
        };
        let new = result_to_pb(single.clone(), true).unwrap();
        let Some(R::Ref(wire)) = new.result else {
            panic!("{new:?}")
        };
        assert_eq!((wire.id.as_str(), wire.def), ("abc", Some(def)));
        assert_eq!(new.metadata["containerimage.config"], b"{}");
        let old = result_to_pb(single, false).unwrap();
        assert_eq!(old.result, Some(R::RefDeprecated("abc".into())));

        let multi = FrontendResult {
            refs: ResultRefs::PerPlatform([("linux/amd64".to_string(), r)].into()),
            metadata: BTreeMap::new(),
        };
        let Some(R::Refs(map)) = result_to_pb(multi.clone(), true).unwrap().result else {
            panic!()
        };
        assert_eq!(map.refs["linux/amd64"].id, "abc");
        let Some(R::RefsDeprecated(map)) = result_to_pb(multi, false).unwrap().result else {
            panic!()
        };
        assert_eq!(map.refs["linux/amd64"], "abc");
    }

    #[test]
    fn oversized_requests_are_refused() {
        let request = gw::ReturnRequest {
            result: Some(gw::Result {
                result: None,
                metadata: [("big".to_string(), vec![0u8; MAX_REQUEST_SIZE])].into(),
            }),
            error: None,
        };
        let err = check_size("Return", &request).unwrap_err();
        assert!(matches!(
            err,
            FrontendError::RequestTooLarge { call: "Return", .. }
        ));
    }
}
