//! The generated protobuf code for BuildKit's wire schema (`proto/`, compiled by
//! `build.rs`). Crate-private: only `llb` (marshaling) and the frontend use it.
//! Modules mirror the protobuf packages, because the generated code refers to
//! other packages through `super::` paths.

#![allow(
    missing_docs,
    dead_code,
    unreachable_pub,
    unused_qualifications,
    clippy::all,
    clippy::pedantic
)]

/// LLB: package `pb` (`solver/pb/ops.proto`).
#[rustfmt::skip]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/pb.rs"));
}

/// Packages under `moby.buildkit.v1`.
pub(crate) mod moby {
    pub(crate) mod buildkit {
        pub(crate) mod v1 {
            /// The gateway API and the `LLBBridge` client.
            #[rustfmt::skip]
            pub(crate) mod frontend {
                include!(concat!(env!("OUT_DIR"), "/moby.buildkit.v1.frontend.rs"));
            }
            /// Capabilities.
            #[rustfmt::skip]
            pub(crate) mod apicaps {
                include!(concat!(env!("OUT_DIR"), "/moby.buildkit.v1.apicaps.rs"));
            }
            /// Worker records.
            #[rustfmt::skip]
            pub(crate) mod types {
                include!(concat!(env!("OUT_DIR"), "/moby.buildkit.v1.types.rs"));
            }
        }
    }
}

/// Package `fsutil.types`: file metadata.
pub(crate) mod fsutil {
    #[rustfmt::skip]
    pub(crate) mod types {
        include!(concat!(env!("OUT_DIR"), "/fsutil.types.rs"));
    }
}

/// Package `google.rpc`: the gRPC error model.
pub(crate) mod google {
    #[rustfmt::skip]
    pub(crate) mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}
