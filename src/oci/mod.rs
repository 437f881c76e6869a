//! The embedded builder: deterministic tar layers, blobs and OCI layouts, no daemon.
