//! Idempotency keys: a client that lost a mutation's answer resends it with the same
//! `idempotencyKey` and gets the first answer back (same id, position and correlation id)
//! instead of a second conversation, ticket or queue, or a CONFLICT it cannot tell from
//! someone else's.
//!
//! The functional core is [`Keyed`] (the key checked, the request's fingerprint), [`judge`]
//! (what a stored row means for a request) and [`recover`] (a receipt read back from the log);
//! [`Keys`] is the shell: the `kefu_idempotency` table in the read-model store, an in-process
//! lock per key, and the execution itself.
//!
//! Exactly once, also across a crash: the key is reserved (a pending row holding the
//! fingerprint and a fresh correlation id) before anything runs, the mutation's events carry
//! that correlation id as their correlation and cause, and the receipt is stored after. A
//! resend that finds a pending row whose owner is gone (its lease ran out) reads the log by
//! that correlation id: if the mutation's decisive event is there, the receipt is completed
//! from the log; if not, the mutation runs (again, with the same correlation id: every
//! multi-stream desk operation is resumable, see ARCHITECTURE.md). A fresh correlation id per
//! reservation, rather than one derived from the key, because a key may be used again once
//! its window has passed: a derived id would file both requests under one audit trail, and
//! a recovery would mistake the first request's events for the second's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use kefu_desk::Clock;
use kefu_eventlog::{EventLog, RecordedEvent};
use kefu_projections::ReadStore;
use kefu_projections::sql::{Stmt, StoreError, Val};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ApiError;
use super::types::Receipt;
use crate::auth::Principal;

/// The argument every mutation that returns a `Receipt` takes.
pub const ARGUMENT: &str = "idempotencyKey";

/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 128;

/// How long a pending key stays its owner's without a renewal. The owner renews it every
/// third of this while its mutation runs, so a resend waits at most this long for a server
/// that died mid-mutation.
pub const LEASE: Duration = Duration::from_secs(10);

/// An idempotency key, as the argument's type: checked when the request is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

/// A key of your choosing (1 to 128 printable ASCII characters, no spaces; a UUID, say) that
/// makes resending a mutation safe. Within the idempotency window (24 hours by default, the
/// server's `--idempotency-window-hours`), the same caller sending the same key with the same
/// field and arguments gets the first Receipt back (same id, position and correlationId) and
/// nothing is written again, even if the first request is still running or its server died
/// midway; the same key with another field or other arguments is refused with
/// IDEMPOTENCY_KEY_REUSED. Keys are per caller (token subject and role). A request refused
/// with VALIDATION, NOT_FOUND, FORBIDDEN or CONFLICT keeps nothing, so its key may be used
/// again. After the window, the key is forgotten and a resend runs again.
#[async_graphql::Scalar]
impl async_graphql::ScalarType for IdempotencyKey {
    fn parse(value: async_graphql::Value) -> async_graphql::InputValueResult<Self> {
        match value {
            async_graphql::Value::String(key) => match check_key(&key) {
                Ok(()) => Ok(IdempotencyKey(key)),
                Err(e) => Err(async_graphql::InputValueError::custom(e.message())),
            },
            other => Err(async_graphql::InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::String(self.0.clone())
    }
}

/// A request under a key: whose, which key, and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    /// The caller's identity: two callers' keys never meet.
    pub scope: String,
    pub key: String,
    /// The mutation field.
    pub field: String,
    /// SHA-256 of the field and its arguments in canonical JSON.
    pub fingerprint: String,
}

impl Keyed {
    /// Fingerprints the request. `arguments` are the field's arguments as
    /// sent (variables resolved), the key among them or not.
    pub fn new(
        caller: &Principal,
        key: IdempotencyKey,
        field: &str,
        arguments: &[(async_graphql::Name, async_graphql::Value)],
    ) -> Keyed {
        Keyed {
            scope: caller.identity(),
            key: key.0,
            field: field.to_owned(),
            fingerprint: fingerprint(field, arguments),
        }
    }
}

fn check_key(key: &str) -> Result<(), ApiError> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(ApiError::Validation(format!(
            "{ARGUMENT}: {chars} characters; it takes 1 to {MAX_KEY_CHARS}"
        )));
    }
    if let Some(bad) = key.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ApiError::Validation(format!(
            "{ARGUMENT}: {bad:?} is not allowed; use printable ASCII without spaces \
             (a UUID, say)"
        )));
    }
    Ok(())
}

/// The request as a fingerprint: the field and its arguments (without the key) as canonical
/// JSON (object keys sorted, no whitespace; an argument sent as null counts as absent), hashed.
/// Arguments are compared as sent, so a resend must say the same thing, not merely mean it:
/// a default spelled out is another request.
pub fn fingerprint(
    field: &str,
    arguments: &[(async_graphql::Name, async_graphql::Value)],
) -> String {
    let mut args: Vec<(&str, &async_graphql::Value)> = arguments
        .iter()
        .filter(|(n, v)| n.as_str() != ARGUMENT && !matches!(v, async_graphql::Value::Null))
        .map(|(n, v)| (n.as_str(), v))
        .collect();
    args.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    text.push_str(&serde_json::Value::String(field.to_owned()).to_string());
    text.push('{');
    for (i, (name, value)) in args.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::Value::String(name.to_owned()).to_string());
        text.push(':');
        canonical(value, &mut text);
    }
    text.push('}');
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

