//! The archive: old events moved out of the hot store into compressed files, still part of the log.
//!
//! Closed conversations pile up; the archiver (`workers/src/archiver.rs`) moves their events into
//! files under `--archive-dir` (`<data dir>/archive` by default). Archived events are still the
//! log: `read_stream`, `read_all` (hence subscriptions, workers and rebuilds) and
//! `read_correlation` of both SQL backends read the hot store first and the archive after, and
//! merge by position (version for a stream), dropping duplicates. A rebuild from position 0 sees
//! archived and hot events in global order, so a rebuild still equals live processing
//! (`workers/tests/archiver.rs`). KurrentDB keeps its own history and has no archive.
//!
//! # Format
//!
//! An archive is a directory. Each batch is one data file, `<name>.jsonl.gz`, the name being its
//! first position and a prefix of its content's hash, so even a repeated batch writes the same
//! file: gzip'd JSON lines, one full [`RecordedEvent`] envelope a line, in position order. Its
//! manifest entry, `manifest/<name>.json`, names the file and what it holds (streams and version
//! ranges, position range, event count, correlation ids: the archive's index of correlations) and
//! the SHA-256 of the compressed file and of its content. The manifest is the set of entries: each
//! is written whole (to a temporary file, fsynced, renamed, directory fsynced), so a crash never
//! leaves half an entry, and two writers never interleave lines of one file. gzip comes from
//! `libflate` (pure Rust, already in the tree through jieba-rs) and SHA-256 from `sha2` (already
//! used by the API): the archive downloaded no new crate.
//!
//! # The move
//!
//! A batch moves in this order, each step durable before the next:
//!
//! 1. the data file (written aside, fsynced, renamed into place);
//! 2. the manifest entry as `manifest/<name>.pending.json`;
//! 3. the data file read back and checked against the entry;
//! 4. the events deleted from the hot store in one transaction, all or none (a partial count is
//!    refused), and never a stream's last event;
//! 5. the entry renamed to `manifest/<name>.json`.
//!
//! Readers read the hot store first and the archive after, so an event deleted between the two
//! reads was already in the manifest when the archive was read: a crash or a race can show an event
//! twice (deduplicated), never not at all. [`recover`] (run under the archiver's lock before every
//! batch, and by `kefu archive recover`) settles what a crash left: a pending entry whose events
//! are all still hot is completed if its file is sound (or, with a damaged file, dropped with it:
//! the hot store still has everything); one whose events are gone is promoted (its file must be
//! sound, or it is an error naming it); temporary files and data files no entry names are removed.
//! Each step is proven by fault injection in process ([`CrashPoint`],
//! `eventlog/tests/archive.rs::a_crash_at_any_step_loses_nothing`).
//!
//! **Versions continue.** A stream's last event never moves: the delete leaves it (checked in the
//! statement), so the append path and `stream_version` read the stream's version exactly as before,
//! and not an append statement was touched. An archived conversation reopened later gets the next
//! version, and a stale expected version still conflicts. The price is one hot row per archived
//! stream. Retries are judged against the hot store only: a client resending, after 90 days, a
//! batch whose ids are archived gets a conflict with an exact expected version, and with `Any` it
//! would be appended again. Commands are idempotent against the folded stream, which includes
//! archived events, so workers are unaffected.
//!
//! **The settled prefix.** Only events at or below the settled head move ([`archive_streams`]
//! checks each stream against `head()`), and the head only grows, so everything the archive adds to
//! a `read_all` page lies in the settled prefix: nothing can commit beneath it later.
//!
//! # Nothing silently missing
//!
//! Every file is checked when it is first read (size, both checksums, event count, positions,
//! streams); a missing or damaged file is [`LogError::Archive`] naming it, never a silent hole in
//! the history. Every process reading a store needs the same archive directory (with several hosts
//! on one PostgreSQL, shared storage), and the hot store checks that it has it. Step 4 registers
//! the batch in the hot store's registry, `kefu_archive_batches` ([`RegisteredBatch`]: name,
//! position range, event count, SHA-256 of the file; PostgreSQL migration 2, `postgres_v2.sql`;
//! SQLite schema version 2), in the same transaction as the delete, so the registry lists exactly
//! what left the hot store. A reader whose archive lacks a registered batch (no manifest entry by
//! that name, or one with another checksum) gets [`LogError::Archive`] naming it
//! (`check_registered`), never a shorter history: `read_all` when the page's range overlaps the
//! batch (a live subscriber above it is unaffected), `read_stream` when the stream's early versions
//! are missing, and `read_correlation` whenever any registered batch is missing. The last is
//! deliberately coarse: the manifest is the archive's correlation index, so a directory lacking a
//! batch cannot say which correlations it held; storing every batch's correlation ids in the hot
//! store would make the answer precise on a half-synced host, at one row per correlation per batch,
//! for a host that is misconfigured anyway.
//!
//! Readers keep the registry in memory and reload only rows above the highest sequence number they
//! hold. PostgreSQL's `read_all` and `read_correlation` read that number in the same statement (and
//! snapshot) as the events, SQLite on the same connection right after, so the check costs no extra
//! round trip unless a batch was registered since. Registrations on PostgreSQL take an `EXCLUSIVE`
//! lock on the table (readers are not held), so sequence numbers commit in order. Batches archived
//! before the registry existed are registered by [`recover`]: a final entry whose events are all
//! gone from the hot store. `kefu archive verify` checks a host's directory against the registry.
//!
//! # Two archivers
//!
//! A batch moves under the store's archiver lock: on PostgreSQL a session advisory lock on a
//! connection of its own (closed, not pooled, when the guard drops, so a holder that dies frees
//! it), for SQLite a file lock on `<archive>/.lock`. What moves is read under the lock, after the
//! manifest, so a second archiver finds the work done; one that finds the lock taken leaves the
//! sweep to the holder.
//!
//! # Reading cost
//!
//! Decoded files are cached (200,000 events, the least recently used out first); the manifest is
//! listed again only when its directory changes (and while it changed in the last two seconds,
//! since file times tick coarsely). Reads whose range lies above the archive's last position (live
//! subscribers) cost one `stat`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{EventLog, LogError, Position, RecordedEvent, StreamId};

