//! Running the search index: where its generations live on disk, feeding it from the log
//! (catch-up and live), and blue-green rebuilds.
//!
//! Generations are directories `<root>/g<n>/`; the file `<root>/CURRENT` names the live one
//! and is replaced atomically (write, then rename), so a reader never sees a half-written
//! pointer. A rebuild fills `g<n+1>` from position 0 while the live index keeps serving, then
//! points `CURRENT` at it; the server notices before its next batch and reopens.
//!
//! tantivy's work (tokenising, merging, committing) is blocking CPU and disk work, so it runs
//! on tokio's blocking pool, the index moving in and out of each call.
//!
//! The `SearchIndexing` degradation switch is read from the log the index follows: the live
//! index applies events up to and including the `SwitchFlipped` that turns it off, commits
//! (its checkpoint stays just after the flip), and from there only reads on, looking for the
//! flip that turns it back on, while searches are served from what it has (stale). At that
//! flip it goes back to its checkpoint and applies everything since: nothing is lost. Where
//! the switch stands is a function of the log position, so every server's index stops and
//! resumes at the same events, and a server started while indexing is off stays paused. A
//! rebuild (`kefu replay search`) is an admin's explicit act and indexes everything.
//!
//! Live, the index applies each batch as it comes and commits on a cadence ([`COMMIT_EVERY`], 500
//! ms from the first uncommitted event, or at once at a flip off): a message is searchable at most
//! about half a second after it is read, and chat traffic does not make a segment per event. A
//! writer that fails is reported through its `Liveness`; since tantivy says only "an index writer
//! was killed" when its thread hits a full disk, the directory is then diagnosed as start-up errors
//! are (`kefu_eventlog::storage::explain`, a small synced write), and the cause it names (no space
//! left, read-only, permission) is what is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu_domain::switches::{SWITCHBOARD, Switch, SwitchBoardDecider, SwitchEvent};
use kefu_domain::{Decider, Event};
use kefu_eventlog::storage::{self, Target};
use kefu_eventlog::{EventLog, Position, RecordedEvent, StreamId, Subscription, read_whole_stream};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{SearchError, SearchIndex, SearchReader};
use crate::error::ProjectionError;
use crate::runner::{Liveness, Progress, ReadAhead, supervise};

/// Events applied between commits while catching up: a tantivy commit writes a segment, so
/// committing every page would leave thousands of tiny segments to merge.
const CATCH_UP_COMMIT: usize = 20_000;
const PAGE: usize = 1000;

/// The directory that holds the search index's generations.
#[derive(Debug, Clone)]
pub struct SearchHome {
    root: PathBuf,
}