fn canonical(value: &async_graphql::Value, out: &mut String) {
    use async_graphql::Value as V;
    match value {
        V::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        V::Object(fields) => {
            let mut fields: Vec<_> = fields
                .iter()
                .filter(|(_, v)| !matches!(v, V::Null))
                .collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, v)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(name.to_string()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        // Scalars and enum values as JSON (an enum value as its name, a string).
        other => out.push_str(
            &other
                .clone()
                .into_json()
                .map(|j| j.to_string())
                .unwrap_or_default(),
        ),
    }
}

/// What a mutation's effect is in the log, so that a receipt can be read back from it when
/// the mutation ran but its receipt was never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The category of the stream whose event says the mutation took effect (for
    /// `startConversation` the conversation, not the customer's profile recorded before it).
    pub category: &'static str,
    pub id: IdOf,
}

/// Where a receipt's `id` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOf {
    /// The mutation returns no id.
    Nothing,
    /// The id of the decisive event's stream (what the mutation created).
    Stream,
    /// The message the decisive event records.
    Message,
    /// Known before the mutation ran (an order's id).
    Known(String),
}

/// The receipt a mutation that ran under `correlation` earned, from the events carrying that
/// correlation id; `None` when its decisive event is not among them (it did not take effect,
/// so it may run). Only the request's own events count (their cause is the request itself),
/// not the workers' reactions to them, which share the correlation id.
pub fn recover(effect: &Effect, correlation: Uuid, events: &[RecordedEvent]) -> Option<Receipt> {
    let own: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| {
            e.metadata.correlation_id == correlation && e.metadata.causation_id == correlation
        })
        .collect();
    let decisive = own
        .iter()
        .rev()
        .find(|e| e.stream_id.category() == effect.category)?;
    let id = match &effect.id {
        IdOf::Nothing => None,
        IdOf::Stream => Some(decisive.stream_id.entity_id().to_owned()),
        IdOf::Message => match kefu_feed::decode(decisive) {
            Ok(kefu_domain::Event::Conversation(event)) => {
                event.message().map(|message| message.to_string())
            }
            _ => None,
        },
        IdOf::Known(id) => Some(id.clone()),
    };
    Some(Receipt {
        id,
        position: own
            .iter()
            .map(|e| e.position)
            .max()
            .map(|p| p.0.to_string()),
        correlation_id: correlation.to_string(),
    })
}

/// A key's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub field: String,
    pub fingerprint: String,
    pub correlation: Uuid,
    /// When the key was reserved, by the window's clock (epoch milliseconds).
    pub created_at: i64,
    /// The server process running (or last running) the mutation.
    pub owner: Uuid,
    /// Until when the owner holds a pending key, by the lease clock (epoch milliseconds).
    pub lease_until: i64,
    /// The stored receipt, once the mutation is done.
    pub receipt: Option<Receipt>,
}

/// What a stored row means for a request under its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The key was used for another request: refused.
    Reused { field: String },
    /// Done: its receipt is the answer.
    Answered(Receipt),
    /// Another process is running it: wait and look again.
    Running,
    /// Its owner is gone before storing a receipt: settle it from the log.
    Abandoned,
    /// Past the window: reserve it afresh.
    Expired,
}

/// What `row` means for `request`, at `now` on the window's clock and `lease_now` on the
/// lease clock, for the process `me`, which holds the key's in-process lock (so a pending row
/// of its own is one whose execution it lost).
pub fn judge(
    row: &Row,
    request: &Keyed,
    window: Duration,
    now: i64,
    lease_now: i64,
    me: Uuid,
) -> Verdict {
    if row.created_at < cutoff(now, window) {
        return Verdict::Expired;
    }
    if row.field != request.field || row.fingerprint != request.fingerprint {
        return Verdict::Reused {
            field: row.field.clone(),
        };
    }
    match &row.receipt {
        Some(r) => Verdict::Answered(r.clone()),
        None if row.owner != me && row.lease_until > lease_now => Verdict::Running,
        None => Verdict::Abandoned,
    }
}

