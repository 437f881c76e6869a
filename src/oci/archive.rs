//! Image outputs: `oci-layout:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and
//! `docker-archive:FILE[:NAME[:TAG]]`.
//!
//! Archives are deterministic tars (the writer of `tar.rs`; directories
//! 0755, files 0644, owner 0:0, mtime [`ARCHIVE_MTIME`], entries in path
//! order) written to a temp file beside the destination, synced, then
//! renamed, so a failed write never leaves a partial archive under its name.
//!
//! A docker archive is the layout-based form `docker save` writes since
//! Docker 25: an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
//! plus `manifest.json` (`Config`, `RepoTags`, `Layers` as paths of blobs).
//! Docker 20.10's `docker load` reads only `manifest.json`: it opens the
//! config and layer paths it names (any path inside the archive) and
//! decompresses layers with `DecompressStream`, so gzip layers load; it
//! ignores the other files. Docker ≥ 25 with the containerd store reads
//! `index.json`, whose entry carries `io.containerd.image.name` (the full
//! name) and `org.opencontainers.image.ref.name` (the tag), as Docker writes.

use std::io::BufWriter;
use std::path::Path;

use super::base::ImageRef;
use super::error::{IoContext, OciError, Result};
use super::image::{CONTAINERD_NAME, Descriptor, ImageIndex, ImageManifest, REF_NAME, media};
use super::layout::{OCI_LAYOUT, OciDir, canonical_json};
use super::output::LayoutWrite;
use super::tar::{Meta, TarStream};
use crate::plan::Digest;

/// mtime of every entry of an output archive: the default layer timestamp
/// (docs/design.md §1).
pub const ARCHIVE_MTIME: u64 = 315_619_200;

/// Writes the image `manifest` (stored in `layout`) to `dest`.
/// An `oci-layout` destination gets the blobs copied (verified) and the tag
/// set (`latest` when none is given).
pub fn write_output(dest: &ImageRef, layout: &OciDir, manifest: &Descriptor) -> Result<()> {
    match dest {
        ImageRef::OciLayout { path, tag } => {
            let out = LayoutWrite::begin(path)?;
            if out.layout().root() != layout.root() {
                for desc in layout.reachable(manifest)? {
                    out.layout().copy_blob(
                        &desc.digest,
                        desc.size,
                        layout.open_blob(&desc.digest)?,
                    )?;
                }
            }
            out.commit(manifest, tag.as_deref().unwrap_or("latest"))
        }
        ImageRef::OciArchive { path, tag } => {
            write_oci_archive(layout, manifest, tag.as_deref(), path)
        }
        ImageRef::DockerArchive { path, reference } => {
            write_docker_archive(layout, manifest, reference.as_deref(), path)
        }
    }
}

