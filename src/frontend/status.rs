//! The error a frontend returns to BuildKit: a `google.rpc.Status` whose
//! details can point at lines of the spec, so that `docker buildx build`
//! prints the snippet with the failing line (buildkit-gateway.md §6).
//!
//! A source detail is an `Any` with type URL [`SOURCE_TYPE_URL`] and a JSON
//! value: BuildKit JSON-encodes its typed error details (`withDetails` in
//! `util/grpcerrors`, v0.8 to today) and decodes them with `typeurl`, which
//! uses JSON for types it registered itself, as `errdefs.Source` is. The
//! field names are the JSON tags of `errdefs.Source`, `pb.SourceInfo`,
//! `pb.Range` and `pb.Position`: `info`, `filename`, `data` (base64, Go's
//! `[]byte`), `ranges`, `start`, `end`, `line`. BuildKit 0.8 tags the
//! position `Line`, which Go's case-insensitive decoding also accepts.

use std::borrow::Cow;

use base64::Engine as _;
use prost::Message as _;
use serde::Serialize;

use super::error::FrontendError;
use crate::proto::google::rpc::Status;

/// The type URL of BuildKit's source-location error detail.
pub(crate) const SOURCE_TYPE_URL: &str = "github.com/moby/buildkit/errdefs.Source+json";

/// gRPC's `Unknown` code, what BuildKit uses for errors without a code.
pub(crate) const CODE_UNKNOWN: i32 = 2;

/// A place in a source file: its name, its whole content, and 1-based line
/// ranges (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceLocation {
    /// The file name the user knows (`strata.toml`).
    pub(crate) filename: String,
    /// The file's bytes, which BuildKit's client prints lines from.
    pub(crate) data: Vec<u8>,
    /// `(start, end)` line pairs, 1-based and inclusive.
    pub(crate) lines: Vec<(u32, u32)>,
}

impl SourceLocation {
    /// A location of one line.
    pub(crate) fn line(filename: impl Into<String>, data: impl Into<Vec<u8>>, line: u32) -> Self {
        SourceLocation {
            filename: filename.into(),
            data: data.into(),
            lines: vec![(line, line)],
        }
    }

    /// The JSON value of an `errdefs.Source` detail. Of a file over
    /// [`MAX_SOURCE_DATA`] bytes only the lines near those pointed at are
    /// sent, which keeps buildx's snippet and the request small.
    pub(crate) fn to_detail_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Source<'a> {
            info: Info<'a>,
            ranges: Vec<Range>,
        }
        #[derive(Serialize)]
        struct Info<'a> {
            filename: &'a str,
            data: String,
        }
        #[derive(Serialize)]
        struct Range {
            start: Position,
            end: Position,
        }
        #[derive(Serialize)]
        struct Position {
            line: u32,
        }
        let source = Source {
            info: Info {
                filename: &self.filename,
                data: base64::engine::general_purpose::STANDARD.encode(self.snippet_data()),
            },
            ranges: self
                .lines
                .iter()
                .map(|&(start, end)| Range {
                    start: Position { line: start },
                    end: Position { line: end },
                })
                .collect(),
        };
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(&source).unwrap_or_default()
    }

    /// The file's bytes; for a large file only the lines near those pointed
    /// at, the others emptied so that line numbers still match.
    fn snippet_data(&self) -> Cow<'_, [u8]> {
        if self.data.len() <= MAX_SOURCE_DATA {
            return Cow::Borrowed(&self.data);
        }
        let near = |line: usize| {
            self.lines.iter().any(|&(start, end)| {
                let (start, end) = (start.min(end) as usize, start.max(end) as usize);
                line + SNIPPET_CONTEXT >= start && line <= end + SNIPPET_CONTEXT
            })
        };
        let mut out = Vec::new();
        for (index, line) in self.data.split_inclusive(|&b| b == b'\n').enumerate() {
            if near(index + 1) {
                out.extend_from_slice(line);
            } else if line.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        Cow::Owned(out)
    }
}

/// Largest file sent whole in a source detail: its base64 stays well under
/// the 4 MiB message limit of BuildKit before 0.14.
pub(crate) const MAX_SOURCE_DATA: usize = 2 << 20;

/// Lines kept on each side of the lines pointed at when a large file is cut
/// (buildx shows at most four).
const SNIPPET_CONTEXT: usize = 5;

/// One `google.protobuf.Any` detail of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorDetail {
    /// The `Any` type URL.
    pub(crate) type_url: String,
    /// The encoded value.
    pub(crate) value: Vec<u8>,
}

impl ErrorDetail {
    /// A source-location detail.
    pub(crate) fn source(location: &SourceLocation) -> ErrorDetail {
        ErrorDetail {
            type_url: SOURCE_TYPE_URL.to_string(),
            value: location.to_detail_json(),
        }
    }
}

/// The error a frontend hands to `Return`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorStatus {
    /// The gRPC code.
    pub(crate) code: i32,
    /// The message the user sees.
    pub(crate) message: String,
    /// Typed details such as source locations.
    pub(crate) details: Vec<ErrorDetail>,
}