fn cutoff(now: i64, window: Duration) -> i64 {
    now.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

/// Whether an error says for sure that nothing was written: the request was refused, so its
/// key is freed. Otherwise (the store did not answer, the deadline passed) the outcome is
/// unknown, and the resend settles it from the log.
fn refused(e: &ApiError) -> bool {
    !matches!(e, ApiError::Unavailable(_) | ApiError::Timeout(_))
}

/// A key's in-process lock, kept while some request holds or waits for it.
type KeyLock = Weak<tokio::sync::Mutex<()>>;

/// The keys of this server: the table, the in-process locks, the clocks.
#[derive(Clone)]
pub struct Keys {
    store: ReadStore,
    window: Duration,
    /// The window's clock: the commands' clock (the drill clock in drills).
    clock: Clock,
    /// The leases' clock: real time, even in drills, since a lease measures how long a
    /// process has been silent.
    lease_clock: Clock,
    /// This process, as the owner of the keys it runs.
    me: Uuid,
    locks: Arc<Mutex<HashMap<(String, String), KeyLock>>>,
    /// When expired keys are next swept (window clock, epoch milliseconds).
    next_sweep: Arc<std::sync::atomic::AtomicI64>,
}

const COLUMNS: &str = "field, fingerprint, correlation, created_at, owner, lease_until, done, receipt_id, receipt_position";

impl Keys {
    /// Opens (creating if need be) the keys' table in the read-model store.
    pub async fn open(
        store: ReadStore,
        window: Duration,
        clock: Clock,
    ) -> Result<Keys, StoreError> {
        store
            .transaction(vec![
                Stmt::new(
                    "CREATE TABLE IF NOT EXISTS kefu_idempotency (
                        scope            TEXT   NOT NULL,
                        idem_key         TEXT   NOT NULL,
                        field            TEXT   NOT NULL,
                        fingerprint      TEXT   NOT NULL,
                        correlation      TEXT   NOT NULL,
                        created_at       BIGINT NOT NULL,
                        owner            TEXT   NOT NULL,
                        lease_until      BIGINT NOT NULL,
                        done             BIGINT NOT NULL,
                        receipt_id       TEXT,
                        receipt_position TEXT,
                        PRIMARY KEY (scope, idem_key)
                    )",
                    vec![],
                ),
                Stmt::new(
                    "CREATE INDEX IF NOT EXISTS kefu_idempotency_created \
                     ON kefu_idempotency (created_at)",
                    vec![],
                ),
            ])
            .await?;
        Ok(Keys {
            store,
            window,
            clock,
            lease_clock: Arc::new(Utc::now),
            me: Uuid::now_v7(),
            locks: Arc::default(),
            next_sweep: Arc::default(),
        })
    }

    /// The same keys with another lease clock.
    #[cfg(test)]
    pub fn with_lease_clock(mut self, clock: Clock) -> Keys {
        self.lease_clock = clock;
        self
    }

    /// The same table and clocks as another server process would see them.
    #[cfg(test)]
    pub fn another_process(&self) -> Keys {
        Keys {
            me: Uuid::now_v7(),
            locks: Arc::default(),
            ..self.clone()
        }
    }

    /// Runs `execute` once for `request`'s key: the first time with a reserved correlation
    /// id (the events' correlation and cause), every later time within the window answering
    /// the first receipt without running it. `effect` says how to read the receipt back from
    /// the log if the first run's process died before storing it.
    ///
    /// `execute` runs in a task of its own, so a request that times out or whose client goes
    /// away does not cut a mutation off between its appends: it finishes and stores its
    /// receipt, and a resend (in this process, waiting on the key's lock) gets it.
    pub async fn once<L, F, Fut>(
        &self,
        log: &L,
        request: &Keyed,
        effect: &Effect,
        execute: F,
    ) -> Result<Receipt, ApiError>
    where
        L: EventLog,
        F: FnOnce(Uuid) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Receipt, ApiError>> + Send + 'static,
    {
        let lock = self.lock(request).await;
        self.sweep();
        let mut wait = Duration::from_millis(20);
        let correlation = loop {
            if let Some(correlation) = self.reserve(request).await? {
                break correlation;
            }
            let Some(row) = self.row(request).await? else {
                continue;
            };
            match judge(
                &row,
                request,
                self.window,
                self.now(),
                self.lease_now(),
                self.me,
            ) {
                Verdict::Reused { field } => {
                    tracing::debug!(key = %request.key, first = %field, asked = %request.field, "idempotency key reused");
                    return Err(ApiError::KeyReused(format!(
                        "{ARGUMENT} {:?} was first used for {field} with other arguments; \
                         a key names one request: choose a new key for a new request",
                        request.key
                    )));
                }
                Verdict::Answered(receipt) => return Ok(receipt),
                Verdict::Expired => continue,
                Verdict::Running => {
                    // Another server runs it; its receipt is stored when done, or its lease
                    // runs out if it dies. The request's own deadline bounds this wait.
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(500));
                }
                Verdict::Abandoned => {
                    if !self.take_over(request, &row).await? {
                        continue;
                    }
                    let events = log
                        .read_correlation(row.correlation)
                        .await
                        .map_err(ApiError::from)?;
                    if let Some(receipt) = recover(effect, row.correlation, &events) {
                        tracing::info!(key = %request.key, field = %request.field, correlation = %row.correlation, "idempotency key settled from the log after its first run died");
                        self.complete(request, row.correlation, &receipt).await;
                        return Ok(receipt);
                    }
                    tracing::info!(key = %request.key, field = %request.field, correlation = %row.correlation, "idempotency key's first run died before taking effect; running it");
                    break row.correlation;
                }
            }
        };
        let keys = self.clone();
        let request = request.clone();
        let run = tokio::spawn(async move {
            let _lock = lock;
            let result = keys
                .renewing(&request, correlation, execute(correlation))
                .await;
            match &result {
                Ok(receipt) => keys.complete(&request, correlation, receipt).await,
                Err(e) if refused(e) => keys.release(&request, correlation).await,
                Err(_) => keys.abandon(&request, correlation).await,
            }
            result
        });
        run.await.map_err(|e| {
            ApiError::Unavailable(format!(
                "the mutation's task failed: {e}; resend it with the same key"
            ))
        })?
    }

    /// Runs `work`, renewing the key's lease while it runs.
    async fn renewing<T>(
        &self,
        request: &Keyed,
        correlation: Uuid,
        work: impl Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        let mut tick = tokio::time::interval(LEASE / 3);
        tick.tick().await;
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tick.tick() => {
                    let renewed = self.own_row(
                        request,
                        correlation,
                        "UPDATE kefu_idempotency SET lease_until = $1",
                        vec![Val::Int(self.lease_end())],
                    );
                    self.write_own_row(request, renewed, "cannot renew an idempotency key's lease")
                        .await;
                }
            }
        }
    }

    /// The key's in-process lock: requests under one key in this process run one at a time.
    async fn lock(&self, request: &Keyed) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            let id = (request.scope.clone(), request.key.clone());
            match locks.get(&id).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    if locks.len() >= 1024 {
                        locks.retain(|_, w| w.strong_count() > 0);
                    }
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(id, Arc::downgrade(&m));
                    m
                }
            }
        };
        mutex.lock_owned().await
    }

    fn now(&self) -> i64 {
        (self.clock)().timestamp_millis()
    }

    fn lease_now(&self) -> i64 {
        (self.lease_clock)().timestamp_millis()
    }

    fn lease_end(&self) -> i64 {
        self.lease_now()
            .saturating_add(i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX))
    }

    /// Reserves the key for `request` (new, or past its window): the correlation id its run
    /// gets, or `None` when a live row holds the key.
    async fn reserve(&self, request: &Keyed) -> Result<Option<Uuid>, ApiError> {
        let correlation = Uuid::now_v7();
        let now = self.now();
        let insert = Stmt::new(
            "INSERT INTO kefu_idempotency (scope, idem_key, field, fingerprint, correlation, \
             created_at, owner, lease_until, done, receipt_id, receipt_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, NULL) \
             ON CONFLICT (scope, idem_key) DO UPDATE SET field = excluded.field, \
             fingerprint = excluded.fingerprint, correlation = excluded.correlation, \
             created_at = excluded.created_at, owner = excluded.owner, \
             lease_until = excluded.lease_until, done = 0, receipt_id = NULL, \
             receipt_position = NULL \
             WHERE kefu_idempotency.created_at < $9",
            vec![
                request.scope.clone().into(),
                request.key.clone().into(),
                request.field.clone().into(),
                request.fingerprint.clone().into(),
                correlation.to_string().into(),
                Val::Int(now),
                self.me.to_string().into(),
                Val::Int(self.lease_end()),
                Val::Int(cutoff(now, self.window)),
            ],
        )
        .guarded(1, "the idempotency key is taken");
        match self.store.transaction(vec![insert]).await {
            Ok(()) => Ok(Some(correlation)),
            Err(StoreError::Guard { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn row(&self, request: &Keyed) -> Result<Option<Row>, ApiError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM kefu_idempotency WHERE scope = $1 AND idem_key = $2"
                ),
                vec![request.scope.clone().into(), request.key.clone().into()],
            )
            .await
            .map_err(unavailable)?;
        rows.first().map(|r| row_of(r)).transpose()
    }

    /// Makes an abandoned key this process's; false when another got it first.
    async fn take_over(&self, request: &Keyed, row: &Row) -> Result<bool, ApiError> {
        let update = Stmt::new(
            "UPDATE kefu_idempotency SET owner = $1, lease_until = $2 \
             WHERE scope = $3 AND idem_key = $4 AND correlation = $5 AND owner = $6 \
             AND lease_until = $7 AND done = 0",
            vec![
                self.me.to_string().into(),
                Val::Int(self.lease_end()),
                request.scope.clone().into(),
                request.key.clone().into(),
                row.correlation.to_string().into(),
                row.owner.to_string().into(),
                Val::Int(row.lease_until),
            ],
        )
        .guarded(1, "another process took the idempotency key over");
        match self.store.transaction(vec![update]).await {
            Ok(()) => Ok(true),
            Err(StoreError::Guard { .. }) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Stores the receipt. A failure is only logged: the mutation is done and its answer
    /// stands; a resend settles the key from the log once the lease has run out.
    async fn complete(&self, request: &Keyed, correlation: Uuid, receipt: &Receipt) {
        let update = self.own_row(
            request,
            correlation,
            "UPDATE kefu_idempotency SET done = 1, receipt_id = $1, receipt_position = $2, \
             lease_until = 0",
            vec![
                receipt.id.clone().map_or(Val::Null, Val::Text),
                receipt.position.clone().map_or(Val::Null, Val::Text),
            ],
        );
        self.write_own_row(
            request,
            update,
            "cannot store an idempotency key's receipt; a resend will read it from the log",
        )
        .await;
    }

    /// Frees the key of a refused request.
    async fn release(&self, request: &Keyed, correlation: Uuid) {
        let delete = self.own_row(request, correlation, "DELETE FROM kefu_idempotency", vec![]);
        self.write_own_row(
            request,
            delete,
            "cannot free a refused request's idempotency key",
        )
        .await;
    }

    /// Gives up the lease of a request whose outcome is unknown, so a resend settles it from
    /// the log at once.
    async fn abandon(&self, request: &Keyed, correlation: Uuid) {
        let update = self.own_row(
            request,
            correlation,
            "UPDATE kefu_idempotency SET lease_until = 0",
            vec![],
        );
        self.write_own_row(request, update, "cannot give up an idempotency key's lease")
            .await;
    }

    /// `change` (an UPDATE with its SET, or a DELETE) and its parameters, on the key's row
    /// only while it is pending and this process's under `correlation`: a row another process
    /// took over, or one already done, is left alone.
    fn own_row(
        &self,
        request: &Keyed,
        correlation: Uuid,
        change: &str,
        mut params: Vec<Val>,
    ) -> Stmt {
        let n = params.len();
        let sql = format!(
            "{change} WHERE scope = ${} AND idem_key = ${} AND owner = ${} AND correlation = ${} \
             AND done = 0",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        );
        params.extend([
            request.scope.clone().into(),
            request.key.clone().into(),
            self.me.to_string().into(),
            correlation.to_string().into(),
        ]);
        Stmt::new(sql, params)
    }

    /// Writes to the key's own row: a failure is logged, not answered, since the mutation's
    /// outcome stands either way (a resend settles the row from the log).
    async fn write_own_row(&self, request: &Keyed, stmt: Stmt, failed: &str) {
        if let Err(e) = self.store.transaction(vec![stmt]).await {
            tracing::warn!(key = %request.key, error = %e, "{failed}");
        }
    }

    /// Deletes keys past the window, at most once a minute, in the background: a reservation
    /// replaces an expired row of its own key anyway, so this only keeps the table small.
    fn sweep(&self) {
        use std::sync::atomic::Ordering;
        let now = self.now();
        let next = self.next_sweep.load(Ordering::Relaxed);
        if now < next
            || self
                .next_sweep
                .compare_exchange(next, now + 60_000, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let delete = Stmt::new(
            "DELETE FROM kefu_idempotency WHERE created_at < $1 AND (done = 1 OR lease_until < $2)",
            vec![
                Val::Int(cutoff(now, self.window)),
                Val::Int(self.lease_now()),
            ],
        );
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.transaction(vec![delete]).await {
                tracing::warn!(error = %e, "cannot sweep expired idempotency keys");
            }
        });
    }

    /// Reserves a key and returns its correlation id without running anything: a test's
    /// way to be a process that dies between reserving and storing the receipt.
    #[cfg(test)]
    pub async fn reserve_only(&self, request: &Keyed) -> Option<Uuid> {
        self.reserve(request).await.expect("reserve")
    }
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::Unavailable(format!("idempotency keys: {e}"))
}

fn row_of(r: &[Val]) -> Result<Row, ApiError> {
    let bad = || ApiError::Unavailable("idempotency keys: a malformed row".into());
    let text = |i: usize| r.get(i).and_then(Val::as_str).ok_or_else(bad);
    let int = |i: usize| r.get(i).and_then(Val::as_i64).ok_or_else(bad);
    let uuid = |i: usize| text(i)?.parse::<Uuid>().map_err(|_| bad());
    let optional = |i: usize| r.get(i).and_then(Val::as_str).map(str::to_owned);
    let correlation = uuid(2)?;
    Ok(Row {
        field: text(0)?.to_owned(),
        fingerprint: text(1)?.to_owned(),
        correlation,
        created_at: int(3)?,
        owner: uuid(4)?,
        lease_until: int(5)?,
        receipt: (int(6)? == 1).then(|| Receipt {
            id: optional(7),
            position: optional(8),
            correlation_id: correlation.to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    use async_graphql::{Name, Number, Value};
    use chrono::DateTime;
    use kefu_desk::{CommandService, Desk};
    use kefu_domain::common::Channel;
    use kefu_domain::customer::CustomerTier;
    use kefu_domain::ids::{CustomerId, Locale};
    use kefu_eventlog::{Actor, ActorKind, Metadata};

    use super::*;
    use crate::auth::Role;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn customer(id: &str) -> Principal {
        Principal {
            role: Role::Customer,
            id: id.to_owned(),
            queues: Default::default(),
        }
    }

    fn args(pairs: &[(&str, Value)]) -> Vec<(Name, Value)> {
        pairs
            .iter()
            .map(|(n, v)| (Name::new(n), v.clone()))
            .collect()
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey(k.to_owned())
    }

    #[test]
    fn the_fingerprint_is_what_was_asked_not_how_it_was_spelled() {
        let object = |pairs: &[(&str, Value)]| {
            Value::Object(
                pairs
                    .iter()
                    .map(|(n, v)| (Name::new(n), v.clone()))
                    .collect(),
            )
        };
        let a = args(&[
            ("channel", Value::Enum(Name::new("WEB"))),
            (
                "input",
                object(&[("a", Value::from(1)), ("b", Value::from("x"))]),
            ),
            ("locale", Value::Null),
        ]);
        let b = args(&[
            (ARGUMENT, Value::from("k-1")),
            (
                "input",
                object(&[("b", Value::from("x")), ("a", Value::from(1))]),
            ),
            ("channel", Value::Enum(Name::new("WEB"))),
        ]);
        assert_eq!(
            fingerprint("startConversation", &a),
            fingerprint("startConversation", &b)
        );
        // Another field, another value, another type of value: another request.
        assert_ne!(
            fingerprint("startConversation", &a),
            fingerprint("openTicket", &a)
        );
        let c = args(&[
            ("channel", Value::Enum(Name::new("APP"))),
            (
                "input",
                object(&[("a", Value::from(1)), ("b", Value::from("x"))]),
            ),
        ]);
        assert_ne!(
            fingerprint("startConversation", &a),
            fingerprint("startConversation", &c)
        );
        let d = args(&[
            ("channel", Value::Enum(Name::new("WEB"))),
            (
                "input",
                object(&[("a", Value::from("1")), ("b", Value::from("x"))]),
            ),
        ]);
        assert_ne!(
            fingerprint("startConversation", &a),
            fingerprint("startConversation", &d)
        );
        let e = args(&[
            ("n", Value::Number(Number::from(1))),
            ("l", Value::List(vec![])),
        ]);
        let f = args(&[("n", Value::Number(Number::from(1)))]);
        assert_ne!(fingerprint("x", &e), fingerprint("x", &f));
    }

    #[test]
    fn bad_keys_are_refused_naming_the_argument() {
        use async_graphql::ScalarType;
        for bad in [
            "",
            "has space",
            "键",
            "tab\t",
            &"k".repeat(MAX_KEY_CHARS + 1),
        ] {
            let e = IdempotencyKey::parse(Value::from(bad)).unwrap_err();
            assert!(
                e.into_server_error(Default::default())
                    .message
                    .contains(ARGUMENT),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::parse(Value::from(1)).is_err());
        let longest = "k".repeat(MAX_KEY_CHARS);
        for good in [
            "a",
            "0190f1c2-0000-7000-8000-00000000e1d0",
            "retry:#1/~",
            &longest,
        ] {
            assert_eq!(IdempotencyKey::parse(Value::from(good)).unwrap(), key(good));
        }
    }

    fn row(request: &Keyed, owner: Uuid, lease_until: i64, receipt: Option<Receipt>) -> Row {
        Row {
            field: request.field.clone(),
            fingerprint: request.fingerprint.clone(),
            correlation: Uuid::nil(),
            created_at: 1_000,
            owner,
            lease_until,
            receipt,
        }
    }

    #[test]
    fn what_a_stored_key_means() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let request = Keyed::new(&customer("c"), key("k"), "closeConversation", &[]);
        let receipt = Receipt {
            id: None,
            position: Some("7".into()),
            correlation_id: Uuid::nil().to_string(),
        };
        let judged =
            |r: &Row, now: i64, lease_now: i64| judge(r, &request, DAY, now, lease_now, me);
        assert_eq!(
            judged(
                &row(&request, other, 0, Some(receipt.clone())),
                2_000,
                2_000
            ),
            Verdict::Answered(receipt.clone())
        );
        // Pending elsewhere: running while the lease lasts, abandoned after it.
        assert_eq!(
            judged(&row(&request, other, 5_000, None), 2_000, 4_999),
            Verdict::Running
        );
        assert_eq!(
            judged(&row(&request, other, 5_000, None), 2_000, 5_000),
            Verdict::Abandoned
        );
        // Pending here, with this process holding the key's lock: its run was lost.
        assert_eq!(
            judged(&row(&request, me, 5_000, None), 2_000, 2_000),
            Verdict::Abandoned
        );
        // Another request under the key, even one that was answered.
        let mut other_args = row(&request, other, 0, Some(receipt.clone()));
        other_args.fingerprint = "another".into();
        assert_eq!(
            judged(&other_args, 2_000, 2_000),
            Verdict::Reused {
                field: "closeConversation".into()
            }
        );
        other_args.field = "requestHuman".into();
        assert_eq!(
            judged(&other_args, 2_000, 2_000),
            Verdict::Reused {
                field: "requestHuman".into()
            }
        );
        // The window is the last word: a key exactly a window old is still kept.
        let day = DAY.as_millis() as i64;
        let answered = row(&request, other, 0, Some(receipt));
        assert!(matches!(
            judged(&answered, 1_000 + day, 0),
            Verdict::Answered(_)
        ));
        assert_eq!(judged(&answered, 1_001 + day, 0), Verdict::Expired);
    }

    /// A clock the test moves.
    #[derive(Clone)]
    struct Hand(Arc<AtomicI64>);

    impl Hand {
        fn at(ms: i64) -> Hand {
            Hand(Arc::new(AtomicI64::new(ms)))
        }

        fn clock(&self) -> Clock {
            let t = self.0.clone();
            Arc::new(move || DateTime::from_timestamp_millis(t.load(Ordering::SeqCst)).unwrap())
        }

        fn advance(&self, by: Duration) {
            self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
        }
    }

    struct Fixture<L> {
        log: Arc<L>,
        desk: Desk<L>,
        keys: Keys,
        window: Hand,
        lease: Hand,
        /// How many times a mutation really ran.
        runs: Arc<AtomicUsize>,
    }

    const START: Effect = Effect {
        category: "conversation",
        id: IdOf::Stream,
    };

    impl<L: EventLog + Send + Sync + 'static> Fixture<L> {
        async fn new(log: L, store: ReadStore) -> Self {
            let (window, lease) = (Hand::at(1_750_000_000_000), Hand::at(1_750_000_000_000));
            let keys = Keys::open(store, DAY, window.clock())
                .await
                .unwrap()
                .with_lease_clock(lease.clock());
            let log = Arc::new(log);
            Fixture {
                desk: Desk::new(CommandService::new(log.clone())),
                log,
                keys,
                window,
                lease,
                runs: Arc::default(),
            }
        }

        fn request(&self, who: &str, k: &str, channel: &str) -> Keyed {
            let arguments = args(&[("channel", Value::Enum(Name::new(channel)))]);
            Keyed::new(&customer(who), key(k), "startConversation", &arguments)
        }

        /// `startConversation` as the resolver runs it, counted.
        fn start(
            &self,
            who: &str,
        ) -> impl FnOnce(
            Uuid,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<Receipt, ApiError>> + Send>,
        > + Send
        + 'static {
            let (desk, runs) = (self.desk.clone(), self.runs.clone());
            let who = who.to_owned();
            move |correlation| {
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    start(&desk, &who, correlation).await
                })
            }
        }

        async fn send(&self, keys: &Keys, who: &str, request: &Keyed) -> Result<Receipt, ApiError> {
            keys.once(&*self.log, request, &START, self.start(who))
                .await
        }

        async fn events_of(&self, correlation: &str) -> Vec<RecordedEvent> {
            self.log
                .read_correlation(correlation.parse().unwrap())
                .await
                .unwrap()
        }

        fn runs(&self) -> usize {
            self.runs.load(Ordering::SeqCst)
        }
    }

    async fn start<L: EventLog + Send + Sync + 'static>(
        desk: &Desk<L>,
        who: &str,
        correlation: Uuid,
    ) -> Result<Receipt, ApiError> {
        let meta = Metadata::for_request(Actor::new(ActorKind::Customer, who), correlation);
        let customer = CustomerId::from_uuid(who.parse().unwrap());
        let done = desk
            .start_conversation(customer, None, Channel::Web, None, true, &meta)
            .await
            .map_err(ApiError::from)?;
        Ok(Receipt {
            id: Some(done.value.to_string()),
            position: done.position.map(|p| p.0.to_string()),
            correlation_id: correlation.to_string(),
        })
    }

    fn someone() -> String {
        Uuid::now_v7().to_string()
    }

    async fn a_resend_answers_the_first_receipt<L: EventLog + Send + Sync + 'static>(
        f: &Fixture<L>,
    ) {
        let (alice, bob) = (someone(), someone());
        let request = f.request(&alice, "k-resend", "WEB");
        let first = f.send(&f.keys, &alice, &request).await.unwrap();
        let again = f.send(&f.keys, &alice, &request).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(f.runs(), 1);
        let written = f.events_of(&first.correlation_id).await;
        assert_eq!(
            written
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["CustomerProfileRecorded", "ConversationStarted"]
        );
        assert_eq!(first.id.as_deref(), Some(written[1].stream_id.entity_id()));
        assert_eq!(first.position, Some(written[1].position.0.to_string()));

        // Another caller's same key is theirs alone.
        let theirs = f
            .send(&f.keys, &bob, &f.request(&bob, "k-resend", "WEB"))
            .await
            .unwrap();
        assert_ne!(theirs.id, first.id);
        assert_ne!(theirs.correlation_id, first.correlation_id);
        assert_eq!(f.runs(), 2);

        // The same key with other arguments is refused, naming the key and its first field;
        // nothing runs, nothing is written.
        let e = f
            .send(&f.keys, &alice, &f.request(&alice, "k-resend", "APP"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ApiError::KeyReused(m) if m.contains("k-resend") && m.contains("startConversation")),
            "{e:?}"
        );
        assert_eq!(f.runs(), 2);
        assert_eq!(f.events_of(&first.correlation_id).await.len(), 2);
    }

    async fn concurrent_sends_run_once<L: EventLog + Send + Sync + 'static>(f: &Arc<Fixture<L>>) {
        let alice = someone();
        let request = f.request(&alice, "k-race", "WEB");
        let elsewhere = f.keys.another_process();
        let sends: Vec<_> = (0..4)
            .map(|i| {
                let (f, alice, request) = (f.clone(), alice.clone(), request.clone());
                // Three here, one as another server on the same store.
                let keys = if i == 3 {
                    elsewhere.clone()
                } else {
                    f.keys.clone()
                };
                tokio::spawn(async move { f.send(&keys, &alice, &request).await.unwrap() })
            })
            .collect();
        let before = f.runs();
        let mut receipts = Vec::new();
        for s in sends {
            receipts.push(s.await.unwrap());
        }
        assert!(receipts.windows(2).all(|w| w[0] == w[1]), "{receipts:?}");
        assert_eq!(f.runs() - before, 1);
        assert_eq!(f.events_of(&receipts[0].correlation_id).await.len(), 2);
    }

    async fn a_crash_before_the_receipt_is_settled_from_the_log<
        L: EventLog + Send + Sync + 'static,
    >(
        f: &Fixture<L>,
    ) {
        let alice = someone();
        let request = f.request(&alice, "k-crash", "WEB");
        // A server reserves the key, runs the mutation, and dies before storing its receipt.
        let dead = f.keys.another_process();
        let correlation = dead.reserve_only(&request).await.expect("reserved");
        let ran = start(&f.desk, &alice, correlation).await.unwrap();
        let before = f.runs();
        // While its lease lasts, nobody else may run it; once it has run out, the resend reads
        // the log and answers what the dead server would have.
        f.lease.advance(LEASE);
        let resent = f.send(&f.keys, &alice, &request).await.unwrap();
        assert_eq!(resent, ran);
        assert_eq!(f.runs(), before, "the mutation ran a second time");
        assert_eq!(f.events_of(&ran.correlation_id).await.len(), 2);
        // Settled for good: the next resend answers from the table.
        assert_eq!(f.send(&f.keys, &alice, &request).await.unwrap(), ran);
        assert_eq!(f.runs(), before);

        // A server that died after the customer's profile and before the conversation: the
        // resend finishes the operation under the same correlation id, once.
        let bob = someone();
        let request = f.request(&bob, "k-half", "WEB");
        let correlation = dead.reserve_only(&request).await.expect("reserved");
        let meta = Metadata::for_request(Actor::new(ActorKind::Customer, bob.clone()), correlation);
        f.desk
            .record_customer_profile(
                CustomerId::from_uuid(bob.parse().unwrap()),
                CustomerTier::Regular,
                Locale::new("zh-CN"),
                &meta,
            )
            .await
            .unwrap();
        f.lease.advance(LEASE);
        let finished = f.send(&f.keys, &bob, &request).await.unwrap();
        assert_eq!(finished.correlation_id, correlation.to_string());
        assert_eq!(f.runs(), before + 1);
        let written = f.events_of(&finished.correlation_id).await;
        assert_eq!(
            written
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["CustomerProfileRecorded", "ConversationStarted"]
        );

        // A mutation whose store answered "unavailable" after committing: the outcome was
        // unknown, so the key was kept, and the resend finds the events.
        let carol = someone();
        let request = f.request(&carol, "k-unknown", "WEB");
        let (desk, who) = (f.desk.clone(), carol.clone());
        let e = f
            .keys
            .once(&*f.log, &request, &START, move |correlation| async move {
                start(&desk, &who, correlation).await?;
                Err(ApiError::Unavailable(
                    "the store did not answer in time".into(),
                ))
            })
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Unavailable(_)));
        let before = f.runs();
        let settled = f.send(&f.keys, &carol, &request).await.unwrap();
        assert_eq!(f.runs(), before);
        assert_eq!(f.events_of(&settled.correlation_id).await.len(), 2);
    }

    async fn a_refused_request_frees_its_key<L: EventLog + Send + Sync + 'static>(f: &Fixture<L>) {
        let alice = someone();
        let e = f
            .keys
            .once(
                &*f.log,
                &f.request(&alice, "k-refused", "PROBE"),
                &START,
                |_| async { Err(ApiError::Validation("channel: PROBE is kefu's own".into())) },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Validation(_)));
        // Corrected, the request runs under the same key.
        let request = f.request(&alice, "k-refused", "WEB");
        let before = f.runs();
        f.send(&f.keys, &alice, &request).await.unwrap();
        assert_eq!(f.runs(), before + 1);
    }

    async fn after_the_window_a_key_runs_again<L: EventLog + Send + Sync + 'static>(
        f: &Fixture<L>,
    ) {
        let alice = someone();
        let request = f.request(&alice, "k-window", "WEB");
        let first = f.send(&f.keys, &alice, &request).await.unwrap();
        f.window.advance(DAY);
        assert_eq!(f.send(&f.keys, &alice, &request).await.unwrap(), first);
        f.window.advance(Duration::from_millis(1));
        let before = f.runs();
        let later = f.send(&f.keys, &alice, &request).await.unwrap();
        assert_eq!(f.runs(), before + 1);
        assert_ne!(later.id, first.id);
        assert_ne!(later.correlation_id, first.correlation_id);
        // And the new run is the one a resend now answers.
        assert_eq!(f.send(&f.keys, &alice, &request).await.unwrap(), later);
    }

    async fn all<L: EventLog + Send + Sync + 'static>(f: Fixture<L>) {
        a_resend_answers_the_first_receipt(&f).await;
        a_crash_before_the_receipt_is_settled_from_the_log(&f).await;
        a_refused_request_frees_its_key(&f).await;
        let f = Arc::new(f);
        concurrent_sends_run_once(&f).await;
        after_the_window_a_key_runs_again(&f).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_on_the_embedded_store() {
        let dir = tempfile::tempdir().unwrap();
        let log = kefu_eventlog::sqlite::SqliteLog::open(kefu_eventlog::sqlite::SqliteConfig::new(
            dir.path().join("log.db"),
        ))
        .await
        .unwrap();
        let store = ReadStore::open_sqlite(&dir.path().join("read.db")).unwrap();
        all(Fixture::new(log, store).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_on_postgres() {
        use kefu_eventlog::testing;
        if !testing::available().await {
            return;
        }
        let schema = testing::fresh_schema();
        let log = kefu_eventlog::postgres::PostgresLog::open(
            kefu_eventlog::postgres::PostgresConfig::new(testing::url())
                .with_schema(schema.clone()),
        )
        .await
        .unwrap();
        let store = ReadStore::open_postgres(&testing::url(), Some(&schema))
            .await
            .unwrap();
        all(Fixture::new(log, store).await).await;
        testing::drop_schema(&schema).await;
    }
}