const MANIFEST: &str = "manifest";
const DATA_SUFFIX: &str = ".jsonl.gz";
const PENDING_SUFFIX: &str = ".pending.json";
const ENTRY_SUFFIX: &str = ".json";
const FORMAT: u32 = 1;

/// How many decoded events the read cache keeps (whole files, least recently used first out).
/// A rebuild reads the archive in position order, and batches are cut in position order, so
/// only a few files are in use at once.
const CACHE_EVENTS: usize = 200_000;

/// The versions of one stream a batch holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRange {
    pub stream: StreamId,
    pub first_version: u64,
    pub last_version: u64,
}

impl StreamRange {
    /// How many events the range holds.
    pub fn count(&self) -> u64 {
        self.last_version - self.first_version + 1
    }
}

/// One manifest entry: a data file and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    pub format: u32,
    /// The data file's name, in the archive directory.
    pub file: String,
    pub created_at: DateTime<Utc>,
    pub events: u64,
    pub first_position: Position,
    pub last_position: Position,
    pub streams: Vec<StreamRange>,
    /// Every correlation id in the file, sorted: the audit trail finds archived events here.
    pub correlations: Vec<Uuid>,
    /// Size and SHA-256 (lower-case hex) of the compressed file as written.
    pub bytes: u64,
    pub sha256: String,
    /// SHA-256 of the uncompressed JSON lines.
    pub content_sha256: String,
}

impl ArchiveEntry {
    /// The entry's name (the data file's name without its suffix).
    pub fn name(&self) -> &str {
        self.file.strip_suffix(DATA_SUFFIX).unwrap_or(&self.file)
    }
}

/// One batch as the hot store's registry (`kefu_archive_batches`) lists it. The row is
/// written in the transaction that deletes the batch's events, so the hot store always knows
/// exactly what left it, and a reader whose archive directory lacks a batch can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredBatch {
    /// The manifest entry's name ([`ArchiveEntry::name`]).
    pub name: String,
    pub first_position: Position,
    pub last_position: Position,
    pub events: u64,
    /// SHA-256 of the compressed data file ([`ArchiveEntry::sha256`]).
    pub sha256: String,
}

/// The registry as a process last loaded it. Rows are only ever added, each with a sequence
/// number above every committed one (the backends serialize registrations), so a reader
/// catches up by loading the rows above `seq`.
#[derive(Debug, Default)]
pub struct Registry {
    pub seq: i64,
    pub batches: Vec<RegisteredBatch>,
}

/// A process's copy of the registry, refreshed only when the hot store's highest sequence
/// number moves past it.
#[derive(Default)]
pub(crate) struct RegistryCache(Mutex<Arc<Registry>>);

impl RegistryCache {
    pub(crate) fn get(&self) -> Arc<Registry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds rows loaded above some earlier `seq` (in sequence order), skipping those another
    /// refresh added meanwhile.
    pub(crate) fn extend(&self, rows: Vec<(i64, RegisteredBatch)>) -> Arc<Registry> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fresh: Vec<_> = rows.into_iter().filter(|(s, _)| *s > cached.seq).collect();
        if let Some(&(seq, _)) = fresh.last() {
            let mut batches = cached.batches.clone();
            batches.extend(fresh.into_iter().map(|(_, b)| b));
            *cached = Arc::new(Registry { seq, batches });
        }
        cached.clone()
    }
}

