//! Embeds the git commit this binary was built from as `TFO_GIT_COMMIT`, shown by
//! `tfo-agent version --json` so a bug report names the exact source.
//!
//! - `TFO_GIT_COMMIT` in the build environment wins (packagers building from a tarball).
//! - In a git checkout of this repository: `git rev-parse --short=12 HEAD`, plus `-dirty`
//!   when tracked files differ from HEAD.
//! - Otherwise (crates.io, a tarball, no git installed, or this crate vendored inside some
//!   other repository): `unknown`.
//!
//! The script reruns only when HEAD, the branch it points to, or the index changes (a commit,
//! checkout, `git add`, or a `git status` that noticed edits), not on every build. A build
//! made after editing files but before git refreshed its index may therefore miss `-dirty`;
//! release builds (`cargo install`, a fresh `target/`) always run it.

use std::path::{Path, PathBuf};
use std::process::Command;

const VAR: &str = "TFO_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-env-changed={VAR}");
    let commit = match std::env::var(VAR) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => {
            let manifest =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            from_git(&manifest).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env={VAR}={commit}");
    link_layout();
}

/// Release builds for x86_64 glibc (linked by rust-lld, the default since Rust 1.90):
/// `link/text-order.txt` puts the functions a running agent executes (start-up, a
/// collection cycle, export, buffer, endpoints) first and together in `.text`. The kernel
/// maps a binary's pages 64 KiB at a time around each one touched (fault-around), so
/// scattered hot code made 7 of the 10 MiB of `.text` resident; together it is about 4.
/// Made by `scripts/gen-text-order`; names missing after a change are skipped (the order
/// degrades, the build does not fail). `TFO_PLAIN_LINK=1` turns it off (another linker).
fn link_layout() {
    println!("cargo:rerun-if-env-changed=TFO_PLAIN_LINK");
    let order = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("link/text-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if target != "x86_64-unknown-linux-gnu"
        || !release
        || std::env::var_os("TFO_PLAIN_LINK").is_some_and(|v| v == "1")
    {
        return;
    }
    if order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// The commit of the checkout this crate sits in, or `None` when it is not our own checkout.
fn from_git(manifest: &Path) -> Option<String> {
    let top = PathBuf::from(git(manifest, &["rev-parse", "--show-toplevel"])?);
    // Only our own repository layout counts: a crate unpacked inside someone else's
    // repository (vendoring) must not report that repository's commit.
    let ours = top.join("crates/tfo-agent").canonicalize().ok()?;
    if ours != manifest.canonicalize().ok()? {
        return None;
    }
    // Watch the files whose change means a different commit or tree state. `--git-path`
    // resolves them in a linked worktree too (HEAD and index per worktree, refs shared).
    let mut watch = vec![
        "HEAD".to_string(),
        "index".to_string(),
        "packed-refs".to_string(),
    ];
    if let Some(r) = git(manifest, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(r);
    }
    for w in &watch {
        if let Some(p) = git(manifest, &["rev-parse", "--git-path", w]) {
            let p = if Path::new(&p).is_absolute() {
                PathBuf::from(p)
            } else {
                manifest.join(p)
            };
            // Cargo treats a missing file as always changed, so only existing ones are
            // watched. A ref packed by `git gc` disappears as a loose file: that reruns
            // the script once, which then watches packed-refs instead.
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    let sha = git(manifest, &["rev-parse", "--short=12", "HEAD"])?;
    // Tracked changes only: an untracked scratch file does not change what was built.
    let dirty = git(manifest, &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{sha}-dirty") } else { sha })
}

/// Runs git in `dir`; its trimmed stdout on success, `None` on any failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        // Never let `git status` rewrite the index: that would change a watched file and
        // rerun this script on the next build.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}
