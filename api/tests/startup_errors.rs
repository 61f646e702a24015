//! Start-up errors name the path and the cause: a data directory on a read-only file system,
//! on a full one, owned by another user, or missing where it cannot be created, for the
//! embedded event store, the read-model store and the search index, through `kefu serve` and
//! the commands that open them. The file systems are real mounts (tmpfs), so these tests need
//! root: they skip, saying so, without it (CI runs them as root).

mod common;
#[path = "common/mounts.rs"]
mod mounts;

use mounts::{Mount, fill, root};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A secret for `kefu serve`, so it does not need to write one into the data directory.
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs `c` to its end, which must come (a server that started would not exit).
fn finished(mut c: Command) -> Output {
    let mut child = c
        .env("KEFU_TOKEN_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kefu did not stop on its own; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Runs kefu with `args` in `d`; it must fail, naming `path` and `cause`.
fn refused(c: Command, args: &[&str], path: &Path, cause: &str) {
    let mut c = c;
    c.args(args);
    let err = common::refusal(&finished(c));
    let path = path.display().to_string();
    assert!(
        err.contains(&path) && err.contains(cause),
        "kefu {args:?} should name {path} and {cause:?}: {err}"
    );
}

fn serve() -> [&'static str; 3] {
    ["serve", "--listen", "127.0.0.1:0"]
}

/// An event store and read models outside the data directory, so that the next opener in
/// line (the read-model store, the search index) is the one that meets the data directory.
struct Elsewhere {
    store: String,
    read: String,
}

impl Elsewhere {
    fn new(d: &Path) -> Elsewhere {
        let w = d.join("elsewhere");
        std::fs::create_dir_all(&w).unwrap();
        let store = w.join("kefu.db").display().to_string();
        common::stdout(&common::kefu(d, &["--store", &store, "migrate"]));
        Elsewhere {
            store,
            read: w.join("kefu.read.db").display().to_string(),
        }
    }

    /// The read-model store in the data directory.
    fn store_only<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        [&["--store", self.store.as_str()], args].concat()
    }

    /// Only the search index in the data directory.
    fn store_and_read<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        [
            &[
                "--store",
                self.store.as_str(),
                "--read-store",
                self.read.as_str(),
            ],
            args,
        ]
        .concat()
    }
}

/// What every case below checks, for a data directory `data` that cannot take writes for
/// `cause`: the event store, the read models and the search index each name their path.
fn every_opener_names(d: &Path, data: &Path, cause: &str) {
    let cmd = || common::command(d);
    refused(cmd(), &["migrate"], &data.join("kefu.db"), cause);
    refused(
        cmd(),
        &["log", "append", "conversation-1", "A", "{}"],
        &data.join("kefu.db"),
        cause,
    );
    refused(cmd(), &serve(), &data.join("kefu.db"), cause);
    let elsewhere = Elsewhere::new(d);
    refused(
        cmd(),
        &elsewhere.store_only(&serve()),
        &data.join("kefu.read.db"),
        cause,
    );
    refused(
        cmd(),
        &elsewhere.store_and_read(&serve()),
        &data.join("search"),
        cause,
    );
    refused(
        cmd(),
        &elsewhere.store_only(&["replay", "search"]),
        &data.join("search"),
        cause,
    );
}

#[test]
fn a_read_only_data_directory_is_named() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _mount = Mount::tmpfs(&data, "ro,size=1m");
    every_opener_names(dir.path(), &data, "read-only file system");
}

#[test]
fn a_full_data_directory_is_named() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _mount = Mount::tmpfs(&data, "size=64k");
    let full = fill(&data.join("filler"));
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    every_opener_names(dir.path(), &data, "no space left on device");
}

#[test]
fn a_data_directory_that_cannot_be_created_is_named() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("ro");
    let _mount = Mount::tmpfs(&mount, "ro,size=1m");
    let data = mount.join("kefu").join("data");
    let mut migrate = common::command(dir.path());
    migrate.env("KEFU_DATA_DIR", &data);
    let mut c = migrate;
    c.arg("migrate");
    let err = common::refusal(&finished(c));
    for says in [
        format!("the directory {} does not exist", data.display()),
        "cannot be created".to_owned(),
        format!("{} is on a read-only file system", mount.display()),
    ] {
        assert!(err.contains(&says), "should say {says:?}: {err}");
    }
    // The default, `./data`, in a working directory that cannot take it.
    let mut c = common::command(dir.path());
    c.current_dir(&mount)
        .env("KEFU_DATA_DIR", "data")
        .arg("migrate");
    let err = common::refusal(&finished(c));
    let says = format!(
        "the directory data does not exist and cannot be created: {} is on a read-only file system",
        mount.display()
    );
    assert!(err.contains(&says), "should say {says:?}: {err}");
}

#[test]
fn a_data_directory_the_user_may_not_write_is_named() {
    if !root() {
        return;
    }
    // Root may write anywhere; the server runs as `nobody` here, as a service account would.
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let usable = Command::new("setpriv")
        .args(nobody)
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("skipped: setpriv cannot run a command as nobody here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir(&data).unwrap();
    // Others may enter both, and write neither.
    use std::os::unix::fs::PermissionsExt;
    for p in [d, &data] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cmd = || common::command_as(&nobody, d);
    refused(
        cmd(),
        &["migrate"],
        &data.join("kefu.db"),
        "permission denied",
    );
    refused(cmd(), &serve(), &data.join("kefu.db"), "permission denied");
}
