//! Where strata keeps its caches (docs/design.md §5): `--cache-dir`, else
//! `STRATA_CACHE_DIR`, else `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The cache root. `explicit` is `--cache-dir`. Empty variables count as
/// unset, and a relative `XDG_CACHE_HOME` is ignored, as the XDG spec says.
/// Without a home directory, falls back to `strata-cache` in the temporary
/// directory.
pub fn cache_root(explicit: Option<&Path>) -> PathBuf {
    cache_root_with(explicit, |name| std::env::var_os(name))
}

fn cache_root_with(explicit: Option<&Path>, env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    let set = |name| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("STRATA_CACHE_DIR") {
        return dir;
    }
    if let Some(dir) = set("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return dir.join("strata");
    }
    if let Some(home) = set("HOME").or_else(std::env::home_dir) {
        return home.join(".cache").join("strata");
    }
    std::env::temp_dir().join("strata-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(explicit: Option<&str>, vars: &[(&str, &str)]) -> PathBuf {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        cache_root_with(explicit.map(Path::new), |name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn precedence() {
        let all = [
            ("STRATA_CACHE_DIR", "/s"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(root(Some("/flag"), &all), PathBuf::from("/flag"));
        assert_eq!(root(None, &all), PathBuf::from("/s"));
        assert_eq!(root(None, &all[1..]), PathBuf::from("/x/strata"));
        assert_eq!(root(None, &all[2..]), PathBuf::from("/h/.cache/strata"));
        let empty = [
            ("STRATA_CACHE_DIR", ""),
            ("XDG_CACHE_HOME", "rel"),
            ("HOME", "/h"),
        ];
        assert_eq!(root(None, &empty), PathBuf::from("/h/.cache/strata"));
    }
}
