//! Registries: the OCI distribution API for the embedded builder and the CLI
//! (`strata build --output registry:REF`, registry bases, `strata lock`).
//!
//! The HTTP side is the `oci-client` crate (reqwest over rustls with the
//! `ring` provider, so the binary stays static and needs no OpenSSL). It is
//! async; this module runs it on its own single-threaded tokio runtime and
//! offers a blocking API, so the async code stays inside `registry` (as it
//! stays inside `frontend`). The layer sits beside `oci` and above it: it
//! reads and writes OCI layouts through `oci`, and `oci` never imports it.
//!
//! - [`Registry`]: one connection to one registry host: credentials from the
//!   Docker config ([`auth`]), plain HTTP for loopback hosts and
//!   `--insecure-registry` hosts (as Docker does), retries with backoff on
//!   5xx answers and connection failures, chunked blob uploads streamed from
//!   disk.
//! - [`push`]: upload an image from a layout: only missing blobs, then the
//!   manifest under its tag, last.
//! - [`pull`]: fetch an image by digest into the cache root, verified.
//!
//! `docs/registry.md` describes the behaviour for users.

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod known;
pub(crate) mod pull;
pub(crate) mod push;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderValue;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

pub(crate) use auth::AuthSource;
pub(crate) use error::{RegistryError, Result};

/// How many times a transient failure is tried in all.
pub(crate) const ATTEMPTS: u32 = 4;
/// The first retry waits this long; each further one twice as long.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Bytes read from disk per upload chunk (the client sends them as PATCH
/// requests of at most its own chunk size).
pub(crate) const READ_CHUNK: usize = 4 << 20;

/// Blobs uploaded at the same time.
pub(crate) const UPLOADS: usize = 3;

/// A blob to upload.
#[derive(Clone)]
pub(crate) struct Upload {
    /// Its digest, `sha256:…`.
    pub(crate) digest: String,
    /// Its size.
    pub(crate) size: u64,
    /// The file holding it.
    pub(crate) path: std::path::PathBuf,
    /// Called with the bytes sent so far.
    pub(crate) progress: Arc<dyn Fn(u64) + Send + Sync>,
}

/// Connection options from the command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Hosts (`host[:port]`) to reach over plain HTTP.
    pub(crate) insecure: Vec<String>,
    /// Refuse every connection (`--offline`): [`Registry::new`] fails.
    pub(crate) offline: bool,
}

/// Whether `host[:port]` is a loopback address, which is reached over plain
/// HTTP unless it is told otherwise, as Docker does.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses an image reference (`python:3.11-slim`, `host:5000/repo:tag`,
/// `repo@sha256:…`), with Docker's defaults (`docker.io`, `library/`, `latest`).
pub(crate) fn parse_reference(s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| RegistryError::InvalidReference {
            reference: s.to_owned(),
            reason: e.to_string(),
        })
}

/// The reference's registry host as Docker names it (`docker.io` is
/// `index.docker.io`).
pub(crate) fn host_of(r: &Reference) -> String {
    r.resolve_registry().to_owned()
}

/// A client for one registry host.
pub(crate) struct Registry {
    rt: tokio::runtime::Runtime,
    client: Client,
    host: String,
    auth: RegistryAuth,
    /// Where the credentials came from.
    pub(crate) auth_source: AuthSource,
    /// Credential warnings, for the caller to print.
    pub(crate) warnings: Vec<String>,
}