/// Fails, naming the first, if the archive lacks any of `batches` (no manifest entry by that
/// name, or one whose file checksum differs from the registry's): the hot store says these
/// events left it, so a reader without them would return a shorter history.
pub(crate) fn check_registered<'a>(
    archive: Option<&Archive>,
    batches: impl Iterator<Item = &'a RegisteredBatch>,
) -> Result<(), LogError> {
    let manifest = archive.map(Archive::manifest).transpose()?;
    let mut lacking = batches.filter_map(|b| {
        let held = manifest
            .as_ref()
            .and_then(|m| m.by_name.get(&b.name).map(|&i| &m.entries[i]));
        match held {
            Some(entry) if entry.sha256 == b.sha256 => None,
            Some(entry) => Some((
                b,
                format!(
                    "this archive's entry has SHA-256 {}, the hot store's registry {}",
                    entry.sha256, b.sha256
                ),
            )),
            None => Some((b, "this archive has no manifest entry for it".to_owned())),
        }
    });
    let Some((first, why)) = lacking.next() else {
        return Ok(());
    };
    let more = lacking.count();
    let dir = archive.map_or_else(
        || PathBuf::from("(no archive configured)"),
        |a| a.dir.clone(),
    );
    Err(LogError::Archive {
        path: dir
            .join(format!("{}{DATA_SUFFIX}", first.name))
            .display()
            .to_string(),
        reason: format!(
            "the hot store registers batch {} ({} events, positions {}..={}) as archived, but {why}{}; \
             every process reading this store needs the same archive directory",
            first.name,
            first.events,
            first.first_position,
            first.last_position,
            if more > 0 {
                format!(" (and {more} more batches are missing or differ)")
            } else {
                String::new()
            }
        ),
    })
}

/// Where a batch's move stops in a fault-injection drill: the process "crashes" right after
/// the named step, as if killed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterDataFile,
    AfterPendingEntry,
    AfterHotDelete,
}

/// What the hot store must do for the archive. Implemented by the SQL backends (and
/// [`crate::AnyLog`]); KurrentDB keeps its own history and has no archive.
pub trait ArchiveStore: EventLog {
    /// The archive this store reads through, if it has one.
    fn archive(&self) -> Option<&Arc<Archive>>;

    /// How many of the events in `ranges` the hot store still holds.
    fn count_hot(
        &self,
        ranges: &[StreamRange],
    ) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// Deletes the events of `entry` from the hot store and registers the batch in the
    /// hot store's registry (`kefu_archive_batches`), in one transaction, but only if all its
    /// events are there and none is its stream's last event; if none is there (deleted
    /// before), does nothing and returns 0. Anything else is refused, unchanged.
    fn remove_archived(
        &self,
        entry: &ArchiveEntry,
    ) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// Registers a batch whose events left the hot store before the registry existed (an
    /// archive made by an earlier version); a batch registered already is left as it is.
    fn register(&self, entry: &ArchiveEntry) -> impl Future<Output = Result<(), LogError>> + Send;

    /// The hot store's registry of archived batches, as it is now.
    fn registered(&self) -> impl Future<Output = Result<Arc<Registry>, LogError>> + Send;

    /// The archiver's exclusive lock, or None while another archiver holds it.
    fn try_lock_archiver(
        &self,
    ) -> impl Future<Output = Result<Option<ArchiverLock>, LogError>> + Send;

    /// Gives the lock back at once.
    fn release_archiver(&self, lock: ArchiverLock) -> impl Future<Output = ()> + Send {
        drop(lock);
        std::future::ready(())
    }
}

/// Held while one archiver moves a batch; given back with [`ArchiveStore::release_archiver`]
/// (dropping it also frees it, if less promptly on PostgreSQL).
pub struct ArchiverLock {
    held: Box<dyn std::any::Any + Send + Sync>,
}

impl ArchiverLock {
    pub fn new(held: impl std::any::Any + Send + Sync) -> Self {
        ArchiverLock {
            held: Box::new(held),
        }
    }

    /// What the backend put in, if it is a `T`.
    pub fn into_inner<T: 'static>(self) -> Option<T> {
        self.held.downcast::<T>().ok().map(|b| *b)
    }
}

/// The archiver's lock for a store without server-side locks: an exclusive file lock on
/// `<archive>/.lock` (flock on Unix; it conflicts across processes and across opens within
/// one process).
pub fn file_lock(archive: &Archive) -> Result<Option<ArchiverLock>, LogError> {
    fs::create_dir_all(&archive.dir).map_err(|e| io_err(&archive.dir, e))?;
    let path = archive.dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(ArchiverLock::new(file))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
    }
}

/// The archive directory and what is known of it.
pub struct Archive {
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The manifest directory's modification time when it was last listed.
    stamp: Option<SystemTime>,
    manifest: Arc<Manifest>,
    cache: Vec<(String, Arc<Vec<RecordedEvent>>, u64)>,
    tick: u64,
}

/// The manifest as loaded: entries (pending and final) and indexes over them.
#[derive(Default)]
struct Manifest {
    entries: Vec<Arc<ArchiveEntry>>,
    pending: Vec<bool>,
    by_stream: HashMap<StreamId, Vec<usize>>,
    by_correlation: HashMap<Uuid, Vec<usize>>,
    by_name: HashMap<String, usize>,
    last_position: Option<Position>,
}

