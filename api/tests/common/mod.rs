//! Running the `kefu` binary as an operator would, in a fresh data directory.
#![allow(dead_code)]

use std::process::{Command, Output};

pub fn kefu(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .env("KEFU_DATA_DIR", dir.join("data"))
        .env_remove("KEFU_STORE")
        .env_remove("KEFU_READ_STORE")
        .env("KEFU_LOG", "warn")
        .output()
        .expect("run kefu")
}

/// The JSON lines a successful run printed.
pub fn lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "kefu failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