impl Registry {
    /// Prepares a client for the registry of `r` (no request yet).
    pub(crate) fn new(r: &Reference, opts: &Options) -> Result<Self> {
        // rustls needs one process-wide crypto provider: ring (the install
        // fails harmlessly when one is there already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = host_of(r);
        if opts.offline {
            return Err(RegistryError::Offline { registry: host });
        }
        let plain_http = is_loopback(&host) || opts.insecure.contains(&host);
        let config = ClientConfig {
            protocol: if plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(300)),
            user_agent: concat!("strata/", env!("CARGO_PKG_VERSION")),
            // An index is resolved by strata itself (`pull`).
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Io {
                path: "tokio runtime".into(),
                source: e,
            })?;
        let (auth, auth_source, warnings) = auth::credentials(&host);
        Ok(Self {
            rt,
            client: Client::new(config),
            host,
            auth,
            auth_source,
            warnings,
        })
    }

    /// `host[:port]`.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// Authenticates for `op` on `r`'s repository (a token, or basic auth).
    pub(crate) fn login(&self, r: &Reference, op: RegistryOperation) -> Result<()> {
        self.call(
            &format!("authentication for {}", r.repository()),
            async || self.client.auth(r, &self.auth, op).await.map(|_| ()),
        )
    }

    /// Whether the repository of `r` has the blob.
    pub(crate) fn blob_exists(&self, r: &Reference, digest: &str) -> Result<bool> {
        self.call(&format!("HEAD of blob {digest}"), async || {
            self.client.blob_exists(r, digest).await
        })
    }

    /// Asks the registry to mount `digest` from repository `from` into `r`'s
    /// repository. `false` when it did not (the blob is not there, or the
    /// registry does not mount): the caller uploads instead.
    pub(crate) fn mount_blob(&self, r: &Reference, from: &Reference, digest: &str) -> bool {
        self.rt
            .block_on(self.client.mount_blob(r, from, digest))
            .is_ok()
    }

    /// Uploads several blobs, [`UPLOADS`] at a time (as Docker does);
    /// returns each one's result, in the order given.
    pub(crate) fn upload_blobs(&self, r: &Reference, blobs: &[Upload]) -> Vec<Result<()>> {
        use futures_util::stream::{self, StreamExt as _};
        self.rt.block_on(
            stream::iter(blobs.iter().map(|b| self.upload(r, b)))
                .buffered(UPLOADS)
                .collect(),
        )
    }

    async fn upload(&self, r: &Reference, blob: &Upload) -> Result<()> {
        let Upload {
            digest,
            size,
            path,
            progress,
        } = blob;
        fs_err::metadata(path).map_err(|e| RegistryError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        self.attempt(&format!("upload of blob {digest}"), async || {
            let file = fs_err::File::open(path).map_err(OciDistributionError::IoError)?;
            let stream = file_stream(file, progress.clone());
            self.client
                .push_blob_stream(r, stream, digest, Some(*size))
                .await
                .map(|_| ())
        })
        .await
    }

    /// Puts a manifest or index under `r`'s tag or digest.
    pub(crate) fn put_manifest(&self, r: &Reference, body: &[u8], media_type: &str) -> Result<()> {
        let content_type: HeaderValue =
            media_type
                .parse()
                .map_err(|_| RegistryError::InvalidImage {
                    registry: self.host.clone(),
                    reference: r.whole(),
                    reason: format!("media type `{media_type}` is not a header value"),
                })?;
        let body = Bytes::copy_from_slice(body);
        self.call(&format!("push of manifest {}", r.whole()), async || {
            self.client
                .push_manifest_raw(r, body.clone(), content_type.clone())
                .await
                .map(|_| ())
        })
    }

    /// Fetches the manifest or index `r` names: its bytes and media type.
    pub(crate) fn get_manifest(
        &self,
        r: &Reference,
        accepted: &[&str],
    ) -> Result<(Vec<u8>, String)> {
        self.call(&format!("fetch of manifest {}", r.whole()), async || {
            self.client
                .pull_manifest_raw(r, &self.auth, accepted)
                .await
                .map(|(b, t)| (b.to_vec(), t))
        })
    }

    /// Fetches a blob of `r`'s repository, streaming it to `sink`, which
    /// gets `None` before each attempt (start over) and then the bytes. The
    /// caller verifies the digest (see [`pull`]).
    pub(crate) fn get_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        sink: &mut dyn FnMut(Option<&[u8]>) -> std::io::Result<()>,
    ) -> Result<()> {
        let desc = oci_client::manifest::OciDescriptor {
            media_type: "application/octet-stream".to_owned(),
            digest: digest.to_owned(),
            size: size as i64,
            ..Default::default()
        };
        self.call(&format!("fetch of blob {digest}"), async || {
            sink(None).map_err(OciDistributionError::IoError)?;
            let mut stream = self.client.pull_blob_stream(r, &desc).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(OciDistributionError::IoError)?;
                sink(Some(&chunk)).map_err(OciDistributionError::IoError)?;
            }
            Ok(())
        })
    }

    /// Runs one operation with retries on transient failures, mapping the
    /// final error.
    fn call<T>(
        &self,
        action: &str,
        f: impl AsyncFnMut() -> Result<T, OciDistributionError>,
    ) -> Result<T> {
        self.rt.block_on(self.attempt(action, f))
    }

    async fn attempt<T>(
        &self,
        action: &str,
        mut f: impl AsyncFnMut() -> Result<T, OciDistributionError>,
    ) -> Result<T> {
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(self.map_error(action, attempt, e)),
            }
        }
    }

    fn map_error(&self, action: &str, attempts: u32, e: OciDistributionError) -> RegistryError {
        let tries = if attempts > 1 {
            format!(" (tried {attempts} times)")
        } else {
            String::new()
        };
        // No answer at all: never an authentication or a "not found".
        if let Some(cause) = network_cause(&e) {
            return RegistryError::Network {
                registry: self.host.clone(),
                during: if action.starts_with("authentication") {
                    String::new()
                } else {
                    format!("during {action}: ")
                },
                cause,
                detail: format!("{}{tries}", describe(&e)),
            };
        }
        if is_not_found(&e) {
            return RegistryError::NotFound {
                registry: self.host.clone(),
                what: action
                    .strip_prefix("fetch of ")
                    .unwrap_or(action)
                    .to_owned(),
            };
        }
        let unauthorized = matches!(e, OciDistributionError::UnauthorizedError { .. })
            || matches!(&e, OciDistributionError::AuthenticationFailure(_))
            || matches!(
                &e,
                OciDistributionError::ServerError {
                    code: 401 | 403,
                    ..
                }
            )
            || matches!(&e, OciDistributionError::RequestError(r)
                if r.status().is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403))
            || matches!(&e, OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| matches!(
                x.code,
                oci_client::errors::OciErrorCode::Unauthorized
                    | oci_client::errors::OciErrorCode::Denied
            )));
        if unauthorized {
            let hint = match self.auth_source {
                AuthSource::Anonymous => format!(
                    " (no credentials for {} in the Docker config: run `docker login {}` or set DOCKER_CONFIG)",
                    self.host, self.host
                ),
                AuthSource::DockerConfig { ref username } => {
                    format!(" (as user `{username}` from the Docker config)")
                }
            };
            return RegistryError::Unauthorized {
                registry: self.host.clone(),
                action: action.to_owned(),
                hint,
            };
        }
        let message = format!("{}{tries}", describe(&e));
        RegistryError::Request {
            registry: self.host.clone(),
            action: action.to_owned(),
            message,
        }
    }
}

