//! Glob patterns over file system paths, and the directory walk that expands them.
//!
//! Syntax: `*` (any run of bytes within one name), `?` (one byte), `[abc]`, `[a-z]`,
//! `[!a-z]` / `[^a-z]`, `{a,b}` alternatives (nestable), `**` as a whole component (any
//! number of directories, including none), `\x` for a literal `x`. `*` also matches names
//! starting with a dot. Symbolic links are followed for files and for directories named
//! literally or by `*`; `**` does not descend into symlinked directories (no loops).
//!
//! Only the directories a pattern needs are read: `/var/log/pods/*/*/*.log` lists
//! `/var/log/pods` and each pod and container directory, nothing else.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Most alternatives one pattern may expand to through `{…}`.
const MAX_EXPANSIONS: usize = 256;
/// Deepest directory level `**` descends to.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    Star,
    One,
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Tok {
    fn matches(&self, b: u8) -> bool {
        match self {
            Tok::Lit(c) => *c == b,
            Tok::Star | Tok::One => true,
            Tok::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comp {
    Literal(Vec<u8>),
    Wild(Vec<Tok>),
    AnyDepth,
}

impl Comp {
    fn matches(&self, name: &[u8]) -> bool {
        match self {
            Comp::Literal(l) => l == name,
            Comp::Wild(toks) => match_toks(toks, name),
            Comp::AnyDepth => true,
        }
    }
}

/// One pattern after `{…}` expansion.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    absolute: bool,
    comps: Vec<Comp>,
}

/// Parses `pattern`, expanding `{…}`; the error says what is wrong.
pub(crate) fn parse(pattern: &str) -> Result<Vec<Pattern>, String> {
    if pattern.is_empty() {
        return Err("is empty".to_string());
    }
    let mut out = Vec::new();
    for alt in expand_braces(pattern.as_bytes())? {
        out.push(parse_one(&alt)?);
    }
    Ok(out)
}

fn expand_braces(p: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    // find the first top-level `{` and its matching `}`
    let mut i = 0;
    let mut open = None;
    let mut depth = 0usize;
    let mut commas = Vec::new();
    while i < p.len() {
        match p[i] {
            b'\\' => i += 1,
            b'[' => {
                i = class_end(p, i)
                    .ok_or_else(|| format!("has an unclosed `[` at byte {}", i + 1))?
            }
            b'{' => {
                if depth == 0 {
                    open = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            b',' if depth == 1 => commas.push(i),
            b'}' => {
                if depth == 0 {
                    return Err(format!("has a `}}` without `{{` at byte {}", i + 1));
                }
                depth -= 1;
                if depth == 0 {
                    let start = open.expect("depth was positive");
                    let mut bounds = vec![start];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let (head, tail) = (&p[..start], &p[i + 1..]);
                    let mut out = Vec::new();
                    for w in bounds.windows(2) {
                        let mut alt = head.to_vec();
                        alt.extend_from_slice(&p[w[0] + 1..w[1]]);
                        alt.extend_from_slice(tail);
                        for e in expand_braces(&alt)? {
                            if out.len() == MAX_EXPANSIONS {
                                return Err(format!(
                                    "expands to more than {MAX_EXPANSIONS} patterns"
                                ));
                            }
                            out.push(e);
                        }
                    }
                    return Ok(out);
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Err("has an unclosed `{`".to_string());
    }
    Ok(vec![p.to_vec()])
}

/// Index of the `]` closing the class opened at `open`.
fn class_end(p: &[u8], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if j < p.len() && (p[j] == b'!' || p[j] == b'^') {
        j += 1;
    }
    if j < p.len() && p[j] == b']' {
        j += 1;
    }
    while j < p.len() && p[j] != b']' {
        if p[j] == b'/' {
            return None;
        }
        j += 1;
    }
    (j < p.len()).then_some(j)
}

fn parse_one(p: &[u8]) -> Result<Pattern, String> {
    let absolute = p.first() == Some(&b'/');
    let mut comps = Vec::new();
    for part in p.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if part == b"**" {
            if comps.last() != Some(&Comp::AnyDepth) {
                comps.push(Comp::AnyDepth);
            }
            continue;
        }
        let toks = tokens(part)?;
        if toks.iter().all(|t| matches!(t, Tok::Lit(_))) {
            let lit = toks
                .iter()
                .map(|t| match t {
                    Tok::Lit(b) => *b,
                    _ => unreachable!("checked above"),
                })
                .collect();
            comps.push(Comp::Literal(lit));
        } else {
            comps.push(Comp::Wild(toks));
        }
    }
    if comps.is_empty() {
        return Err("names no file".to_string());
    }
    Ok(Pattern { absolute, comps })
}

fn tokens(part: &[u8]) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'\\' => {
                i += 1;
                toks.push(Tok::Lit(*part.get(i).ok_or("ends with a lone `\\`")?));
            }
            b'*' => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
            }
            b'?' => toks.push(Tok::One),
            b'[' => {
                let end = class_end(part, i).ok_or("has an unclosed `[`")?;
                let mut j = i + 1;
                let negated = matches!(part[j], b'!' | b'^');
                if negated {
                    j += 1;
                }
                let body = &part[j..end];
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    let lo = body[k];
                    if k + 2 < body.len() && body[k + 1] == b'-' {
                        let hi = body[k + 2];
                        if hi < lo {
                            return Err(format!(
                                "has an empty range `{}-{}`",
                                lo as char, hi as char
                            ));
                        }
                        ranges.push((lo, hi));
                        k += 3;
                    } else {
                        ranges.push((lo, lo));
                        k += 1;
                    }
                }
                toks.push(Tok::Class { negated, ranges });
                i = end;
            }
            b => toks.push(Tok::Lit(b)),
        }
        i += 1;
    }
    Ok(toks)
}

/// Wildcard match of one name; linear with a single backtrack point.
fn match_toks(p: &[Tok], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            if p[pi] == Tok::Star {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            if p[pi].matches(s[si]) {
                pi += 1;
                si += 1;
                continue;
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == Tok::Star {
        pi += 1;
    }
    pi == p.len()
}

fn match_comps(comps: &[Comp], parts: &[&[u8]]) -> bool {
    match comps.first() {
        None => parts.is_empty(),
        Some(Comp::AnyDepth) => (0..=parts.len()).any(|k| match_comps(&comps[1..], &parts[k..])),
        Some(c) => {
            !parts.is_empty() && c.matches(parts[0]) && match_comps(&comps[1..], &parts[1..])
        }
    }
}

/// A pattern that excludes files: with a `/` it is matched against the whole path, without
/// one against the file name.
#[derive(Debug, Clone)]
pub(crate) struct Exclude {
    name_only: bool,
    patterns: Vec<Pattern>,
}

impl Exclude {
    pub(crate) fn parse(text: &str) -> Result<Exclude, String> {
        Ok(Exclude {
            name_only: !text.contains('/'),
            patterns: parse(text)?,
        })
    }

    pub(crate) fn matches(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        let parts: Vec<&[u8]> = bytes
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let parts = if self.name_only {
            &parts[parts.len().saturating_sub(1)..]
        } else {
            &parts[..]
        };
        self.patterns.iter().any(|p| match_comps(&p.comps, parts))
    }
}

/// A problem met while walking: the path and the error.
pub(crate) type WalkError = (PathBuf, io::Error);

impl Pattern {
    /// Calls `found` with every regular file (after following symlinks) the pattern matches,
    /// with its metadata. Directories that do not exist are not errors (nothing matches);
    /// other failures to list a directory or stat a file are pushed to `errors`.
    pub(crate) fn walk(
        &self,
        found: &mut dyn FnMut(PathBuf, fs::Metadata),
        errors: &mut Vec<WalkError>,
    ) {
        let root = if self.absolute {
            PathBuf::from("/")
        } else {
            PathBuf::from(".")
        };
        let mut current = vec![root];
        let last = self.comps.len() - 1;
        for (i, comp) in self.comps.iter().enumerate() {
            let want_dirs = i < last;
            let mut next = Vec::new();
            match comp {
                Comp::Literal(lit) => {
                    for dir in current {
                        next.push(dir.join(OsStr::from_bytes(lit)));
                    }
                }
                Comp::Wild(_) => {
                    for dir in &current {
                        list(dir, errors, |path, is_dir| {
                            let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
                            if comp.matches(name) && (!want_dirs || is_dir()) {
                                next.push(path);
                            }
                        });
                    }
                }
                Comp::AnyDepth => {
                    for dir in current {
                        descend(dir, 0, &mut next, errors);
                    }
                    if !want_dirs {
                        // a trailing `**`: every file below
                        let dirs = std::mem::take(&mut next);
                        for dir in &dirs {
                            list(dir, errors, |path, _| next.push(path));
                        }
                    }
                }
            }
            current = next;
        }
        for path in current {
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => found(path, meta),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => errors.push((path, e)),
            }
        }
    }
}

/// Lists `dir` in name order; `each` gets the entry's path and a lazy "is a directory"
/// (following symlinks).
fn list(dir: &Path, errors: &mut Vec<WalkError>, mut each: impl FnMut(PathBuf, &dyn Fn() -> bool)) {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            errors.push((dir.to_path_buf(), e));
            return;
        }
    };
    let mut entries: Vec<(PathBuf, Option<fs::FileType>)> = Vec::new();
    for entry in rd {
        match entry {
            Ok(e) => entries.push((e.path(), e.file_type().ok())),
            Err(e) => {
                errors.push((dir.to_path_buf(), e));
                break;
            }
        }
    }
    // name order, so a file reached through two names is found the same way each time
    entries.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    for (path, ft) in entries {
        let is_dir = || match ft {
            Some(ft) if ft.is_dir() => true,
            Some(ft) if ft.is_symlink() => fs::metadata(&path).is_ok_and(|m| m.is_dir()),
            Some(_) => false,
            None => fs::metadata(&path).is_ok_and(|m| m.is_dir()),
        };
        each(path.clone(), &is_dir);
    }
}

