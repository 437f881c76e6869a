//! Parsers for the small value syntaxes of the spec: paths, sizes, durations,
//! modes, owners, ports, names, image references.

use super::reference::{ImageRef, ImageRefError};
use super::resolved::{BaseRef, Owner};

/// Cleans an absolute image path: `/app/./x//y/../z` → `/app/x/z`.
pub fn clean_abs(path: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err(nul(path));
    }
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// No file system, tar or OCI path can hold a NUL byte.
fn nul(path: &str) -> String {
    format!(
        "`{}` contains a NUL byte, which no path can hold",
        path.escape_debug()
    )
}

/// Cleans a context-relative path; `..` that leaves the context is an error.
/// The whole context is `.`.
pub fn clean_rel(path: &str) -> Result<String, String> {
    if path.contains('\0') {
        return Err(nul(path));
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{path}` is an absolute path; sources are relative to the build context"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{path}` leaves the build context"));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// Size units, in any letter case: decimal (SI) units are powers of 1000
/// (`kB` = `KB` = `k` = 1000), binary units powers of 1024 (`KiB` = `Ki` =
/// 1024), as `docs/spec.md` says.
pub const SIZE_UNITS: &str =
    "B, k/kB (1000), Ki/KiB (1024), M/MB, Mi/MiB, G/GB, Gi/GiB, T/TB, Ti/TiB";

/// Parses a size such as `32MiB`, `16 KiB`, `16kb` or `1g` into bytes (see
/// [`SIZE_UNITS`]).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as `32MiB` (units: {SIZE_UNITS})"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown size unit `{}` in `{s}`: use one of {SIZE_UNITS} (any letter case)",
                unit.trim()
            ));
        }
    };
    Ok((n * mult as f64) as u64)
}

/// Parses a duration as Docker does (`30s`, `1m30s`, `500ms`) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let err = || format!("`{s}` is not a duration such as `30s` or `1m30s`");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(split);
        let n: f64 = num.parse().map_err(|_| err())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += n * mult;
        rest = tail;
    }
    Ok(total as u64)
}

/// Parses an octal mode string such as `"0755"` or `"755"`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s, 8)
        .map_err(|_| format!("`{s}` is not an octal mode such as \"0755\""))?;
    if m > 0o7777 {
        return Err(format!("mode `{s}` is larger than 07777"));
    }
    Ok(m)
}

/// Parses `uid[:gid]` (numeric; the group defaults to the uid, as Docker's `--chown`).
pub fn parse_owner(s: &str) -> Result<Owner, String> {
    let err = || format!("`{s}` is not a numeric owner such as \"1000:1000\"");
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    Ok(Owner {
        uid: u.parse().map_err(|_| err())?,
        gid: g.parse().map_err(|_| err())?,
    })
}

/// Parses an exposed port `PORT[/tcp|/udp|/sctp]` into `PORT/proto`.
pub fn parse_port(s: &str) -> Result<String, String> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let n: u32 = port
        .parse()
        .map_err(|_| format!("`{s}` is not a port such as \"8000/tcp\""))?;
    if !(1..=65535).contains(&n) {
        return Err(format!("port {n} is out of range 1-65535"));
    }
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!(
            "unknown protocol `{proto}` in `{s}`: use tcp, udp or sctp"
        ));
    }
    Ok(format!("{n}/{proto}"))
}

/// Whether `name` is a valid environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(f) if f == '_' || f.is_ascii_alphabetic())
        && c.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether `name` is a valid layer name, `[a-z0-9][a-z0-9._-]*`.
pub fn is_layer_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f.is_ascii_digit())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Whether `name` is a valid target name, `[A-Za-z0-9][A-Za-z0-9._-]*`.
pub fn is_target_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphanumeric())
        && c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Parses `[image] from` (local transports: [`ImageRef`]).
pub fn parse_base(s: &str) -> Result<BaseRef, String> {
    if s == "scratch" {
        return Ok(BaseRef::Scratch);
    }
    if ImageRef::is_local(s) {
        return s
            .parse()
            .map(BaseRef::Local)
            .map_err(|e: ImageRefError| e.to_string());
    }
    if is_image_reference(s) {
        Ok(BaseRef::Registry(s.to_string()))
    } else {
        Err(format!(
            "`{s}` is not an image reference: use `scratch`, `NAME[:TAG][@DIGEST]`, `oci-layout:PATH[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME[:TAG]]`"
        ))
    }
}

