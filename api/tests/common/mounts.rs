//! Real file systems for the tests that need a directory read-only or full: small tmpfs
//! mounts, which need root. CI runs as root; elsewhere these tests skip, saying so.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this process may mount; false (after saying the test is skipped) when it may not.
/// Under CI it must.
pub fn root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid());
    if uid.as_ref().is_ok_and(|u| *u == 0) {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI must run this test as root (it mounts a small tmpfs)"
    );
    eprintln!("skipped: mounting test file systems needs root (running as uid {uid:?})");
    false
}

/// A tmpfs mounted on a directory (created if missing) with `options` (`size=64k`,
/// `ro,size=1m`), unmounted when dropped.
pub struct Mount(PathBuf);

impl Mount {
    pub fn tmpfs(dir: &Path, options: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -o {options} {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(dir.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazily: a server killed a moment ago may still hold a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `file` until the file system it is on refuses another byte (each page synced, so
/// a full disk says so then and there); the error it refused with.
pub fn fill(file: &Path) -> std::io::Error {
    let mut f = std::fs::File::create(file).unwrap();
    let page = [7u8; 4096];
    loop {
        if let Err(e) = f.write_all(&page).and_then(|()| f.sync_all()) {
            return e;
        }
    }
}
