//! Host identity: names, OS release, kernel, uptime, boot time, machine id, time zone.

use std::path::Path;

use serde::Serialize;

use crate::read::{read_small, read_trim, under};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInfo {
    pub hostname: String,
    /// `linux`.
    pub os: String,
    /// `VERSION_ID` from os-release (`22.04`).
    pub os_version: Option<String>,
    /// os-release `ID` (`ubuntu`).
    pub platform: Option<String>,
    /// `debian`, `rhel`, `suse`, ... from `ID_LIKE`, else `ID`.
    pub platform_family: Option<String>,
    pub kernel_version: Option<String>,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// Seconds since boot.
    pub uptime: Option<u64>,
    /// Unix seconds.
    pub boot_time: Option<u64>,
    /// `/etc/machine-id`, else the DMI product UUID.
    pub host_id: Option<String>,
    /// IANA name (`Europe/Berlin`).
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsRelease {
    pub id: Option<String>,
    pub id_like: Option<String>,
    pub version_id: Option<String>,
}

pub fn os_release(root: &Path) -> OsRelease {
    let text = read_small(&under(root, "/etc/os-release"))
        .or_else(|| read_small(&under(root, "/usr/lib/os-release")))
        .unwrap_or_default();
    let mut r = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        if v.is_empty() {
            continue;
        }
        match k.trim() {
            "ID" => r.id = Some(v),
            "ID_LIKE" => r.id_like = Some(v),
            "VERSION_ID" => r.version_id = Some(v),
            _ => {}
        }
    }
    r
}

fn family(r: &OsRelease) -> Option<String> {
    let like: Vec<&str> = r
        .id_like
        .as_deref()
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    for f in ["rhel", "debian", "suse", "arch"] {
        if like.contains(&f) {
            return Some(f.to_string());
        }
    }
    like.first().map(|s| s.to_string()).or_else(|| r.id.clone())
}

/// The kernel hostname from `root/proc/sys/kernel/hostname`, else `gethostname(2)`.
pub fn hostname(root: &Path) -> String {
    if let Some(h) = read_trim(&under(root, "/proc/sys/kernel/hostname")) {
        return h;
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; the result is NUL-terminated
    // when it fits, which the length cap below guarantees for us either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let h = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !h.is_empty() {
            return h;
        }
    }
    "localhost".to_string()
}

pub fn kernel_version(root: &Path) -> Option<String> {
    read_trim(&under(root, "/proc/sys/kernel/osrelease"))
}

fn timezone(root: &Path) -> Option<String> {
    if let Some(tz) = read_trim(&under(root, "/etc/timezone")) {
        return Some(tz);
    }
    let localtime = under(root, "/etc/localtime");
    match std::fs::read_link(&localtime) {
        Ok(target) => {
            let t = target.to_string_lossy();
            t.find("zoneinfo/")
                .map(|i| t[i + "zoneinfo/".len()..].to_string())
                .filter(|z| !z.is_empty())
        }
        // Without /etc/localtime the C library uses UTC.
        Err(_) if !localtime.exists() => Some("UTC".to_string()),
        Err(_) => None,
    }
}

fn host_id(root: &Path) -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| read_trim(&under(root, p)))
        .or_else(|| {
            read_trim(&under(root, "/sys/class/dmi/id/product_uuid"))
                .map(|u| u.to_ascii_lowercase())
        })
}

/// `btime` from `/proc/stat` is passed in because the CPU reader already has the file.
pub fn collect(root: &Path, hostname_override: Option<&str>, boot_time: Option<u64>) -> HostInfo {
    let os = os_release(root);
    let uptime = read_small(&under(root, "/proc/uptime")).and_then(|s| {
        s.split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v as u64)
    });
    HostInfo {
        hostname: hostname_override
            .map(str::to_string)
            .unwrap_or_else(|| hostname(root)),
        os: std::env::consts::OS.to_string(),
        os_version: os.version_id.clone(),
        platform_family: family(&os),
        platform: os.id.clone(),
        kernel_version: kernel_version(root),
        architecture: crate::settings::go_arch().to_string(),
        uptime,
        boot_time,
        host_id: host_id(root),
        timezone: timezone(root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let f = |id: &str, like: Option<&str>| {
            family(&OsRelease {
                id: Some(id.into()),
                id_like: like.map(str::to_string),
                version_id: None,
            })
        };
        assert_eq!(f("ubuntu", Some("debian")).as_deref(), Some("debian"));
        assert_eq!(
            f("amzn", Some("centos rhel fedora")).as_deref(),
            Some("rhel")
        );
        assert_eq!(f("debian", None).as_deref(), Some("debian"));
        assert_eq!(
            f("opensuse-leap", Some("suse opensuse")).as_deref(),
            Some("suse")
        );
    }
}