impl SearchHome {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SearchHome { root: root.into() }
    }

    pub fn dir(&self, generation: u64) -> PathBuf {
        self.root.join(format!("g{generation}"))
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> SearchError {
        let path = path.to_owned();
        move |source| SearchError::Io {
            path: path.clone(),
            source,
        }
    }

    /// The live generation, if one was ever built.
    pub fn live(&self) -> Result<Option<u64>, SearchError> {
        let current = self.root.join("CURRENT");
        match std::fs::read_to_string(&current) {
            Ok(s) => s
                .trim()
                .strip_prefix('g')
                .and_then(|n| n.parse().ok())
                .map(Some)
                .ok_or_else(|| {
                    SearchError::Corrupt(format!(
                        "{} says {s:?}, not a generation such as g3",
                        current.display()
                    ))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&current)(e)),
        }
    }

    fn generations(&self) -> Result<Vec<u64>, SearchError> {
        let mut out = Vec::new();
        match std::fs::read_dir(&self.root) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(self.io(&self.root))?;
                    if let Some(n) = entry
                        .file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix('g'))
                        .and_then(|n| n.parse::<u64>().ok())
                    {
                        out.push(n);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(&self.root)(e)),
        }
        Ok(out)
    }

    /// Opens the live generation for feeding, creating generation 1 on first start. A live
    /// generation this version cannot read (an older format or analyzer, after an upgrade)
    /// is left on disk and a new one, empty, takes its place, to be filled from position 0:
    /// the index is a read model, and the log has everything it held.
    pub fn open_live(&self) -> Result<(u64, SearchIndex), SearchError> {
        match self.live()? {
            Some(g) => match SearchIndex::open(self.dir(g)) {
                Ok(index) => Ok((g, index)),
                Err(SearchError::Incompatible { path, reason }) => {
                    tracing::warn!(
                        path = %path.display(),
                        %reason,
                        "the search index was built by another version of kefu; building it again from the log"
                    );
                    let (next, index) = self.create_next()?;
                    self.point_at(next)?;
                    Ok((next, index))
                }
                Err(e) => Err(e),
            },
            None => {
                let index = SearchIndex::recreate(self.dir(1))?;
                self.point_at(1)?;
                Ok((1, index))
            }
        }
    }

    /// A reader of the live generation, for searching from another process.
    pub fn open_reader(&self) -> Result<SearchReader, SearchError> {
        let g = self.live()?.ok_or_else(|| SearchError::Io {
            path: self.root.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no search index built yet: start `kefu serve` or run `kefu replay search`",
            ),
        })?;
        SearchIndex::open_reader(self.dir(g))
    }

    /// An empty new generation beside the live one.
    pub fn create_next(&self) -> Result<(u64, SearchIndex), SearchError> {
        let next = self.generations()?.into_iter().max().unwrap_or(0) + 1;
        Ok((next, SearchIndex::recreate(self.dir(next))?))
    }

    fn point_at(&self, generation: u64) -> Result<(), SearchError> {
        let written = (|| -> Result<(), SearchError> {
            std::fs::create_dir_all(&self.root).map_err(self.io(&self.root))?;
            let tmp = self.root.join("CURRENT.tmp");
            std::fs::write(&tmp, format!("g{generation}\n")).map_err(self.io(&tmp))?;
            let current = self.root.join("CURRENT");
            std::fs::rename(&tmp, &current).map_err(self.io(&current))
        })();
        written.map_err(|e| storage::explain(&self.root, Target::Dir, e))
    }

    /// Creates the directory if it is missing and proves it takes writes, so a server whose
    /// index cannot be kept refuses to start, naming the path and the reason, instead of
    /// starting with a search that fails in the background.
    pub fn prepare(&self) -> Result<(), SearchError> {
        Ok(storage::ensure_writable(&self.root)?)
    }

    /// Makes `generation` the live one and removes the one it replaces.
    pub fn swap(&self, generation: u64) -> Result<Option<u64>, SearchError> {
        let old = self.live()?;
        self.point_at(generation)?;
        if let Some(old) = old.filter(|o| *o != generation) {
            // A server still holding it open keeps its files until it lets go (POSIX
            // semantics); it reopens the new generation before its next batch.
            let dir = self.dir(old);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "could not remove the old search index");
            }
        }
        Ok(old)
    }
}

/// Runs `f` on the blocking pool with the index, and hands the index back.
async fn with_index<T: Send + 'static>(
    index: SearchIndex,
    f: impl FnOnce(&mut SearchIndex) -> Result<T, SearchError> + Send + 'static,
) -> Result<(SearchIndex, T), ProjectionError> {
    tokio::task::spawn_blocking(move || {
        let mut index = index;
        let r = f(&mut index);
        r.map(|t| (index, t))
    })
    .await
    .map_err(|e| ProjectionError::Bug(format!("search indexing thread failed: {e}")))?
    .map_err(ProjectionError::from)
}