impl ErrorStatus {
    /// An error with code `Unknown` and no details.
    pub(crate) fn new(message: impl Into<String>) -> ErrorStatus {
        ErrorStatus {
            code: CODE_UNKNOWN,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Adds a source location, which buildx prints as a snippet.
    pub(crate) fn with_source(mut self, location: &SourceLocation) -> ErrorStatus {
        self.details.push(ErrorDetail::source(location));
        self
    }

    /// The error to return for a frontend failure. A failed gateway call keeps
    /// BuildKit's code and details (such as the failing vertex's source
    /// location); other errors carry their message and causes.
    pub(crate) fn from_error(err: &FrontendError) -> ErrorStatus {
        if let FrontendError::Rpc { status, .. } = err {
            let mut out = ErrorStatus {
                code: status.code() as i32,
                message: status.message().to_string(),
                details: Vec::new(),
            };
            if let Ok(full) = Status::decode(status.details()) {
                out.details = full
                    .details
                    .into_iter()
                    .map(|any| ErrorDetail {
                        type_url: any.type_url,
                        value: any.value,
                    })
                    .collect();
            }
            return out;
        }
        let mut message = err.to_string();
        let mut cause = std::error::Error::source(err);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        ErrorStatus::new(message)
    }

    /// The wire form.
    pub(crate) fn to_proto(&self) -> Status {
        Status {
            code: self.code,
            message: self.message.clone(),
            details: self
                .details
                .iter()
                .map(|d| prost_types::Any {
                    type_url: d.type_url.clone(),
                    value: d.value.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_detail_json_matches_buildkit_field_names() {
        let loc = SourceLocation::line("strata.toml", b"a\nfail-here\n".to_vec(), 2);
        let json: serde_json::Value = serde_json::from_slice(&loc.to_detail_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "info": {"filename": "strata.toml", "data": "YQpmYWlsLWhlcmUK"},
                "ranges": [{"start": {"line": 2}, "end": {"line": 2}}]
            })
        );
    }

    #[test]
    fn large_files_keep_only_lines_near_the_snippet() {
        let decode = |loc: &SourceLocation| {
            let json: serde_json::Value = serde_json::from_slice(&loc.to_detail_json()).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(json["info"]["data"].as_str().unwrap())
                .unwrap()
        };
        let mut text = String::new();
        let count = MAX_SOURCE_DATA / 8 + 1;
        for i in 1..=count {
            text.push_str(&format!("l{i:06}\n"));
        }
        let loc = SourceLocation::line("big.toml", text.clone(), 100_000);
        let sent = String::from_utf8(decode(&loc)).unwrap();
        let lines: Vec<&str> = sent.split('\n').collect();
        // Line numbers still match; only lines 99995..=100005 keep their text.
        assert_eq!(lines.len(), count + 1);
        assert_eq!(lines[99_999], "l100000");
        assert_eq!(lines[99_994], "l099995");
        assert_eq!(lines[100_004], "l100005");
        assert_eq!(lines[99_993], "");
        assert_eq!(lines[100_005], "");
        assert!(sent.len() < MAX_SOURCE_DATA / 4);

        let small = SourceLocation::line("s.toml", b"a\nb".to_vec(), 1);
        assert_eq!(decode(&small), b"a\nb");
    }

    #[test]
    fn status_carries_the_source_detail() {
        let loc = SourceLocation {
            filename: "s.toml".into(),
            data: b"x".to_vec(),
            lines: vec![(1, 3), (5, 5)],
        };
        let status = ErrorStatus::new("bad spec").with_source(&loc).to_proto();
        assert_eq!(status.code, CODE_UNKNOWN);
        assert_eq!(status.message, "bad spec");
        assert_eq!(status.details.len(), 1);
        assert_eq!(status.details[0].type_url, SOURCE_TYPE_URL);
        let json: serde_json::Value = serde_json::from_slice(&status.details[0].value).unwrap();
        assert_eq!(json["ranges"][0]["end"]["line"], 3);
        assert_eq!(json["ranges"][1]["start"]["line"], 5);
    }

    #[test]
    fn rpc_errors_keep_buildkit_details() {
        let inner = Status {
            code: 2,
            message: "process failed".into(),
            details: vec![prost_types::Any {
                type_url: SOURCE_TYPE_URL.into(),
                value: b"{}".to_vec(),
            }],
        };
        let status = tonic::Status::with_details(
            tonic::Code::Unknown,
            "process failed",
            inner.encode_to_vec().into(),
        );
        let err = FrontendError::rpc("Solve", status);
        let out = ErrorStatus::from_error(&err);
        assert_eq!(out.message, "process failed");
        assert_eq!(out.details.len(), 1);
        assert_eq!(out.details[0].type_url, SOURCE_TYPE_URL);
    }

    #[test]
    fn other_errors_carry_their_causes() {
        let err = FrontendError::Stdio(std::io::Error::other("closed"));
        let out = ErrorStatus::from_error(&err);
        assert_eq!(
            out.message,
            "cannot use stdin/stdout as the gateway transport: closed"
        );
        assert!(out.details.is_empty());
    }
}