/// `dir` and every directory below it (not through symlinks), at most [`MAX_DEPTH`] deep.
fn descend(dir: PathBuf, depth: usize, out: &mut Vec<PathBuf>, errors: &mut Vec<WalkError>) {
    let mut subdirs = Vec::new();
    if depth < MAX_DEPTH {
        list(&dir, errors, |path, _| {
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                subdirs.push(path);
            }
        });
    }
    out.push(dir);
    for sub in subdirs {
        descend(sub, depth + 1, out, errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        let p = parse(pattern).unwrap();
        let parts: Vec<&[u8]> = path
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        p.iter().any(|p| match_comps(&p.comps, &parts))
    }

    #[test]
    fn matching() {
        assert!(m("/var/log/*.log", "/var/log/a.log"));
        assert!(m("/var/log/*.log", "/var/log/.hidden.log"));
        assert!(!m("/var/log/*.log", "/var/log/a.log.1"));
        assert!(!m("/var/log/*.log", "/var/log/x/a.log"));
        assert!(m("/var/log/**/*.log", "/var/log/a.log"));
        assert!(m("/var/log/**/*.log", "/var/log/x/y/a.log"));
        assert!(m("/var/log/app.log*", "/var/log/app.log.3"));
        assert!(m("/var/log/{syslog,messages}", "/var/log/messages"));
        assert!(m("/a/{b,c{d,e}}/f", "/a/ce/f"));
        assert!(m("/a/[!x]?.log", "/a/yz.log"));
        assert!(!m("/a/[!x]?.log", "/a/xz.log"));
        assert!(m("/a/[a-c]", "/a/b"));
        assert!(m("/a/\\*", "/a/*"));
        assert!(!m("/a/\\*", "/a/b"));
        assert!(m("/a/*b*c", "/a/xxbyyc"));
        assert!(!m("/a/*b*c", "/a/xxbyy"));
    }

    #[test]
    fn errors() {
        assert!(parse("/a/[x").is_err());
        assert!(parse("/a/{x").is_err());
        assert!(parse("/a/x}").is_err());
        assert!(parse("/a/[z-a]").is_err());
        assert!(parse("").is_err());
        assert!(parse("/").is_err());
        let many = "/{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}";
        assert!(parse(many).unwrap_err().contains("more than"));
    }

    #[test]
    fn exclude_by_name_or_path() {
        let e = Exclude::parse("*.gz").unwrap();
        assert!(e.matches(Path::new("/var/log/a.log.1.gz")));
        assert!(!e.matches(Path::new("/var/log/a.log")));
        let e = Exclude::parse("/var/log/secret/**").unwrap();
        assert!(e.matches(Path::new("/var/log/secret/x/y.log")));
        assert!(!e.matches(Path::new("/var/log/a.log")));
    }
}
