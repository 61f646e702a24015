//! Running the `kefu` binary as an operator would, in a fresh data directory.
#![allow(dead_code)]

use std::process::{Command, Output};

/// `kefu` with `dir/data` as its data directory and no store configured from outside.
pub fn command(dir: &std::path::Path) -> Command {
    configured(Command::new(env!("CARGO_BIN_EXE_kefu")), dir)
}

/// `kefu` as another user (`setpriv` options, e.g. `--reuid=65534`), configured as by
/// [`command`].
pub fn command_as(setpriv: &[&str], dir: &std::path::Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(setpriv).arg(env!("CARGO_BIN_EXE_kefu"));
    configured(c, dir)
}

fn configured(mut c: Command, dir: &std::path::Path) -> Command {
    c.env("KEFU_DATA_DIR", dir.join("data"))
        .env_remove("KEFU_STORE")
        .env_remove("KEFU_READ_STORE")
        .env_remove("DATABASE_URL")
        .env("KEFU_LOG", "warn");
    c
}

pub fn kefu(dir: &std::path::Path, args: &[&str]) -> Output {
    command(dir).args(args).output().expect("run kefu")
}

/// The JSON lines a successful run printed.
pub fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(stdout(out))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// What a successful run printed.
pub fn stdout(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "kefu failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The error a failed run named.
pub fn refusal(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "kefu succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(out)
}