/// A readable message for a client error, with the causes of a request
/// error (which carry the real reason: "connection refused").
fn describe(e: &OciDistributionError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

/// Why a request got no answer, when it got none: the connection could not
/// be made or broke (DNS, refused, TLS, timeout). `None` when the registry
/// answered (with any status).
fn network_cause(e: &OciDistributionError) -> Option<&'static str> {
    let OciDistributionError::RequestError(r) = e else {
        return None;
    };
    if r.status().is_some() {
        return None;
    }
    let mut text = String::new();
    let mut kind = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(s) = src {
        text.push_str(&s.to_string().to_lowercase());
        text.push(' ');
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            kind = kind.or(Some(io.kind()));
            // An io::Error's source() skips the error it wraps: look at it.
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Some("TLS handshake failed");
            }
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            return Some("TLS handshake failed");
        }
        src = s.source();
    }
    use std::io::ErrorKind as K;
    Some(match kind {
        _ if text.contains("dns error") || text.contains("failed to lookup address") => {
            "DNS lookup failed"
        }
        Some(K::ConnectionRefused) => "connection refused",
        // rustls' words, when its error is not reachable by type.
        _ if [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "fatal alert",
            "peer is incompatible",
            "peer misbehaved",
        ]
        .iter()
        .any(|w| text.contains(w)) =>
        {
            "TLS handshake failed"
        }
        Some(K::TimedOut) => "timed out",
        _ if r.is_timeout() => "timed out",
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
            "the connection broke"
        }
        Some(K::HostUnreachable | K::NetworkUnreachable) => "no route to the host",
        _ if r.is_connect() => "connection failed",
        _ if r.is_request() || r.is_body() => "the connection broke",
        _ => return None,
    })
}

/// Whether the registry answered "not found" (HTTP 404, or an OCI error
/// code that says so).
fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code: 404, .. } => true,
        OciDistributionError::RequestError(r) => r.status().is_some_and(|s| s.as_u16() == 404),
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            use oci_client::errors::OciErrorCode as C;
            matches!(
                x.code,
                C::ManifestUnknown | C::NameUnknown | C::NotFound | C::BlobUnknown
            )
        }),
        _ => false,
    }
}

/// Transient failures, worth another attempt: connection problems, timeouts
/// and 5xx answers (and 429).
fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            r.is_connect()
                || r.is_timeout()
                || r.is_request()
                || r.is_body()
                || r.status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        _ => false,
    }
}

/// Reads `file` in [`READ_CHUNK`] pieces as a stream of bytes.
fn file_stream(
    file: fs_err::File,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> impl futures_util::Stream<Item = Result<Bytes, OciDistributionError>> + Send + 'static {
    futures_util::stream::unfold(
        (file, 0u64, progress),
        |(mut file, done, progress)| async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        return Some((
                            Err(OciDistributionError::IoError(e)),
                            (file, done, progress),
                        ));
                    }
                }
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            let done = done + filled as u64;
            progress(done);
            Some((Ok(Bytes::from(buf)), (file, done, progress)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_plain_http() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example:5000",
            "10.0.0.1:5000",
            "index.docker.io",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn references_take_dockers_defaults() {
        let r = parse_reference("python:3.11-slim").unwrap();
        assert_eq!(host_of(&r), "index.docker.io");
        assert_eq!(r.repository(), "library/python");
        let r = parse_reference("127.0.0.1:5000/registry-it/a:v1").unwrap();
        assert_eq!(host_of(&r), "127.0.0.1:5000");
        assert_eq!(r.repository(), "registry-it/a");
        assert!(parse_reference("registry-it/UPPER").is_err());
    }
}
