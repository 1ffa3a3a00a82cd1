//! What identifies a process on its points besides its pid: the owner's user name, the
//! command line (opt-in, redacted) and the container it runs in. All three are read once
//! per process (when it is first seen, or after it exec'd), not every cycle.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use crate::parse::{lines, parse_u64};

/// Numeric uid to user name, from the host's `/etc/passwd` (under `collectors.root_path`).
/// An unknown uid triggers one re-read of the file per cycle; a uid still unknown is
/// reported as its number.
#[derive(Debug, Default)]
pub(crate) struct Users {
    names: HashMap<u32, String>,
    /// Whether the file was re-read during the current cycle.
    reloaded: bool,
}

impl Users {
    pub(crate) fn new_cycle(&mut self) {
        self.reloaded = false;
    }

    pub(crate) fn name(&mut self, uid: u32, passwd: &Path, buf: &mut Vec<u8>) -> String {
        if let Some(n) = self.names.get(&uid) {
            return n.clone();
        }
        if !self.reloaded {
            self.reloaded = true;
            if crate::parse::read_file(passwd, buf).is_ok() {
                self.names = parse_passwd(buf);
            }
            if let Some(n) = self.names.get(&uid) {
                return n.clone();
            }
        }
        uid.to_string()
    }
}

/// `name:password:uid:...` lines; malformed ones are skipped.
fn parse_passwd(input: &[u8]) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for line in lines(input) {
        let mut f = line.split(|&b| b == b':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some(uid) = parse_u64(uid).and_then(|u| u32::try_from(u).ok()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(b"#") {
            continue;
        }
        out.entry(uid)
            .or_insert_with(|| String::from_utf8_lossy(name).into_owned());
    }
    out
}

/// The command line from `/proc/<pid>/cmdline` (NUL-separated arguments) joined by
/// spaces, at most `max` bytes (cut at a character boundary), invalid UTF-8 replaced.
pub(crate) fn command_line(raw: &[u8], max: usize) -> String {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let joined: Vec<u8> = raw
        .iter()
        .take(max)
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    let mut s = String::from_utf8_lossy(&joined).into_owned();
    if raw.len() > max {
        // A multi-byte character cut in half became U+FFFD: drop it.
        if s.ends_with('\u{fffd}') {
            s.pop();
        }
    }
    s
}

/// Replaces secrets in `line`: for each pattern, every match's first capture group (or the
/// whole match, without groups) becomes `***`.
pub(crate) fn redact(line: &str, patterns: &[Regex]) -> String {
    let mut s = line.to_string();
    for re in patterns {
        if !re.is_match(&s) {
            continue;
        }
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for caps in re.captures_iter(&s) {
            let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                continue;
            };
            if m.start() < last {
                continue;
            }
            out.push_str(&s[last..m.start()]);
            out.push_str("***");
            last = m.end();
        }
        out.push_str(&s[last..]);
        s = out;
    }
    s
}

/// The default `redact_patterns`: values of arguments and variables whose name says secret
/// (`--password=x`, `API_KEY=x`, `token: x`; a following argument only after a flag:
/// `--token x`, so a plain word like `pass` does not hide the next one), and passwords in
/// URLs (`scheme://user:secret@host`).
pub const DEFAULT_REDACT_PATTERNS: &[&str] = &[
    r"(?i)(?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth)[a-z0-9_-]*[=:]\s*(\S+)",
    r"(?i)(?:^|\s)--?[a-z0-9_-]*(?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credentials?|auth)[a-z0-9_-]*\s+(\S+)",
    r"://[^:/@\s]+:([^@\s]+)@",
];

/// The container id in `/proc/<pid>/cgroup`: the last 64-hex-digit run in a cgroup path
/// (Docker `docker-<id>.scope` or `/docker/<id>`, containerd `cri-containerd-<id>.scope`,
/// CRI-O `crio-<id>.scope`, Podman `libpod-<id>.scope`, Kubernetes
/// `/kubepods/.../<id>`). `None` for a process outside containers.
pub(crate) fn container_id(cgroup: &[u8]) -> Option<String> {
    let mut found = None;
    for line in lines(cgroup) {
        // `hierarchy:controllers:path`; the path may itself contain ':'.
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for comp in path.split(|&b| b == b'/') {
            if let Some(id) = hex64(comp) {
                found = Some(id);
            }
        }
    }
    found.map(|id| String::from_utf8_lossy(id).into_owned())
}

/// The run of exactly 64 hex digits in a path component (with a prefix and suffix such as
/// `docker-` and `.scope` around it), if there is one.
fn hex64(comp: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while i < comp.len() {
        if comp[i].is_ascii_hexdigit() {
            let start = i;
            while i < comp.len() && comp[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - start == 64 {
                return comp.get(start..i);
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let p = parse_passwd(b"root:x:0:0:root:/root:/bin/bash\n# comment\nbad\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nx:y:zz:1\n:x:5:5\n");
        assert_eq!(p.get(&0).map(String::as_str), Some("root"));
        assert_eq!(p.get(&33).map(String::as_str), Some("www-data"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn command_lines_are_joined_cut_and_redacted() {
        assert_eq!(command_line(b"sleep\x00100\x00", 100), "sleep 100");
        assert_eq!(command_line(b"abcdef", 3), "abc");
        assert_eq!(command_line("é".as_bytes(), 1), "");
        let pats: Vec<Regex> = DEFAULT_REDACT_PATTERNS
            .iter()
            .map(|p| Regex::new(p).unwrap())
            .collect();
        for (line, want) in [
            ("app --password=hunter2 -v", "app --password=*** -v"),
            ("app --token abc123", "app --token ***"),
            (
                "env API_KEY=k1 DB_PASS=p2 ok",
                "env API_KEY=*** DB_PASS=*** ok",
            ),
            (
                "psql postgres://bob:s3cr3t@db:5432/x",
                "psql postgres://bob:***@db:5432/x",
            ),
            ("sleep 100", "sleep 100"),
            ("app -p --db-password s3 x", "app -p --db-password *** x"),
            (
                "python -c while True: pass marker",
                "python -c while True: pass marker",
            ),
            ("cmd token: abc", "cmd token: ***"),
        ] {
            assert_eq!(redact(line, &pats), want);
        }
        // Without a group the whole match goes.
        let whole = [Regex::new("hunter[0-9]").unwrap()];
        assert_eq!(redact("a hunter2 b hunter3", &whole), "a *** b ***");
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for cg in [
            format!("0::/system.slice/docker-{id}.scope\n"),
            format!("12:memory:/docker/{id}\n0::/\n"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/cri-containerd-{id}.scope\n"
            ),
            format!("0::/kubepods/besteffort/pod0b1c/{id}\n"),
            format!("0::/machine.slice/libpod-{id}.scope/container\n"),
        ] {
            assert_eq!(container_id(cg.as_bytes()).as_deref(), Some(id), "{cg}");
        }
        for cg in [
            &b"0::/user.slice/user-1000.slice/session-2.scope\n"[..],
            b"0::/\n",
            b"",
            b"garbage\xff",
            b"0::/docker/0123456789abcdef\n",
        ] {
            assert_eq!(container_id(cg), None);
        }
    }
}