/// Applies a batch, passing over events the index cannot take (see
/// `kefu_feed::decode_or_other` for why one bad event must not stop it).
fn apply_all(index: &mut SearchIndex, events: &[RecordedEvent]) -> Result<(), SearchError> {
    for e in events {
        if e.position < index.resume_from() {
            continue;
        }
        match index.apply(e) {
            Ok(()) => {}
            Err(err @ (SearchError::Decode { .. } | SearchError::UnknownEntity { .. })) => {
                warn!(error = %err, "search index passes over an event it cannot take");
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Feeds `index` from its checkpoint to the log's head as of now, committing as it goes.
pub async fn catch_up_search<L: EventLog>(
    log: &L,
    index: SearchIndex,
    progress: impl FnMut(&Progress),
) -> Result<(SearchIndex, Progress), ProjectionError> {
    catch_up_search_to(log, index, None, progress).await
}

/// Feeds `index` from its checkpoint to the log's head as of now, or to `bound` (inclusive)
/// if that comes first.
async fn catch_up_search_to<L: EventLog>(
    log: &L,
    mut index: SearchIndex,
    bound: Option<Position>,
    mut progress: impl FnMut(&Progress),
) -> Result<(SearchIndex, Progress), ProjectionError> {
    let mut pages = ReadAhead::start(log, index.resume_from(), bound, PAGE).await?;
    let mut since_commit = 0;
    while !pages.is_done() {
        index = pages
            .next(|batch, last| {
                since_commit += batch.len();
                let commit = since_commit >= CATCH_UP_COMMIT || last;
                if commit {
                    since_commit = 0;
                }
                async move {
                    let (index, ()) = with_index(index, move |index| {
                        apply_all(index, &batch)?;
                        if commit {
                            index.commit()?;
                        }
                        Ok(())
                    })
                    .await?;
                    Ok(index)
                }
            })
            .await?;
        progress(pages.progress());
    }
    let (index, _) = with_index(index, |index| index.commit()).await?;
    Ok((index, pages.finish()))
}

/// Builds a new generation from position 0 beside the live one and swaps it in. Returns the
/// new generation, the one it replaced, and how the build went.
pub async fn rebuild_search<L: EventLog>(
    log: &L,
    home: &SearchHome,
    progress: impl FnMut(&Progress),
) -> Result<(u64, Option<u64>, Progress), ProjectionError> {
    let home_ = home.clone();
    let (generation, index) = tokio::task::spawn_blocking(move || home_.create_next())
        .await
        .map_err(|e| ProjectionError::Bug(format!("search thread failed: {e}")))??;
    info!(generation, "building the search index");
    let (index, report) = catch_up_search(log, index, progress).await?;
    // Let go of the writer lock before the server reopens this generation.
    drop(index);
    let replaced = home.swap(generation)?;
    info!(generation, ?replaced, "search index swapped in");
    Ok((generation, replaced, report))
}

/// The search index kept current inside a server.
pub struct LiveSearch {
    handle: SearchHandle,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What request handlers need of the live index, cheap to clone: a reader of the current
/// generation, and how far the index has got.
#[derive(Clone)]
pub struct SearchHandle {
    reader: watch::Receiver<Option<SearchReader>>,
    position: watch::Receiver<Position>,
    seen: watch::Receiver<Seen>,
    writer: watch::Receiver<Liveness>,
}

/// How far the follower has read the log, indexed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The position after the last event read.
    pub next: Position,
    /// Whether indexing is switched on there.
    pub indexing: bool,
}

impl SearchHandle {
    /// A reader of the live index, once it is open.
    pub fn reader(&self) -> Option<SearchReader> {
        self.reader.borrow().clone()
    }

    /// Waits until the index has committed the event at `position`.
    pub async fn wait_for(&self, position: Position) {
        let mut rx = self.position.clone();
        let _ = rx.wait_for(|p| *p > position).await;
    }

    /// Waits until the follower has read the event at `position` (indexed or, with indexing
    /// switched off, passed over for now); says where it stands then.
    pub async fn wait_seen(&self, position: Position) -> Seen {
        let mut rx = self.seen.clone();
        rx.wait_for(|s| s.next > position)
            .await
            .map(|s| *s)
            .unwrap_or(Seen {
                next: position,
                indexing: true,
            })
    }

    /// Whether indexing is switched on where the follower has read to.
    pub fn indexing(&self) -> bool {
        self.seen.borrow().indexing
    }

    /// Where the follower has read to, indexed or passed over while indexing is off: what
    /// its lag is counted from.
    pub fn seen(&self) -> Seen {
        *self.seen.borrow()
    }

    /// Whether the index writer is running or failing (a full disk, a broken directory),
    /// and how often it has failed.
    pub fn writer(&self) -> Liveness {
        self.writer.borrow().clone()
    }
}

impl LiveSearch {
    pub fn spawn<L: EventLog>(log: Arc<L>, home: SearchHome) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (reader_tx, reader) = watch::channel(None);
        let (position_tx, position) = watch::channel(Position::START);
        let (seen_tx, seen) = watch::channel(Seen {
            next: Position::START,
            indexing: true,
        });
        let (reader_tx, position_tx) = (Arc::new(reader_tx), Arc::new(position_tx));
        let seen_tx = Arc::new(seen_tx);
        let (writer_tx, writer) = watch::channel(Liveness::default());
        let writer_tx = Arc::new(writer_tx);
        let supervised = writer_tx.clone();
        let task = tokio::spawn(supervise(
            "search",
            stopped.clone(),
            supervised,
            move || {
                let (log, home, stopped, reader_tx, position_tx, seen_tx, writer_tx) = (
                    log.clone(),
                    home.clone(),
                    stopped.clone(),
                    reader_tx.clone(),
                    position_tx.clone(),
                    seen_tx.clone(),
                    writer_tx.clone(),
                );
                async move {
                    let out = Outputs {
                        reader: &reader_tx,
                        position: &position_tx,
                        seen: &seen_tx,
                        writer: &writer_tx,
                    };
                    match follow(&log, &home, &stopped, out).await {
                        // Say why the writer failed when the directory can: a full disk, a
                        // read-only mount, lost permissions.
                        // (tantivy says only "an index writer was killed" when its thread
                        // hits a full disk).
                        Err(ProjectionError::Search(e @ SearchError::Tantivy(_))) => {
                            warn!(error = %e, "the search index writer failed");
                            let root = home.root.clone();
                            let explained = tokio::task::spawn_blocking(move || {
                                storage::explain(&root, Target::Dir, e)
                            })
                            .await
                            .map_err(|j| {
                                ProjectionError::Bug(format!("search probe failed: {j}"))
                            })?;
                            Err(explained.into())
                        }
                        other => other,
                    }
                }
            },
        ));
        LiveSearch {
            handle: SearchHandle {
                reader,
                position,
                seen,
                writer,
            },
            stop,
            task,
        }
    }

    pub fn handle(&self) -> SearchHandle {
        self.handle.clone()
    }

    /// A reader of the live index, once it is open.
    pub fn reader(&self) -> Option<SearchReader> {
        self.handle.reader()
    }

    /// Waits until the index has committed the event at `position`.
    pub async fn wait_for(&self, position: Position) {
        self.handle.wait_for(position).await
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What the follower tells request handlers.
struct Outputs<'a> {
    reader: &'a watch::Sender<Option<SearchReader>>,
    position: &'a watch::Sender<Position>,
    seen: &'a watch::Sender<Seen>,
    writer: &'a watch::Sender<Liveness>,
}

/// Whether `e` flips search indexing, and to where.
fn indexing_flip(e: &RecordedEvent) -> Option<bool> {
    SwitchBoardDecider::id_of_stream(e.stream_id.as_str())?;
    match kefu_feed::decode(e) {
        Ok(Event::Switches(SwitchEvent::SwitchFlipped(f)))
            if f.switch == Switch::SearchIndexing =>
        {
            Some(f.on)
        }
        _ => None,
    }
}

/// Where indexing stands just before `from` (on unless a flip below it says otherwise), and
/// the first flip off at or after `from`.
async fn indexing_at<L: EventLog>(
    log: &L,
    from: Position,
) -> Result<(bool, Option<Position>), ProjectionError> {
    let stream = StreamId::new(SwitchBoardDecider::stream_id(SWITCHBOARD))?;
    let flips: Vec<(Position, bool)> = read_whole_stream(log, &stream)
        .await?
        .iter()
        .filter_map(|e| indexing_flip(e).map(|on| (e.position, on)))
        .collect();
    let on = flips
        .iter()
        .rev()
        .find(|(p, _)| *p < from)
        .is_none_or(|(_, on)| *on);
    let next_off = flips
        .iter()
        .find(|(p, on)| *p >= from && !on)
        .map(|(p, _)| *p);
    Ok((on, next_off))
}

/// How long an event read by the live index may wait for its commit: the most a message is
/// stale in search (plus the commit itself). Committing after every batch made a segment per
/// event at chat rates and kept tantivy merging: half a core at 20 turns/s.
pub const COMMIT_EVERY: Duration = Duration::from_millis(500);

/// Whether what has waited since `since` is due for its commit at `now`.
fn commit_due(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) >= COMMIT_EVERY
}

/// Commits what is pending and tells readers where the index stands.
async fn commit_pending(
    index: SearchIndex,
    out: &Outputs<'_>,
    pending: Option<(Instant, Position)>,
) -> Result<SearchIndex, ProjectionError> {
    let Some((_, applied_to)) = pending else {
        return Ok(index);
    };
    let (index, _) = with_index(index, SearchIndex::commit).await?;
    // Where it stands first, so a reader woken by the position sees both.
    out.seen
        .send_modify(|s| s.next = s.next.max(applied_to.next()));
    out.position.send_replace(applied_to.next());
    Ok(index)
}

async fn follow<L: EventLog>(
    log: &Arc<L>,
    home: &SearchHome,
    stopped: &watch::Receiver<bool>,
    out: Outputs<'_>,
) -> Result<(), ProjectionError> {
    let home_ = home.clone();
    let (generation, index) = tokio::task::spawn_blocking(move || home_.open_live())
        .await
        .map_err(|e| ProjectionError::Bug(format!("search thread failed: {e}")))??;
    out.reader.send_replace(Some(index.reader()));
    let (on, next_off) = indexing_at(&**log, index.resume_from()).await?;
    let (mut index, mut paused) = if on {
        let (index, _) = catch_up_search_to(&**log, index, next_off, |_| {}).await?;
        let stopped_at_flip = next_off.is_some_and(|p| index.resume_from() > p);
        (index, stopped_at_flip)
    } else {
        (index, true)
    };
    if paused {
        info!(checkpoint = ?index.checkpoint(), "search indexing is switched off; serving what the index has");
    }
    out.position.send_replace(index.resume_from());
    out.seen.send_replace(Seen {
        next: index.resume_from(),
        indexing: !paused,
    });
    // Opened and caught up (which commits): the writer works again.
    Liveness::recovered(out.writer);
    let resubscribe = |from: Position| Subscription::new(log.clone(), from).with_page_size(PAGE);
    let mut sub = resubscribe(index.resume_from());
    let mut stopped = stopped.clone();
    // Applied and not yet committed: the first such event's arrival and the last position.
    let mut pending: Option<(Instant, Position)> = None;
    let mut stopping = false;
    loop {
        let due = pending.map(|(since, _)| since + COMMIT_EVERY);
        // What woke it; the waits end before anything is awaited on.
        let batch = tokio::select! {
            b = sub.next_batch(PAGE) => Some(b?),
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => None,
            _ = stopped.wait_for(|s| *s) => {
                stopping = true;
                None
            }
        };
        let Some(batch) = batch else {
            index = commit_pending(index, &out, pending.take()).await?;
            if stopping {
                return Ok(());
            }
            continue;
        };
        if home.live()? != Some(generation) {
            return Err(ProjectionError::Superseded {
                projection: "search".into(),
                generation: generation as i64,
            });
        }
        let Some(last) = batch.last().map(|e| e.position) else {
            continue;
        };
        let rest = if paused {
            batch
        } else {
            // Index up to and including a flip off; what follows waits for the flip on.
            let cut = batch.iter().position(|e| indexing_flip(e) == Some(false));
            let (apply, rest) = match cut {
                Some(i) => {
                    let mut apply = batch;
                    let rest = apply.split_off(i + 1);
                    (apply, rest)
                }
                None => (batch, Vec::new()),
            };
            let applied_to = apply.last().map(|e| e.position);
            let (next, _) = with_index(index, move |index| apply_all(index, &apply)).await?;
            index = next;
            if let Some(p) = applied_to {
                let since = pending.map_or_else(Instant::now, |(since, _)| since);
                pending = Some((since, p));
            }
            // A flip off is committed at once: what the index serves while paused is all of
            // what came before it.
            if cut.is_some() || pending.is_some_and(|(since, _)| commit_due(since, Instant::now()))
            {
                index = commit_pending(index, &out, pending.take()).await?;
            }
            if cut.is_some() {
                paused = true;
                out.seen.send_modify(|s| s.indexing = false);
                info!(checkpoint = ?index.checkpoint(), "search indexing switched off; serving what the index has");
            }
            rest
        };
        if paused && rest.iter().any(|e| indexing_flip(e) == Some(true)) {
            // Back on: everything since the checkpoint, the flip included, comes again.
            paused = false;
            out.seen.send_modify(|s| s.indexing = true);
            info!(from = ?index.resume_from(), "search indexing switched on; catching up");
            sub = resubscribe(index.resume_from());
            continue;
        }
        // Only forward: after a flip on, the events since the checkpoint are read again.
        out.seen.send_modify(|s| {
            s.next = s.next.max(last.next());
            s.indexing = !paused;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_waits_at_most_commit_every_for_its_commit() {
        let since = Instant::now();
        assert!(!commit_due(since, since));
        assert!(!commit_due(
            since,
            since + COMMIT_EVERY - Duration::from_millis(1)
        ));
        assert!(commit_due(since, since + COMMIT_EVERY));
        assert!(commit_due(since, since + COMMIT_EVERY * 3));
        assert!(
            !commit_due(since + COMMIT_EVERY, since),
            "a clock read early is not due"
        );
    }

    /// After an upgrade that changes the index format, the live generation is not opened as
    /// if it were readable: a new, empty one takes its place, to be filled from the log.
    #[test]
    fn an_index_of_another_format_is_replaced_by_an_empty_generation() {
        let dir = tempfile::tempdir().unwrap();
        let home = SearchHome::new(dir.path().join("search"));
        let (first, index) = home.open_live().unwrap();
        drop(index);
        // What an older kefu committed: the same layout with format 1.
        let old = tantivy::Index::open_in_dir(home.dir(first)).unwrap();
        let mut writer: tantivy::IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
        let mut prepared = writer.prepare_commit().unwrap();
        prepared.set_payload(r#"{"format":1,"position":null}"#);
        prepared.commit().unwrap();
        drop(writer);

        let (live, _index) = home.open_live().unwrap();
        assert_eq!(live, first + 1, "a new generation");
        assert_eq!(home.live().unwrap(), Some(live), "and it is the live one");
        assert!(
            home.dir(first).exists(),
            "the old one is left for the operator"
        );
        assert_ne!(crate::search::FORMAT, 1);
    }
}
