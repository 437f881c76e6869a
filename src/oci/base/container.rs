//! Where a base's files are: a layout directory or a tar archive, read in
//! place by relative path.

use super::*;

/// Files of a layout directory or of a tar archive, by relative path.
pub(super) enum Container {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        files: HashMap<String, (u64, u64)>,
        links: HashMap<String, String>,
    },
}

/// Normalizes a relative path: no `.`, empty or leading `/` components;
/// `..` pops. `None` if it climbs out.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl Container {
    pub(super) fn open_tar(file: &Path) -> Result<Self> {
        let f = fs_err::File::open(file).at(file)?;
        let mut archive = tar::Archive::new(f);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek().at(file)? {
            let entry = entry.at(file)?;
            let Some(name) = normalize(&String::from_utf8_lossy(&entry.path_bytes())) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    files.insert(name, (entry.raw_file_position(), entry.size()));
                }
                ty @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    if let Some(target) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        // Hard link targets are archive paths; symlinks are
                        // relative to the link's directory.
                        let resolved = if ty == tar::EntryType::Link || target.starts_with('/') {
                            target
                        } else {
                            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                            format!("{dir}/{target}")
                        };
                        links.insert(name, resolved);
                    }
                }
                _ => {}
            }
        }
        Ok(Self::Tar {
            file: file.to_owned(),
            files,
            links,
        })
    }

    pub(super) fn location(&self) -> &Path {
        match self {
            Self::Dir(p) => p,
            Self::Tar { file, .. } => file,
        }
    }

    pub(super) fn locate(&self, name: &str) -> Result<BlobSource> {
        let missing = || OciError::MissingBlob {
            location: self.location().display().to_string(),
            digest: name.to_owned(),
        };
        let Some(mut name) = normalize(name) else {
            return Err(OciError::InvalidImage {
                location: self.location().display().to_string(),
                reason: format!("path `{name}` leaves the image"),
            });
        };
        match self {
            Self::Dir(root) => {
                let path = root.join(&name);
                let meta = fs_err::metadata(&path).map_err(|_| missing())?;
                if !meta.is_file() {
                    return Err(missing());
                }
                Ok(BlobSource {
                    path,
                    offset: 0,
                    len: meta.len(),
                })
            }
            Self::Tar { file, files, links } => {
                for _ in 0..16 {
                    if let Some(&(offset, len)) = files.get(&name) {
                        return Ok(BlobSource {
                            path: file.clone(),
                            offset,
                            len,
                        });
                    }
                    name = links
                        .get(&name)
                        .and_then(|t| normalize(t))
                        .ok_or_else(missing)?;
                }
                Err(missing())
            }
        }
    }
}
