//! The base's final filesystem metadata for chosen paths, whiteouts
//! applied (docs/design.md §1, parent directories).

use super::*;

/// What a path is in the base image's final filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BasePath {
    /// Not there.
    Absent,
    /// A directory; `mode` includes setuid/setgid/sticky.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u64,
        /// Group.
        gid: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Its target, unchanged.
        target: Vec<u8>,
    },
    /// A regular file or anything else that is not a directory.
    Other,
}

/// Strips `./`, `/` and trailing `/` from a layer tar's entry name.
fn layer_path(raw: &[u8]) -> Vec<u8> {
    raw.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// The final state of each of `paths` (entry paths: relative, no leading or
/// trailing `/`) after stacking `layers` bottom first, applying whiteouts
/// (`.wh.NAME` removes NAME from lower layers, `.wh..wh..opq` hides a
/// directory's lower contents). A directory that only exists implicitly (a
/// layer has entries below it but no entry for it) is reported as `0755`
/// owned by `0:0`, what extraction creates.
pub fn base_paths(layers: &[BaseLayer], paths: &[Vec<u8>]) -> Result<BTreeMap<Vec<u8>, BasePath>> {
    let mut state: BTreeMap<Vec<u8>, BasePath> = paths
        .iter()
        .map(|p| (p.clone(), BasePath::Absent))
        .collect();
    for layer in layers {
        let tar_reader = layer.open_tar()?;
        // This layer's own entries, applied over the lower state at the end,
        // so its whiteouts only hide lower layers.
        let mut layer_set: BTreeMap<Vec<u8>, BasePath> = BTreeMap::new();
        let mut archive = tar::Archive::new(tar_reader);
        for entry in archive.entries().at(&layer.source.path)? {
            let entry = entry.at(&layer.source.path)?;
            let path = layer_path(&entry.path_bytes());
            if path.is_empty() {
                continue;
            }
            let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&b""[..], &path[..]),
            };
            if name == b".wh..wh..opq" {
                hide_below(&mut state, parent, false);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let mut target = parent.to_vec();
                if !target.is_empty() {
                    target.push(b'/');
                }
                target.extend_from_slice(hidden);
                hide_below(&mut state, &target, true);
                continue;
            }
            // Implicit parents of this entry.
            for (i, _) in path.iter().enumerate().filter(|&(_, &b)| b == b'/') {
                let ancestor = &path[..i];
                if state.get(ancestor) == Some(&BasePath::Absent)
                    && !layer_set.contains_key(ancestor)
                {
                    layer_set.insert(
                        ancestor.to_vec(),
                        BasePath::Dir {
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                        },
                    );
                }
            }
            let h = entry.header();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => BasePath::Dir {
                    mode: h.mode().at(&layer.source.path)? & 0o7777,
                    uid: h.uid().at(&layer.source.path)?,
                    gid: h.gid().at(&layer.source.path)?,
                },
                tar::EntryType::Symlink => BasePath::Symlink {
                    target: entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default(),
                },
                _ => BasePath::Other,
            };
            if !matches!(kind, BasePath::Dir { .. }) {
                // A non-directory replaces whatever lower layers had below it.
                hide_below(&mut state, &path, false);
            }
            if state.contains_key(&path) {
                layer_set.insert(path, kind);
            }
        }
        state.extend(layer_set);
    }
    Ok(state)
}

/// Marks queried paths below `dir` (and `dir` itself if `inclusive`) absent.
fn hide_below(state: &mut BTreeMap<Vec<u8>, BasePath>, dir: &[u8], inclusive: bool) {
    if inclusive && let Some(v) = state.get_mut(dir) {
        *v = BasePath::Absent;
    }
    let mut prefix = dir.to_vec();
    if !prefix.is_empty() {
        prefix.push(b'/');
    }
    for (path, value) in state.range_mut(prefix.clone()..) {
        if !path.starts_with(&prefix) {
            break;
        }
        *value = BasePath::Absent;
    }
}