impl Archive {
    /// An archive at `dir`. Nothing is read or created until it is used; a directory that
    /// does not exist is an empty archive.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Archive {
            dir: dir.into(),
            state: Mutex::new(State::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The manifest as it is on disk now (listed again only when the directory changed).
    fn manifest(&self) -> Result<Arc<Manifest>, LogError> {
        let dir = self.dir.join(MANIFEST);
        let stamp = match fs::metadata(&dir) {
            Ok(m) => Some(m.modified().map_err(|e| io_err(&dir, e))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&dir, e)),
        };
        // A directory changed within the last seconds may change again without its time
        // moving (file times tick with the kernel's clock, milliseconds apart): list it
        // again until its time is safely in the past.
        let settled = stamp.is_none_or(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age > std::time::Duration::from_secs(2))
        });
        {
            let state = self.lock();
            if settled
                && state.stamp == stamp
                && (stamp.is_some() || state.manifest.entries.is_empty())
            {
                return Ok(state.manifest.clone());
            }
        }
        // The stamp is taken before listing: an entry added meanwhile changes the stamp again,
        // and the next call lists again.
        let manifest = Arc::new(match stamp {
            Some(_) => load_manifest(&dir)?,
            None => Manifest::default(),
        });
        let mut state = self.lock();
        state.stamp = stamp;
        state.manifest = manifest.clone();
        Ok(manifest)
    }

    /// Every manifest entry in name order, with whether it is still pending.
    pub fn entries(&self) -> Result<Vec<(Arc<ArchiveEntry>, bool)>, LogError> {
        let m = self.manifest()?;
        Ok(m.entries
            .iter()
            .cloned()
            .zip(m.pending.iter().copied())
            .collect())
    }

    /// The highest version of `stream` in the archive.
    pub fn last_version(&self, stream: &StreamId) -> Result<Option<u64>, LogError> {
        let m = self.manifest()?;
        Ok(m.by_stream.get(stream).and_then(|ix| {
            ix.iter()
                .flat_map(|&i| m.entries[i].streams.iter())
                .filter(|r| &r.stream == stream)
                .map(|r| r.last_version)
                .max()
        }))
    }

    /// Reads and checks one entry's file: its events, in position order.
    pub async fn load(&self, entry: &ArchiveEntry) -> Result<Arc<Vec<RecordedEvent>>, LogError> {
        {
            let mut state = self.lock();
            state.tick += 1;
            let tick = state.tick;
            if let Some(hit) = state.cache.iter_mut().find(|(n, _, _)| *n == entry.file) {
                hit.2 = tick;
                return Ok(hit.1.clone());
            }
        }
        let path = self.dir.join(&entry.file);
        let owned = entry.clone();
        let events = tokio::task::spawn_blocking(move || read_data_file(&path, &owned))
            .await
            .map_err(|e| LogError::Backend {
                backend: "archive",
                message: format!("blocking task failed: {e}"),
            })??;
        let events = Arc::new(events);
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        state.cache.push((entry.file.clone(), events.clone(), tick));
        while state.cache.iter().map(|(_, e, _)| e.len()).sum::<usize>() > CACHE_EVENTS
            && state.cache.len() > 1
        {
            let oldest = (0..state.cache.len())
                .min_by_key(|&i| state.cache[i].2)
                .expect("not empty");
            state.cache.swap_remove(oldest);
        }
        Ok(events)
    }

    /// Archived events of `stream` from version `from`, up to `max`, in version order.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let m = self.manifest()?;
        let mut out = Vec::new();
        for &i in m.by_stream.get(stream).into_iter().flatten() {
            let entry = &m.entries[i];
            let holds = entry
                .streams
                .iter()
                .any(|r| &r.stream == stream && r.last_version >= from);
            if !holds {
                continue;
            }
            let events = self.load(entry).await?;
            out.extend(
                events
                    .iter()
                    .filter(|e| &e.stream_id == stream && e.version >= from)
                    .cloned(),
            );
        }
        out.sort_by_key(|e| e.version);
        out.dedup_by_key(|e| e.version);
        out.truncate(max);
        Ok(out)
    }

    /// Archived events at positions `>= from`, up to `max`, in position order.
    pub async fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let m = self.manifest()?;
        if m.last_position.is_none_or(|last| last < from) {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..m.entries.len())
            .filter(|&i| m.entries[i].last_position >= from)
            .collect();
        order.sort_by_key(|&i| m.entries[i].first_position);
        let mut out: Vec<RecordedEvent> = Vec::new();
        for i in order {
            let entry = &m.entries[i];
            // Entries come by first position: once `max` events are in hand below this
            // entry's first, nothing in it or after it can make the page.
            if out.len() >= max
                && out
                    .last()
                    .is_some_and(|e| e.position < entry.first_position)
            {
                break;
            }
            let events = self.load(entry).await?;
            let start = events.partition_point(|e| e.position < from);
            out.extend(events[start..].iter().take(max).cloned());
            out.sort_by_key(|e| e.position);
            out.dedup_by_key(|e| e.position);
            out.truncate(max);
        }
        Ok(out)
    }

    /// Archived events carrying `correlation_id`, in position order.
    pub async fn read_correlation(
        &self,
        correlation_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let m = self.manifest()?;
        let mut out = Vec::new();
        for &i in m.by_correlation.get(&correlation_id).into_iter().flatten() {
            let events = self.load(&m.entries[i]).await?;
            out.extend(
                events
                    .iter()
                    .filter(|e| e.metadata.correlation_id == correlation_id)
                    .cloned(),
            );
        }
        out.sort_by_key(|e| e.position);
        out.dedup_by_key(|e| e.position);
        Ok(out)
    }

    /// Checks every entry's file (checksums, count, positions, streams); the entries checked.
    pub async fn verify(&self) -> Result<Vec<Arc<ArchiveEntry>>, LogError> {
        let mut out = Vec::new();
        for (entry, _) in self.entries()? {
            let path = self.dir.join(&entry.file);
            let owned = (*entry).clone();
            tokio::task::spawn_blocking(move || read_data_file(&path, &owned))
                .await
                .map_err(|e| LogError::Backend {
                    backend: "archive",
                    message: format!("blocking task failed: {e}"),
                })??;
            out.push(entry);
        }
        Ok(out)
    }

    /// Writes a batch's data file and its pending manifest entry (steps 1 and 2). `events`
    /// must be in position order.
    fn write_pending(
        &self,
        events: &[RecordedEvent],
        crash: Option<CrashPoint>,
    ) -> Result<ArchiveEntry, LogError> {
        let mut content = Vec::new();
        for e in events {
            serde_json::to_writer(&mut content, e).map_err(|err| {
                LogError::Corrupt(format!("event {} would not encode: {err}", e.id))
            })?;
            content.push(b'\n');
        }
        let content_sha256 = hex(&Sha256::digest(&content));
        let compressed = gzip(&content).map_err(|e| io_err(&self.dir, e))?;
        let first = events.first().expect("a batch is not empty").position;
        let last = events.last().expect("a batch is not empty").position;
        // Named by what it holds: an archiver that writes the same batch again writes the
        // same file.
        let name = format!("{:020}-{}", first.0, &content_sha256[..16]);
        let file = format!("{name}{DATA_SUFFIX}");
        let mut ranges: BTreeMap<&StreamId, (u64, u64)> = BTreeMap::new();
        for e in events {
            let r = ranges.entry(&e.stream_id).or_insert((e.version, e.version));
            r.0 = r.0.min(e.version);
            r.1 = r.1.max(e.version);
        }
        let mut correlations: Vec<Uuid> =
            events.iter().map(|e| e.metadata.correlation_id).collect();
        correlations.sort();
        correlations.dedup();
        let entry = ArchiveEntry {
            format: FORMAT,
            file: file.clone(),
            created_at: Utc::now(),
            events: events.len() as u64,
            first_position: first,
            last_position: last,
            streams: ranges
                .into_iter()
                .map(|(s, (a, b))| StreamRange {
                    stream: s.clone(),
                    first_version: a,
                    last_version: b,
                })
                .collect(),
            correlations,
            bytes: compressed.len() as u64,
            sha256: hex(&Sha256::digest(&compressed)),
            content_sha256,
        };
        let manifest = self.dir.join(MANIFEST);
        fs::create_dir_all(&manifest).map_err(|e| io_err(&manifest, e))?;
        write_durably(&self.dir, &file, &compressed)?;
        if crash == Some(CrashPoint::AfterDataFile) {
            return Err(injected(CrashPoint::AfterDataFile));
        }
        let json = serde_json::to_vec_pretty(&entry)
            .map_err(|e| LogError::Corrupt(format!("manifest entry would not encode: {e}")))?;
        write_durably(&manifest, &format!("{name}{PENDING_SUFFIX}"), &json)?;
        Ok(entry)
    }

    /// Step 5: the pending entry becomes final.
    fn promote(&self, entry: &ArchiveEntry) -> Result<(), LogError> {
        let manifest = self.dir.join(MANIFEST);
        let from = manifest.join(format!("{}{PENDING_SUFFIX}", entry.name()));
        let to = manifest.join(format!("{}{ENTRY_SUFFIX}", entry.name()));
        fs::rename(&from, &to).map_err(|e| io_err(&from, e))?;
        sync_dir(&manifest)
    }

    /// Drops a pending entry and its file (their events are all still in the hot store).
    fn discard(&self, entry: &ArchiveEntry) -> Result<(), LogError> {
        let manifest = self.dir.join(MANIFEST);
        let pending = manifest.join(format!("{}{PENDING_SUFFIX}", entry.name()));
        remove_if_there(&pending)?;
        sync_dir(&manifest)?;
        remove_if_there(&self.dir.join(&entry.file))?;
        sync_dir(&self.dir)
    }

    /// Removes temporary files and data files no entry names (a crash before step 2).
    fn sweep_orphans(&self) -> Result<usize, LogError> {
        let m = self.manifest()?;
        let named: std::collections::HashSet<&str> =
            m.entries.iter().map(|e| e.file.as_str()).collect();
        let mut removed = 0;
        let listing = match fs::read_dir(&self.dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&self.dir, e)),
        };
        for item in listing {
            let item = item.map_err(|e| io_err(&self.dir, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let orphan = name.ends_with(".tmp")
                || (name.ends_with(DATA_SUFFIX) && !named.contains(name.as_str()));
            if orphan {
                tracing::info!(file = %name, "removing an archive file no manifest entry names");
                remove_if_there(&item.path())?;
                removed += 1;
            }
        }
        let manifest = self.dir.join(MANIFEST);
        if let Ok(listing) = fs::read_dir(&manifest) {
            for item in listing.flatten() {
                if item.file_name().to_string_lossy().ends_with(".tmp") {
                    remove_if_there(&item.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn load_manifest(dir: &Path) -> Result<Manifest, LogError> {
    let mut names: Vec<(String, bool)> = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let name = item
            .map_err(|e| io_err(dir, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(base) = name.strip_suffix(PENDING_SUFFIX) {
            names.push((base.to_owned(), true));
        } else if let Some(base) = name.strip_suffix(ENTRY_SUFFIX) {
            names.push((base.to_owned(), false));
        }
    }
    names.sort();
    let mut m = Manifest::default();
    for (base, pending) in names {
        let suffix = if pending {
            PENDING_SUFFIX
        } else {
            ENTRY_SUFFIX
        };
        let path = dir.join(format!("{base}{suffix}"));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Promoted or discarded since the listing: the other name is in the listing or
            // will be at the next one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path, e)),
        };
        let entry: ArchiveEntry =
            serde_json::from_slice(&bytes).map_err(|e| LogError::Archive {
                path: path.display().to_string(),
                reason: format!("the manifest entry is not readable: {e}"),
            })?;
        if entry.format != FORMAT || entry.name() != base {
            return Err(LogError::Archive {
                path: path.display().to_string(),
                reason: format!(
                    "the manifest entry is format {} for file {:?}; expected format {FORMAT} for {base}{DATA_SUFFIX}",
                    entry.format, entry.file
                ),
            });
        }
        // The same batch pending and final (listed mid-rename): keep one.
        if m.entries.iter().any(|e| e.file == entry.file) {
            continue;
        }
        let i = m.entries.len();
        for r in &entry.streams {
            m.by_stream.entry(r.stream.clone()).or_default().push(i);
        }
        for c in &entry.correlations {
            m.by_correlation.entry(*c).or_default().push(i);
        }
        m.last_position = m.last_position.max(Some(entry.last_position));
        m.by_name.insert(entry.name().to_owned(), i);
        m.entries.push(Arc::new(entry));
        m.pending.push(pending);
    }
    Ok(m)
}

/// Reads a data file and checks it against its entry.
fn read_data_file(path: &Path, entry: &ArchiveEntry) -> Result<Vec<RecordedEvent>, LogError> {
    let damaged = |reason: String| LogError::Archive {
        path: path.display().to_string(),
        reason,
    };
    let compressed = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(format!(
                "the file is missing, but the manifest lists it with {} events (positions {}..={})",
                entry.events, entry.first_position, entry.last_position
            )));
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    if compressed.len() as u64 != entry.bytes {
        return Err(damaged(format!(
            "{} bytes, but the manifest says {}",
            compressed.len(),
            entry.bytes
        )));
    }
    let sha = hex(&Sha256::digest(&compressed));
    if sha != entry.sha256 {
        return Err(damaged(format!(
            "SHA-256 {sha}, but the manifest says {}",
            entry.sha256
        )));
    }
    let mut content = Vec::new();
    libflate::gzip::Decoder::new(&compressed[..])
        .and_then(|mut d| d.read_to_end(&mut content))
        .map_err(|e| damaged(format!("not gzip: {e}")))?;
    if hex(&Sha256::digest(&content)) != entry.content_sha256 {
        return Err(damaged(
            "the content's SHA-256 differs from the manifest's".into(),
        ));
    }
    let mut events: Vec<RecordedEvent> = Vec::with_capacity(entry.events as usize);
    for (n, line) in content
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let e: RecordedEvent = serde_json::from_slice(line)
            .map_err(|err| damaged(format!("line {}: {err}", n + 1)))?;
        if events.last().is_some_and(|p| p.position >= e.position) {
            return Err(damaged(format!("line {}: positions out of order", n + 1)));
        }
        events.push(e);
    }
    let in_ranges = events.iter().all(|e| {
        entry.streams.iter().any(|r| {
            r.stream == e.stream_id && (r.first_version..=r.last_version).contains(&e.version)
        })
    });
    let expected: u64 = entry.streams.iter().map(StreamRange::count).sum();
    if events.len() as u64 != entry.events || expected != entry.events || !in_ranges {
        return Err(damaged(format!(
            "{} events, not the {} of the manifest's streams",
            events.len(),
            entry.events
        )));
    }
    Ok(events)
}

/// Merges one page of a stream from the hot store with the archive's, and checks the result
/// is gapless from `from`: a stream whose early versions are neither hot nor in this archive
/// (an archive directory that is missing or not shared) is an error, never a shorter history.
/// `registry` is loaded only then, to name the batches this archive lacks.
pub(crate) async fn merge_stream(
    archive: Option<&Archive>,
    stream: &StreamId,
    from: u64,
    max: usize,
    hot: Vec<RecordedEvent>,
    registry: impl Future<Output = Result<Arc<Registry>, LogError>>,
) -> Result<Vec<RecordedEvent>, LogError> {
    // Most reads: the hot page already starts where asked.
    let mut out = match (archive, hot.first()) {
        (_, Some(first)) if first.version == from => return Ok(hot),
        (None, _) => hot,
        (Some(archive), _) => {
            let mut out = archive.read_stream(stream, from, max).await?;
            out.extend(hot);
            out.sort_by_key(|e| e.version);
            out.dedup_by_key(|e| e.version);
            out.truncate(max);
            out
        }
    };
    if let Some(first) = out.first()
        && first.version != from
    {
        check_registered(archive, registry.await?.batches.iter())?;
        return Err(LogError::Archive {
            path: archive.map_or_else(
                || "(no archive configured)".into(),
                |a| a.dir().display().to_string(),
            ),
            reason: format!(
                "versions {from}..{} of {stream} are neither in the hot store nor in this archive",
                first.version
            ),
        });
    }
    out.dedup_by_key(|e| e.version);
    Ok(out)
}

/// Merges a page of `read_all` from the hot store (read first) with the archive's, and checks
/// that the archive holds every registered batch the page's range overlaps. `registry` must
/// be read no earlier than `hot` (a batch deleted after it was read still shows in `hot`).
pub(crate) async fn merge_all(
    archive: Option<&Archive>,
    registry: &Registry,
    from: Position,
    max: usize,
    hot: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, LogError> {
    let out = match archive {
        None => hot,
        Some(archive) => {
            let mut out = archive.read_all(from, max).await?;
            if out.is_empty() {
                hot
            } else {
                out.extend(hot);
                out.sort_by_key(|e| e.position);
                out.dedup_by_key(|e| e.position);
                out.truncate(max);
                out
            }
        }
    };
    // A full page covers positions up to its last; a short one, everything from `from`.
    let upper = (out.len() >= max)
        .then(|| out.last().map(|e| e.position))
        .flatten();
    check_registered(
        archive,
        registry
            .batches
            .iter()
            .filter(|b| b.last_position >= from && upper.is_none_or(|u| b.first_position <= u)),
    )?;
    Ok(out)
}

/// Merges a correlation's hot events (read first) with the archive's. The archive's manifest
/// is the index of archived correlations, so it answers only if it holds every registered
/// batch (`registry` read no earlier than `hot`): a batch it lacks could hold this
/// correlation, and an audit trail must not come back short.
pub(crate) async fn merge_correlation(
    archive: Option<&Archive>,
    registry: &Registry,
    correlation_id: Uuid,
    hot: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, LogError> {
    check_registered(archive, registry.batches.iter())?;
    let Some(archive) = archive else {
        return Ok(hot);
    };
    let mut out = archive.read_correlation(correlation_id).await?;
    if out.is_empty() {
        return Ok(hot);
    }
    out.extend(hot);
    out.sort_by_key(|e| e.position);
    out.dedup_by_key(|e| e.position);
    Ok(out)
}

/// What one call of [`archive_streams`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archived {
    /// False when another archiver held the lock: nothing was done.
    pub locked: bool,
    pub streams: usize,
    pub events: u64,
    pub file: Option<String>,
    /// Interrupted batches finished or dropped by [`recover`] first.
    pub recovered: usize,
}

/// Moves every event of `streams` but each stream's last into one archive batch (skipping
/// events already archived, and streams with nothing to move or whose events are not yet
/// in the settled prefix), under the archiver's lock, after [`recover`]. `crash` stops the
/// move after a step, for fault-injection drills.
pub async fn archive_streams<L: ArchiveStore>(
    log: &L,
    streams: &[StreamId],
    crash: Option<CrashPoint>,
) -> Result<Archived, LogError> {
    let archive = log
        .archive()
        .ok_or_else(|| LogError::Config("this store has no archive directory".into()))?
        .clone();
    let Some(lock) = log.try_lock_archiver().await? else {
        return Ok(Archived::default());
    };
    let done = archive_locked(log, &archive, streams, crash).await;
    log.release_archiver(lock).await;
    done
}

async fn archive_locked<L: ArchiveStore>(
    log: &L,
    archive: &Arc<Archive>,
    streams: &[StreamId],
    crash: Option<CrashPoint>,
) -> Result<Archived, LogError> {
    let mut done = Archived {
        locked: true,
        recovered: recover_locked(log, archive).await?,
        ..Archived::default()
    };
    // Only events in the settled prefix move, so a reader merging the archive never sees a
    // position a still-open transaction could commit below.
    let Some(head) = log.head().await? else {
        return Ok(done);
    };
    let mut batch: Vec<RecordedEvent> = Vec::new();
    for stream in streams {
        let from = archive.last_version(stream)?.map_or(0, |v| v + 1);
        let mut events = read_from(log, stream, from).await?;
        // The stream's last event stays hot: it carries the stream's version for appends.
        events.pop();
        if events.is_empty() || events.iter().any(|e| e.position > head) {
            continue;
        }
        done.streams += 1;
        batch.extend(events);
    }
    if batch.is_empty() {
        return Ok(done);
    }
    batch.sort_by_key(|e| e.position);
    let entry = {
        let (archive, batch) = (archive.clone(), std::mem::take(&mut batch));
        blocking(move || archive.write_pending(&batch, crash)).await?
    };
    if crash == Some(CrashPoint::AfterPendingEntry) {
        return Err(injected(CrashPoint::AfterPendingEntry));
    }
    archive.load(&entry).await?;
    log.remove_archived(&entry).await?;
    if crash == Some(CrashPoint::AfterHotDelete) {
        return Err(injected(CrashPoint::AfterHotDelete));
    }
    archive.promote(&entry)?;
    tracing::info!(file = %entry.file, events = entry.events, streams = entry.streams.len(), "archived");
    done.events = entry.events;
    done.file = Some(entry.file);
    Ok(done)
}

/// Checks that this store's archive holds every batch the hot store registers (by name and
/// checksum), then reads every file back against the manifest; the entries checked.
pub async fn verify_store<L: ArchiveStore>(log: &L) -> Result<Vec<Arc<ArchiveEntry>>, LogError> {
    let registry = log.registered().await?;
    check_registered(log.archive().map(|a| &**a), registry.batches.iter())?;
    match log.archive() {
        Some(archive) => archive.verify().await,
        None => Ok(Vec::new()),
    }
}

/// Finishes what a crashed archiver left (see the module docs), under the archiver's lock;
/// how many pending batches it settled. None when another archiver holds the lock.
pub async fn recover<L: ArchiveStore>(log: &L) -> Result<Option<usize>, LogError> {
    let archive = log
        .archive()
        .ok_or_else(|| LogError::Config("this store has no archive directory".into()))?
        .clone();
    let Some(lock) = log.try_lock_archiver().await? else {
        return Ok(None);
    };
    let done = recover_locked(log, &archive).await.map(Some);
    log.release_archiver(lock).await;
    done
}

async fn recover_locked<L: ArchiveStore>(
    log: &L,
    archive: &Arc<Archive>,
) -> Result<usize, LogError> {
    let mut settled = 0;
    for (entry, pending) in archive.entries()? {
        if !pending {
            continue;
        }
        let hot = log.count_hot(&entry.streams).await?;
        let sound = archive.load(&entry).await;
        match (hot, sound) {
            (h, Ok(_)) if h == entry.events => {
                log.remove_archived(&entry).await?;
                archive.promote(&entry)?;
            }
            (h, Err(e)) if h == entry.events => {
                tracing::warn!(file = %entry.file, error = %e, "dropping an interrupted archive batch whose file is damaged; its events are still in the hot store");
                let (a, en) = (archive.clone(), (*entry).clone());
                blocking(move || a.discard(&en)).await?;
            }
            (0, Ok(_)) => archive.promote(&entry)?,
            (0, Err(e)) => return Err(e),
            (h, _) => {
                return Err(LogError::Archive {
                    path: archive.dir().join(&entry.file).display().to_string(),
                    reason: format!(
                        "an interrupted batch of {} events has {h} of them still in the hot store; expected all or none",
                        entry.events
                    ),
                });
            }
        }
        settled += 1;
    }
    // Batches moved before the hot store had a registry: a final entry whose events are all
    // gone from the hot store left it, so the registry learns of it now.
    let registry = log.registered().await?;
    let known: std::collections::HashSet<&str> =
        registry.batches.iter().map(|b| b.name.as_str()).collect();
    for (entry, pending) in archive.entries()? {
        if pending || known.contains(entry.name()) {
            continue;
        }
        if log.count_hot(&entry.streams).await? == 0 {
            tracing::info!(file = %entry.file, "registering an archive batch moved before the registry existed");
            log.register(&entry).await?;
        }
    }
    let a = archive.clone();
    blocking(move || a.sweep_orphans()).await?;
    Ok(settled)
}

/// Every event of `stream` from version `from` on.
async fn read_from<L: EventLog>(
    log: &L,
    stream: &StreamId,
    from: u64,
) -> Result<Vec<RecordedEvent>, LogError> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let page = log
            .read_stream(stream, from + out.len() as u64, crate::DEFAULT_PAGE)
            .await?;
        let done = page.len() < crate::DEFAULT_PAGE;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

fn injected(point: CrashPoint) -> LogError {
    LogError::Unavailable {
        backend: "archive",
        message: format!("fault injected: crashed {point:?}"),
    }
}

fn gzip(content: &[u8]) -> std::io::Result<Vec<u8>> {
    // A fixed header time: the same batch compresses to the same bytes.
    let header = libflate::gzip::HeaderBuilder::new()
        .modification_time(0)
        .finish();
    let options = libflate::gzip::EncodeOptions::new().header(header);
    let mut encoder = libflate::gzip::Encoder::with_options(Vec::new(), options)?;
    encoder.write_all(content)?;
    encoder.finish().into_result()
}

/// Writes `name` in `dir` so that it is either absent or whole and on disk: a temporary file,
/// fsynced, renamed, and the directory fsynced.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = dir.join(format!(".{name}.{}.tmp", Uuid::now_v7().simple()));
    let target = dir.join(name);
    let mut f = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, &target).map_err(|e| io_err(&target, e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn remove_if_there(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> LogError {
    LogError::Archive {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Backend {
            backend: "archive",
            message: format!("blocking task failed: {e}"),
        })?
}
