//! Why a store cannot open or create its files, in plain words.
//!
//! SQLite says "unable to open database file" or "database or disk is full" and tantivy a bare
//! I/O error, whatever the reason; an operator needs the path and the reason (a read-only
//! mount, a full disk, a directory another user owns). Every opener of files under the data
//! directory (the embedded event store, the read-model store, the search index) asks
//! [`diagnose`] after a failure, so all of them say it alike. The diagnosis probes the
//! directory (creates, writes, syncs and removes a small file) because the opener's own error
//! has usually lost the operating system's answer by the time it comes back.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What the opener wanted at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A file (SQLite keeps its journal files beside it, so its directory must be writable).
    File,
    /// A directory the opener writes files into.
    Dir,
}

/// Why a directory or file cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    ReadOnly,
    NoSpace,
    PermissionDenied,
    NotADirectory,
    /// Any other refusal, in the operating system's words.
    Other(String),
}

impl Cause {
    pub fn of(e: &io::Error) -> Cause {
        match e.kind() {
            io::ErrorKind::ReadOnlyFilesystem => Cause::ReadOnly,
            io::ErrorKind::StorageFull => Cause::NoSpace,
            io::ErrorKind::PermissionDenied => Cause::PermissionDenied,
            io::ErrorKind::NotADirectory => Cause::NotADirectory,
            _ => Cause::Other(e.to_string()),
        }
    }

    fn explain(&self, at: &Path) -> String {
        let at = at.display();
        match self {
            Cause::ReadOnly => format!("{at} is on a read-only file system (EROFS)"),
            Cause::NoSpace => format!("no space left on device holding {at} (ENOSPC)"),
            Cause::PermissionDenied => {
                format!("permission denied (EACCES): the user kefu runs as may not write in {at}")
            }
            Cause::NotADirectory => format!("{at} is not a directory"),
            Cause::Other(words) => format!("cannot write in {at}: {words}"),
        }
    }
}

/// A store's file or directory that cannot be opened or created, and why. Boxed: it travels
/// inside every store error, which it would otherwise make several times larger.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StorageProblem(Box<Problem>);

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot open or create {}: {}{}", path.display(), self.reason(), detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct Problem {
    /// What the opener wanted.
    pub path: PathBuf,
    /// The directory that should hold it and does not exist, when that is the trouble.
    pub missing: Option<PathBuf>,
    /// Where the cause was found: the directory probed, or the file itself.
    pub at: PathBuf,
    pub cause: Cause,
    /// The opener's own error, for the record.
    pub detail: Option<String>,
}

impl std::ops::Deref for StorageProblem {
    type Target = Problem;

    fn deref(&self) -> &Problem {
        &self.0
    }
}

impl Problem {
    fn reason(&self) -> String {
        let why = self.cause.explain(&self.at);
        match &self.missing {
            Some(dir) => format!(
                "the directory {} does not exist and cannot be created: {why}",
                dir.display()
            ),
            None => why,
        }
    }
}

/// Why opening or creating `path` failed with `error`, when the cause is the storage: the
/// directory is read-only, full, not ours, or missing where it cannot be created. None when
/// the directory takes writes (the trouble is elsewhere: keep the opener's own error).
pub fn diagnose(
    path: &Path,
    target: Target,
    error: &dyn std::fmt::Display,
) -> Option<StorageProblem> {
    let dir = match target {
        Target::Dir => path.to_owned(),
        Target::File => match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        },
    };
    let problem = |missing: Option<PathBuf>, at: PathBuf, cause: Cause| {
        StorageProblem(Box::new(Problem {
            path: path.to_owned(),
            missing,
            at,
            cause,
            detail: Some(error.to_string()),
        }))
    };
    if !dir.exists() {
        // A relative path ends in "": the working directory, named in full for the message.
        let ancestor = dir
            .ancestors()
            .skip(1)
            .map(|a| match a.as_os_str().is_empty() {
                true => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
                false => a.to_owned(),
            })
            .find(|a| a.exists())?;
        let cause = probe(&ancestor).err()?;
        return Some(problem(Some(dir), ancestor, cause));
    }
    if let Err(cause) = probe(&dir) {
        return Some(problem(None, dir, cause));
    }
    if target == Target::File && path.is_file() {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path);
        if let Err(e) = opened {
            return Some(problem(None, path.to_owned(), Cause::of(&e)));
        }
    }
    None
}

/// `error` from opening `path`, replaced by the storage problem behind it when there is one:
/// how every opener reports a failure.
pub fn explain<E>(path: &Path, target: Target, error: E) -> E
where
    E: std::fmt::Display + From<StorageProblem>,
{
    match diagnose(path, target, &error) {
        Some(problem) => problem.into(),
        None => error,
    }
}

/// Creates `dir` if it is missing and proves it takes writes; the error names the path and
/// the cause. For an opener that would otherwise find out later, in the background.
pub fn ensure_writable(dir: &Path) -> Result<(), StorageProblem> {
    let created = std::fs::create_dir_all(dir);
    match diagnose(dir, Target::Dir, &"") {
        Some(mut problem) => {
            problem.0.detail = None;
            Err(problem)
        }
        None => created.map_err(|e| {
            StorageProblem(Box::new(Problem {
                path: dir.to_owned(),
                missing: None,
                at: dir.to_owned(),
                cause: Cause::of(&e),
                detail: None,
            }))
        }),
    }
}

/// Whether files can be created and written in `dir`: a small file created, written, synced
/// (a full disk may only say so then) and removed.
fn probe(dir: &Path) -> Result<(), Cause> {
    if !dir.is_dir() {
        return Err(Cause::NotADirectory);
    }
    let file = dir.join(format!(".kefu-probe-{}", uuid::Uuid::now_v7().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| {
            // A page, so a full disk cannot take it in space left over in a block.
            f.write_all(&[0u8; 4096])?;
            f.sync_all()
        });
    let _ = std::fs::remove_file(&file);
    written.map_err(|e| Cause::of(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_is_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kefu.db");
        assert!(diagnose(&file, Target::File, &"x").is_none());
        assert!(diagnose(&dir.path().join("a/b"), Target::Dir, &"x").is_none());
        ensure_writable(&dir.path().join("search")).unwrap();
        assert!(dir.path().join("search").is_dir());
        assert_eq!(
            std::fs::read_dir(dir.path().join("search"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_file_where_a_directory_should_be_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("data");
        std::fs::write(&blocker, "").unwrap();
        let problem = diagnose(&blocker.join("kefu.db"), Target::File, &"unable to open").unwrap();
        assert_eq!(problem.cause, Cause::NotADirectory);
        let said = problem.to_string();
        assert!(
            said.contains("is not a directory") && said.contains("unable to open"),
            "{said}"
        );
        let problem = ensure_writable(&blocker.join("search")).unwrap_err();
        assert_eq!(problem.cause, Cause::NotADirectory);
        assert_eq!(problem.missing.as_deref(), Some(&*blocker.join("search")));
        assert!(
            problem
                .to_string()
                .contains("does not exist and cannot be created")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn operating_system_errors_map_to_causes() {
        let of = |code| Cause::of(&io::Error::from_raw_os_error(code));
        // Linux's numbers: EACCES, ENOTDIR, ENOSPC, EROFS.
        assert_eq!(of(13), Cause::PermissionDenied);
        assert_eq!(of(20), Cause::NotADirectory);
        assert_eq!(of(28), Cause::NoSpace);
        assert_eq!(of(30), Cause::ReadOnly);
    }
}