/// Checks the name an output gives its image, before anything is built: an
/// `oci-layout:` or `oci-archive:` tag follows the OCI `ref.name` grammar
/// (`v1`, `1.0-rc.1`, `app/v2`), a `docker-archive:` reference is a Docker
/// `NAME[:TAG]`; readers (skopeo, `docker load`) refuse anything else.
pub fn check_output_name(dest: &ImageRef) -> std::result::Result<(), String> {
    use std::sync::LazyLock;
    static OCI_REF: LazyLock<regex::Regex> = LazyLock::new(|| {
        let component = "[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*";
        regex::Regex::new(&format!("^{component}(?:/{component})*$")).expect("valid regex")
    });
    static DOCKER_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
        let host = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?";
        let component = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        regex::Regex::new(&format!("^{host}{component}(?:/{component})*$")).expect("valid regex")
    });
    static DOCKER_TAG: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("valid regex")
    });
    match dest {
        ImageRef::OciLayout { tag: Some(t), .. } | ImageRef::OciArchive { tag: Some(t), .. }
            if !OCI_REF.is_match(t) =>
        {
            Err(format!(
                "`{t}` is not a valid tag: use letters, digits and `-._:@+` between them, e.g. `v1` or `1.0-rc.1`"
            ))
        }
        ImageRef::DockerArchive {
            reference: Some(r), ..
        } => {
            let (name, tag) = split_reference(r);
            if !DOCKER_NAME.is_match(name) || name.len() > 255 {
                Err(format!(
                    "`{name}` is not a valid image name: lowercase letters, digits and `._-` in `/`-separated parts, e.g. `app` or `registry.example:5000/team/app`"
                ))
            } else if !DOCKER_TAG.is_match(tag) {
                Err(format!(
                    "`{tag}` is not a valid tag: at most 128 letters, digits and `_.-`, not starting with `.` or `-`"
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Writes a tar of an OCI layout holding `manifest` (tagged `tag`) to `dest`.
pub fn write_oci_archive(
    layout: &OciDir,
    manifest: &Descriptor,
    tag: Option<&str>,
    dest: &Path,
) -> Result<()> {
    let mut desc = manifest.clone();
    if let Some(tag) = tag {
        desc.annotations.insert(REF_NAME.to_owned(), tag.to_owned());
    }
    write_archive(layout, manifest, &desc, None, dest)
}

/// Writes an archive `docker load` accepts (Docker 20.10 and later) to
/// `dest`, tagged `reference` (`NAME[:TAG]`, `:latest` when no tag).
pub fn write_docker_archive(
    layout: &OciDir,
    manifest: &Descriptor,
    reference: Option<&str>,
    dest: &Path,
) -> Result<()> {
    if manifest.media_type != media::MANIFEST && manifest.media_type != media::DOCKER_MANIFEST {
        return Err(OciError::Unsupported {
            what: "media type for a docker archive",
            value: manifest.media_type.clone(),
            location: dest.display().to_string(),
        });
    }
    let m: ImageManifest = layout.read_json_blob(&manifest.digest)?;
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let mut desc = manifest.clone();
    let mut repo_tags = Vec::new();
    if let Some(r) = reference {
        let (name, tag) = split_reference(r);
        repo_tags.push(format!("{name}:{tag}"));
        desc.annotations.insert(
            CONTAINERD_NAME.to_owned(),
            format!("{}:{tag}", full_name(name)),
        );
        desc.annotations.insert(REF_NAME.to_owned(), tag.to_owned());
    }
    let docker_manifest = serde_json::json!([{
        "Config": blob(&m.config.digest),
        "RepoTags": repo_tags,
        "Layers": m.layers.iter().map(|l| blob(&l.digest)).collect::<Vec<_>>(),
    }]);
    write_archive(
        layout,
        manifest,
        &desc,
        Some(canonical_json(&docker_manifest)?),
        dest,
    )
}

/// `(name, tag)` of `NAME[:TAG]`; the tag is after the last `:` that follows
/// the last `/` (so a registry port is not a tag).
fn split_reference(r: &str) -> (&str, &str) {
    let last = r.rfind('/').map_or(0, |i| i + 1);
    match r[last..].rfind(':') {
        Some(i) => (&r[..last + i], &r[last + i + 1..]),
        None => (r, "latest"),
    }
}

/// Docker's normalized name: `app` → `docker.io/library/app`,
/// `me/app` → `docker.io/me/app`; a first component with `.` or `:`, or
/// `localhost`, is a registry.
fn full_name(name: &str) -> String {
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => name.to_owned(),
        Some(_) => format!("docker.io/{name}"),
    }
}

fn write_archive(
    layout: &OciDir,
    manifest: &Descriptor,
    index_entry: &Descriptor,
    docker_manifest: Option<Vec<u8>>,
    dest: &Path,
) -> Result<()> {
    let mut blobs = layout.reachable(manifest)?;
    blobs.sort_by_key(|a| a.digest);
    let index = ImageIndex {
        manifests: vec![index_entry.clone()],
        ..ImageIndex::default()
    };
    let index = canonical_json(&index)?;

    if dest.is_dir() {
        return Err(OciError::BadOutput {
            path: dest.to_owned(),
            reason: "is a directory: an archive is a file (name a file, or use oci-layout: for a directory)".to_owned(),
        });
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Errors name the archive the user asked for, never the temporary file
    // it is written as (that name means nothing to them).
    fs_err::metadata(dir).map_err(|e| OciError::io(dest, std::io::Error::new(e.kind(), e)))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| OciError::io(dest, std::io::Error::from(e.kind())))?;
    let tmp_path = dest.to_owned();
    let mut tar = TarStream::new(BufWriter::with_capacity(1 << 20, tmp), &tmp_path);
    let meta = |mode| Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: ARCHIVE_MTIME,
    };
    tar.append_dir(b"blobs", meta(0o755))?;
    tar.append_dir(b"blobs/sha256", meta(0o755))?;
    for desc in &blobs {
        let path = layout.blob_path(&desc.digest);
        let file = layout.open_blob(&desc.digest)?;
        let found = file.metadata().at(&path)?.len();
        if found != desc.size {
            return Err(OciError::SizeMismatch {
                what: path.display().to_string(),
                expected: desc.size,
                found,
            });
        }
        let name = format!("blobs/sha256/{}", desc.digest.hex());
        tar.append_reader(name.as_bytes(), desc.size, file.file(), &path, meta(0o644))?;
    }
    tar.append_bytes(b"index.json", &index, meta(0o644))?;
    if let Some(m) = docker_manifest {
        tar.append_bytes(b"manifest.json", &m, meta(0o644))?;
    }
    tar.append_bytes(b"oci-layout", OCI_LAYOUT, meta(0o644))?;
    let tmp = tar
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())
        .at(&tmp_path)?;
    tmp.as_file().sync_all().at(&tmp_path)?;
    tmp.persist(dest).map_err(|e| OciError::io(dest, e.error))?;
    super::blob::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::base::tests::multi_platform_layout;
    use crate::oci::base::{BaseImage, import_base};
    use crate::oci::image::Platform;
    use std::io::Read;

    fn amd64_manifest(layout: &OciDir) -> Descriptor {
        let index: ImageIndex = layout
            .read_json_blob(&layout.resolve_tag("v1").unwrap().digest)
            .unwrap();
        index.manifests[0].clone()
    }

    fn import(r: String) -> BaseImage {
        import_base(
            &r.parse().unwrap(),
            &Platform::parse("linux/amd64").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn oci_archive_is_deterministic_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        multi_platform_layout(&tmp.path().join("layout"));
        let layout = OciDir::open(&tmp.path().join("layout")).unwrap();
        let manifest = amd64_manifest(&layout);
        let a = tmp.path().join("a.tar");
        let b = tmp.path().join("b.tar");
        write_oci_archive(&layout, &manifest, Some("v2"), &a).unwrap();
        write_output(
            &format!("oci-archive:{}:v2", b.display()).parse().unwrap(),
            &layout,
            &manifest,
        )
        .unwrap();
        assert_eq!(fs_err::read(&a).unwrap(), fs_err::read(&b).unwrap());
        let image = import(format!("oci-archive:{}:v2", a.display()));
        assert_eq!(image.manifest_digest.as_ref(), Some(&manifest.digest));
        let mut archive = tar::Archive::new(fs_err::File::open(&a).unwrap());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .collect();
        assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
        assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
        assert_eq!(names.len(), 2 + 4 + 2);
    }

    #[test]
    fn docker_archive_has_manifest_json_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        multi_platform_layout(&tmp.path().join("layout"));
        let layout = OciDir::open(&tmp.path().join("layout")).unwrap();
        let manifest = amd64_manifest(&layout);
        let dest = tmp.path().join("d.tar");
        let r = format!("docker-archive:{}:localhost:5000/app", dest.display());
        write_output(&r.parse().unwrap(), &layout, &manifest).unwrap();
        let image = import(format!(
            "docker-archive:{}:localhost:5000/app:latest",
            dest.display()
        ));
        assert_eq!(image.layers.len(), 2);
        let mut archive = tar::Archive::new(fs_err::File::open(&dest).unwrap());
        let mut manifest_json = String::new();
        let mut index_json = String::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            match &*e.path_bytes() {
                b"manifest.json" => e.read_to_string(&mut manifest_json).unwrap(),
                b"index.json" => e.read_to_string(&mut index_json).unwrap(),
                _ => 0,
            };
        }
        assert!(
            manifest_json.contains(r#""RepoTags":["localhost:5000/app:latest"]"#),
            "{manifest_json}"
        );
        assert!(index_json.contains(r#""io.containerd.image.name":"localhost:5000/app:latest""#));
        assert!(index_json.contains(r#""org.opencontainers.image.ref.name":"latest""#));
    }

    #[test]
    fn oci_layout_output_copies_blobs_and_tags() {
        let tmp = tempfile::tempdir().unwrap();
        multi_platform_layout(&tmp.path().join("layout"));
        let layout = OciDir::open(&tmp.path().join("layout")).unwrap();
        let manifest = amd64_manifest(&layout);
        let out = tmp.path().join("out");
        write_output(
            &format!("oci-layout:{}", out.display()).parse().unwrap(),
            &layout,
            &manifest,
        )
        .unwrap();
        let out = OciDir::open(&out).unwrap();
        assert_eq!(out.resolve_tag("latest").unwrap().digest, manifest.digest);
        assert_eq!(out.fsck().unwrap(), 4);
    }

    #[test]
    fn failed_archive_write_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        multi_platform_layout(&tmp.path().join("layout"));
        let layout = OciDir::open(&tmp.path().join("layout")).unwrap();
        let manifest = amd64_manifest(&layout);
        let m: ImageManifest = layout.read_json_blob(&manifest.digest).unwrap();
        fs_err::remove_file(layout.blob_path(&m.layers[1].digest)).unwrap();
        let out = tmp.path().join("out");
        fs_err::create_dir(&out).unwrap();
        let err = write_oci_archive(&layout, &manifest, None, &out.join("x.tar")).unwrap_err();
        assert!(matches!(err, OciError::Io { .. }), "{err}");
        assert_eq!(fs_err::read_dir(&out).unwrap().count(), 0);
    }

    /// A whole build: layer blob, config, manifest, tag, both archives.
    /// With `STRATA_DUMP_DIR` set, the outputs are kept there for external
    /// checks (`skopeo inspect`, `umoci`).
    #[test]
    fn end_to_end_image() {
        use crate::oci::compress::{Compression, write_layer};
        use crate::oci::image::{ConfigInput, HistoryEntry, ImageSettings, build_config, rfc3339};
        use crate::oci::layout::write_image;
        let tmp = tempfile::tempdir().unwrap();
        let keep = std::env::var_os("STRATA_DUMP_DIR").map(std::path::PathBuf::from);
        let out = keep.clone().unwrap_or_else(|| tmp.path().to_owned());
        let layout = OciDir::create(&out.join("layout")).unwrap();
        let entries = crate::oci::tar::tests::fixture(tmp.path());
        let layer = write_layer(&entries, &layout.blobs_dir(), Compression::Auto).unwrap();
        let platform = Platform::parse("linux/amd64").unwrap();
        let history = [HistoryEntry {
            created: Some(rfc3339(ARCHIVE_MTIME)),
            created_by: Some("strata layer app".into()),
            comment: Some(format!("strata/v1 inputs={}", layer.diff_id)),
            ..Default::default()
        }];
        let settings = ImageSettings {
            cmd: Some(vec!["/app/run.sh".into()]),
            ..Default::default()
        };
        let config = build_config(&ConfigInput {
            base: None,
            platform: &platform,
            created: ARCHIVE_MTIME,
            settings: &settings,
            diff_ids: std::slice::from_ref(&layer.diff_id),
            history: &history,
        })
        .unwrap();
        let manifest = write_image(
            &layout,
            &config,
            vec![layer.descriptor()],
            Default::default(),
        )
        .unwrap();
        layout.set_tag(&manifest, "latest").unwrap();
        assert_eq!(layout.fsck().unwrap(), 3);
        write_oci_archive(&layout, &manifest, Some("latest"), &out.join("oci.tar")).unwrap();
        write_docker_archive(
            &layout,
            &manifest,
            Some("strata-test:1"),
            &out.join("docker.tar"),
        )
        .unwrap();
        let image = import(format!(
            "docker-archive:{}",
            out.join("docker.tar").display()
        ));
        assert_eq!(image.layers[0].diff_id, layer.diff_id);
        assert_eq!(
            image.config_digest,
            layout
                .read_json_blob::<ImageManifest>(&manifest.digest)
                .unwrap()
                .config
                .digest
        );
        // Pinned: the whole image's identity.
        if keep.is_none() {
            assert_eq!(
                manifest.digest.to_string(),
                "sha256:e461cd3506e2f56c6805d6f77f0acdf1168ca37be0658be26fd481fea866f04f"
            );
        }
    }

    #[test]
    fn output_names_are_checked() {
        let check = |s: &str| check_output_name(&s.parse().unwrap());
        for good in [
            "oci-layout:out:v1",
            "oci-layout:out",
            "oci-archive:a.tar:1.0-rc.1",
            "oci-layout:out:app/v2",
            "docker-archive:d.tar:app",
            "docker-archive:d.tar:localhost:5000/team/app:v1",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "oci-layout:out:../evil",
            "oci-layout:out:a b",
            "oci-archive:a.tar:-v1",
            "oci-layout:out:v1\n",
            "docker-archive:d.tar:App:v1",
            "docker-archive:d.tar:app:../x",
            "docker-archive:d.tar:../app",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_split_and_normalize() {
        assert_eq!(split_reference("app"), ("app", "latest"));
        assert_eq!(
            split_reference("localhost:5000/app:1"),
            ("localhost:5000/app", "1")
        );
        assert_eq!(full_name("app"), "docker.io/library/app");
        assert_eq!(full_name("me/app"), "docker.io/me/app");
        assert_eq!(full_name("ghcr.io/me/app"), "ghcr.io/me/app");
    }
}
