//! The workspace's own source files, for the tests that hold an architecture invariant by
//! reading the code (no payload read by key outside the decoder, a pure domain).

use std::fs;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, build directories and `.git` left out.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    collect(dir, &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "node_modules") && !name.starts_with("target-") {
                collect(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `path` relative to the workspace root, with forward slashes.
pub fn relative(path: &Path) -> String {
    path.strip_prefix(workspace())
        .expect("inside the workspace")
        .to_string_lossy()
        .replace('\\', "/")
}

/// A source file's code before its `#[cfg(test)]` module (tests may use what the code may
/// not), with all whitespace removed, so that a chain split over lines is seen whole.
pub fn squeezed_code(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}
