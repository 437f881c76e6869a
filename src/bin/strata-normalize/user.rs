//! The layer's `user`, resolved against the root filesystem's `/etc/passwd`
//! and `/etc/group` the way BuildKit's executor (runc's `GetExecUser`) does.

use fs_err as fs;

/// Who the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups: only when the spec names no group.
    pub(crate) groups: Vec<u32>,
    /// The passwd entry's home directory, `/` when there is none.
    pub(crate) home: String,
}

/// One line of a colon-separated database: its fields.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// `root`, or a decimal id.
fn numeric(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    s.parse().ok()
}

/// Resolves `uid`, `uid:gid`, `name`, `name:group` (or any mix) against the
/// two files' text (either may be missing). Numeric forms never read them
/// for the ids, as BuildKit's fast path does, and then have no
/// supplementary groups.
pub(crate) fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, String> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    // The passwd entry: by name, else by numeric id.
    let entry = records(passwd).find(|f| {
        f.len() >= 4 && (f[0] == user_arg || (numeric(user_arg).is_some() && f[2] == user_arg))
    });
    let home = entry
        .as_ref()
        .and_then(|f| f.get(5))
        .filter(|h| !h.is_empty())
        .map_or_else(|| "/".to_string(), |h| (*h).to_string());
    // BuildKit's fast path: `uid` or `uid:gid`, both numeric.
    if let Some(uid) = numeric(user_arg) {
        match group_arg {
            None => {
                return Ok(ExecUser {
                    uid,
                    gid: uid,
                    groups: Vec::new(),
                    home,
                });
            }
            Some(g) => {
                if let Some(gid) = numeric(g) {
                    return Ok(ExecUser {
                        uid,
                        gid,
                        groups: Vec::new(),
                        home,
                    });
                }
            }
        }
    }
    let (uid, mut gid, name) = match (&entry, numeric(user_arg)) {
        (Some(f), _) => {
            let uid = f[2]
                .parse()
                .map_err(|_| format!("bad uid in /etc/passwd for `{}`", f[0]))?;
            let gid = f[3]
                .parse()
                .map_err(|_| format!("bad gid in /etc/passwd for `{}`", f[0]))?;
            (uid, gid, Some(f[0]))
        }
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            ));
        }
    };
    let mut groups = Vec::new();
    match group_arg {
        Some(g) => {
            gid = match records(group).find(|f| f.len() >= 3 && (f[0] == g || f[2] == g)) {
                Some(f) => f[2]
                    .parse()
                    .map_err(|_| format!("bad gid in /etc/group for `{}`", f[0]))?,
                None => numeric(g).ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
            };
        }
        None => {
            if let Some(name) = name {
                for f in records(group).filter(|f| f.len() >= 4) {
                    if f[3].split(',').any(|m| m.trim() == name)
                        && let Ok(g) = f[2].parse::<u32>()
                        && !groups.contains(&g)
                    {
                        groups.push(g);
                    }
                }
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

/// [`resolve`] against the files of the root filesystem.
pub(crate) fn lookup(spec: &str) -> Result<ExecUser, String> {
    let passwd = fs::read_to_string("/etc/passwd").ok();
    let group = fs::read_to_string("/etc/group").ok();
    resolve(spec, passwd.as_deref(), group.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\nnohome:x:1001:1001:::/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\naudio:x:29:app,other\nvideo:x:44:app\napp:x:1000:\nstaff:x:50:\n";

    fn r(spec: &str) -> Result<ExecUser, String> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn numeric_forms_take_the_fast_path() {
        assert_eq!(
            r("1234").unwrap(),
            ExecUser {
                uid: 1234,
                gid: 1234,
                groups: vec![],
                home: "/".into()
            }
        );
        assert_eq!(
            r("1000:50").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 50,
                groups: vec![],
                home: "/home/app".into()
            }
        );
        assert_eq!(r("root").unwrap().uid, 0);
    }

    #[test]
    fn names_get_their_primary_and_supplementary_groups() {
        assert_eq!(
            r("app").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 1000,
                groups: vec![29, 44],
                home: "/home/app".into()
            }
        );
        assert_eq!(r("nohome").unwrap().home, "/");
    }

    #[test]
    fn an_explicit_group_drops_the_supplementary_ones() {
        assert_eq!(
            r("app:staff").unwrap(),
            ExecUser {
                uid: 1000,
                gid: 50,
                groups: vec![],
                home: "/home/app".into()
            }
        );
        assert_eq!(r("1000:audio").unwrap().gid, 29);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(
            r("nobody")
                .unwrap_err()
                .contains("unable to find user nobody")
        );
        assert!(
            r("app:nogroup")
                .unwrap_err()
                .contains("unable to find group nogroup")
        );
        assert!(resolve("app", None, None).is_err());
    }
}