/// A loose check of Docker's reference grammar: `[host[:port]/]path[:tag][@sha256:hex]`.
pub fn is_image_reference(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        let comp = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        // As Docker's: a first component is a registry host only when it has a
        // `.` or a port, or is `localhost`.
        let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
        let host = format!(
            r"(?:(?:localhost|{label}(?:\.{label})+)(?::[0-9]+)?/|{label}:[0-9]+/)?"
        );
        regex::Regex::new(&format!(
            r"^{host}{comp}(?:/{comp})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?$"
        ))
        .expect("reference regex")
    });
    re.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_abs("/app/./x//y/../z/").unwrap(), "/app/x/z");
        assert_eq!(clean_abs("/").unwrap(), "/");
        assert!(clean_abs("app").is_err());
        assert_eq!(clean_rel("./models/").unwrap(), "models");
        assert_eq!(clean_rel(".").unwrap(), ".");
        assert_eq!(clean_rel("a/../b").unwrap(), "b");
        assert!(clean_rel("../x").is_err());
        assert!(clean_rel("a/../../x").is_err());
        assert!(clean_rel("/etc").is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12 parsecs").is_err());
        // What users write: any case, a space or not; SI is 1000, binary 1024.
        assert_eq!(parse_size("16kb").unwrap(), 16_000);
        assert_eq!(parse_size("16KB").unwrap(), 16_000);
        assert_eq!(parse_size("16 KiB").unwrap(), 16 << 10);
        assert_eq!(parse_size("16kib").unwrap(), 16 << 10);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1g").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("1.5Mi").unwrap(), 3 << 19);
        let e = parse_size("3 furlongs").unwrap_err();
        for unit in ["B", "kB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB"] {
            assert!(e.contains(unit), "{e}");
        }
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_duration("30").is_err());
    }

    #[test]
    fn modes_owners_ports_platforms() {
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("17777").is_err());
        assert_eq!(
            parse_owner("1000:1001").unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(parse_owner("7").unwrap(), Owner { uid: 7, gid: 7 });
        assert!(parse_owner("root").is_err());
        assert_eq!(parse_port("8000").unwrap(), "8000/tcp");
        assert!(parse_port("70000/tcp").is_err());
        assert!(parse_port("80/icmp").is_err());
    }

    #[test]
    fn base_references() {
        assert_eq!(parse_base("scratch").unwrap(), BaseRef::Scratch);
        assert!(matches!(
            parse_base("python:3.11-slim").unwrap(),
            BaseRef::Registry(_)
        ));
        assert!(matches!(
            parse_base("localhost:5000/team/img:v1").unwrap(),
            BaseRef::Registry(_)
        ));
        assert_eq!(
            parse_base("oci-layout:base/layout:v1").unwrap(),
            BaseRef::Local(ImageRef::OciLayout {
                path: "base/layout".into(),
                tag: Some("v1".into())
            })
        );
        // A docker archive's image name, and the `oci:` alias.
        assert_eq!(
            parse_base("docker-archive:base.tar:app:1").unwrap(),
            BaseRef::Local(ImageRef::DockerArchive {
                path: "base.tar".into(),
                reference: Some("app:1".into())
            })
        );
        assert!(matches!(
            parse_base("oci:out").unwrap(),
            BaseRef::Local(ImageRef::OciLayout { .. })
        ));
        assert!(parse_base("oci-layout:").is_err());
        assert!(parse_base("Not An Image").is_err());
        assert!(parse_base("UPPER/case").is_err());
    }

    #[test]
    fn names() {
        assert!(is_layer_name("models"));
        assert!(is_layer_name("py-deps.2"));
        assert!(!is_layer_name("Models"));
        assert!(!is_layer_name("a@b"));
        assert!(!is_layer_name("-x"));
        assert!(is_env_name("PATH_2"));
        assert!(!is_env_name("2X"));
    }
}
