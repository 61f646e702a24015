//! The read-model store: the same tables on PostgreSQL (production) and SQLite (the embedded
//! default), behind one small interface.
//!
//! Projections speak a deliberately narrow SQL: three column types (`BIGINT`, `DOUBLE
//! PRECISION`, `TEXT`), `$n` placeholders, `INSERT … ON CONFLICT … DO UPDATE`, and explicit
//! `CAST`s around aggregates. Both engines accept all of it unchanged except the placeholder
//! spelling, which [`ReadStore`] rewrites for SQLite. Times are milliseconds since the Unix
//! epoch (UTC) in `BIGINT` columns, so day buckets are integer division on both engines;
//! flags are 0/1; lists and nested values are JSON text.
//!
//! The `record!` macro declares a row struct with its table and its conversions, so a table is
//! written once for both engines.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use kefu_eventlog::storage::{self, Target};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// One SQL value, as both engines store it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// A whole column of a batch, for PostgreSQL's `unnest` (never sent to SQLite).
    Column(ColValues),
}

/// One column of many rows, typed for PostgreSQL arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum ColValues {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl ColValues {
    /// The column `c` of `rows`, as `ty`, moved out of the rows (left `Null`).
    pub fn take(rows: &mut [Vec<Val>], c: usize, ty: ColType) -> Self {
        let take = |r: &mut Vec<Val>| std::mem::replace(&mut r[c], Val::Null);
        match ty {
            ColType::Int => ColValues::Int(rows.iter_mut().map(|r| take(r).as_i64()).collect()),
            ColType::Real => ColValues::Real(rows.iter_mut().map(|r| take(r).as_f64()).collect()),
            ColType::Text => ColValues::Text(
                rows.iter_mut()
                    .map(|r| match take(r) {
                        Val::Text(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }

    /// The column `c` of `rows`, as `ty`.
    pub fn of(rows: &[Vec<Val>], c: usize, ty: ColType) -> Self {
        match ty {
            ColType::Int => ColValues::Int(rows.iter().map(|r| r[c].as_i64()).collect()),
            ColType::Real => ColValues::Real(rows.iter().map(|r| r[c].as_f64()).collect()),
            ColType::Text => ColValues::Text(
                rows.iter()
                    .map(|r| r[c].as_str().map(str::to_owned))
                    .collect(),
            ),
        }
    }
}

impl Val {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(v) => Some(*v),
            Val::Real(v) => Some(*v as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(v) => Some(*v as f64),
            Val::Real(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}

impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::Real(v)
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_owned())
    }
}

impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}

impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::Null, Into::into)
    }
}

/// The three column types read models use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int,
    Real,
    Text,
}

impl ColType {
    pub fn sql(self) -> &'static str {
        match self {
            ColType::Int => "BIGINT",
            ColType::Real => "DOUBLE PRECISION",
            ColType::Text => "TEXT",
        }
    }
}

/// Whether a column or field holds a time, by kefu's naming of them: `at`, `time`, `since`,
/// `*_at`, `*_due`, `*_since` (read models keep times as epoch milliseconds). The analysts'
/// views and `kefu query`'s output both go by it.
pub fn is_time_column(name: &str) -> bool {
    matches!(name, "at" | "time" | "since")
        || name.ends_with("_at")
        || name.ends_with("_due")
        || name.ends_with("_since")
}

/// A Rust type that maps onto one column.
pub trait Column: Sized {
    const TYPE: ColType;
    const NULLABLE: bool = false;
    /// Stored as 0 or 1; shown as a boolean by the analysts' views.
    const IS_BOOL: bool = false;
    fn to_val(&self) -> Val;
    fn from_val(v: Val) -> Result<Self, String>;
    /// Like `to_val`, without copying what it owns.
    fn into_val(self) -> Val {
        self.to_val()
    }
}

impl Column for i64 {
    const TYPE: ColType = ColType::Int;
    fn to_val(&self) -> Val {
        Val::Int(*self)
    }
    fn from_val(v: Val) -> Result<Self, String> {
        v.as_i64()
            .ok_or_else(|| format!("expected an integer, found {v:?}"))
    }
}

impl Column for f64 {
    const TYPE: ColType = ColType::Real;
    fn to_val(&self) -> Val {
        Val::Real(*self)
    }
    fn from_val(v: Val) -> Result<Self, String> {
        v.as_f64()
            .ok_or_else(|| format!("expected a number, found {v:?}"))
    }
}

impl Column for bool {
    const TYPE: ColType = ColType::Int;
    const IS_BOOL: bool = true;
    fn to_val(&self) -> Val {
        Val::Int(i64::from(*self))
    }
    fn from_val(v: Val) -> Result<Self, String> {
        i64::from_val(v).map(|i| i != 0)
    }
}

impl Column for String {
    const TYPE: ColType = ColType::Text;
    fn to_val(&self) -> Val {
        Val::Text(self.clone())
    }
    fn into_val(self) -> Val {
        Val::Text(self)
    }
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl<T: Column> Column for Option<T> {
    const TYPE: ColType = T::TYPE;
    const NULLABLE: bool = true;
    const IS_BOOL: bool = T::IS_BOOL;
    fn to_val(&self) -> Val {
        self.as_ref().map_or(Val::Null, Column::to_val)
    }
    fn into_val(self) -> Val {
        self.map_or(Val::Null, Column::into_val)
    }
    fn from_val(v: Val) -> Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// A read-model table: its columns, its key, and the indexes queries need. The stored name is
/// `<projection>_g<generation>_<name>`, so a rebuilt copy can sit beside the live one.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColType, bool)],
    /// Per column, whether it holds a boolean (as 0 or 1).
    pub bools: &'static [bool],
    /// How many leading columns form the primary key.
    pub key_len: usize,
    /// Secondary indexes, each a list of columns.
    pub indexes: &'static [&'static [&'static str]],
}

impl TableDef {
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|c| c.0)
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns[..self.key_len].iter().map(|c| c.0)
    }

    /// The `CREATE TABLE` statement for the table stored as `full_name`.
    pub fn create_sql(&self, full_name: &str) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(name, ty, nullable)| {
                let null = if *nullable { "" } else { " NOT NULL" };
                format!("{name} {}{null}", ty.sql())
            })
            .collect();
        let key: Vec<&str> = self.key_columns().collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {full_name} ({}, PRIMARY KEY ({}))",
            cols.join(", "),
            key.join(", ")
        )
    }

    /// The `CREATE INDEX` statements of its secondary indexes. A rebuild creates them after
    /// loading, which costs far less than keeping them current row by row.
    pub fn index_sql(&self, full_name: &str) -> Vec<String> {
        self.indexes
            .iter()
            .enumerate()
            .map(|(i, index)| {
                format!(
                    "CREATE INDEX IF NOT EXISTS {full_name}_i{i} ON {full_name} ({})",
                    index.join(", ")
                )
            })
            .collect()
    }
}

/// A typed row of one table. Declare with [`record!`](crate::record).
pub trait Record: Sized + Clone + Send + Sync + 'static {
    const TABLE: TableDef;
    fn to_row(&self) -> Vec<Val>;
    /// Like `to_row`, without copying what the row owns.
    fn into_row(self) -> Vec<Val>;
    fn from_row(row: Vec<Val>) -> Result<Self, String>;
    /// The key, as the cache and the store's upserts know it.
    fn key(&self) -> Vec<Val>;
}

/// Declares a row struct, its table definition and its conversions. The first `key` fields
/// form the primary key.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:literal, key $key_len:literal {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),+ $(,)?
        }
        $(indexes: [ $( [ $( $icol:literal ),+ ] ),* ])?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        impl $crate::sql::Record for $name {
            const TABLE: $crate::sql::TableDef = $crate::sql::TableDef {
                name: $table,
                columns: &[ $( (
                    stringify!($field),
                    <$ty as $crate::sql::Column>::TYPE,
                    <$ty as $crate::sql::Column>::NULLABLE,
                ) ),+ ],
                bools: &[ $( <$ty as $crate::sql::Column>::IS_BOOL ),+ ],
                key_len: $key_len,
                indexes: &[ $( $( &[ $( $icol ),+ ] ),* )? ],
            };

            fn to_row(&self) -> Vec<$crate::sql::Val> {
                vec![ $( $crate::sql::Column::to_val(&self.$field) ),+ ]
            }

            fn into_row(self) -> Vec<$crate::sql::Val> {
                vec![ $( $crate::sql::Column::into_val(self.$field) ),+ ]
            }

            fn key(&self) -> Vec<$crate::sql::Val> {
                // Only the leading key fields, without converting the rest of the row.
                let mut key = Vec::with_capacity($key_len);
                $(
                    if key.len() < $key_len {
                        key.push($crate::sql::Column::to_val(&self.$field));
                    }
                )+
                key
            }

            fn from_row(row: Vec<$crate::sql::Val>) -> Result<Self, String> {
                let mut values = row.into_iter();
                Ok($name {
                    $( $field: <$ty as $crate::sql::Column>::from_val(
                        values.next().unwrap_or($crate::sql::Val::Null),
                    ).map_err(|e| format!("{}.{}: {e}", $table, stringify!($field)))?, )+
                })
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read-model store ({backend}): {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    /// A guarded statement changed a different number of rows than it required: another
    /// writer got there first. Nothing of the transaction was written.
    #[error("{what}")]
    Guard { what: String },
    #[error("read-model store configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] kefu_eventlog::storage::StorageProblem),
}

impl StoreError {
    fn pg(e: impl fmt::Display) -> Self {
        StoreError::Backend {
            backend: "postgres",
            message: e.to_string(),
        }
    }

    fn sqlite(e: impl fmt::Display) -> Self {
        StoreError::Backend {
            backend: "sqlite",
            message: e.to_string(),
        }
    }
}

// tokio-postgres says only "db error" in its Display; the server's own words are in the source.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend {
            backend: "postgres",
            message: format!("{} ({})", db.message(), db.code().code()),
        },
        None => StoreError::pg(e),
    }
}

/// One statement of a transaction.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Val>,
    /// When set, the transaction is rolled back unless the statement changed exactly this many
    /// rows; the message names what was expected.
    pub guard: Option<(u64, String)>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, params: Vec<Val>) -> Self {
        Stmt {
            sql: sql.into(),
            params,
            guard: None,
        }
    }

    pub fn guarded(mut self, rows: u64, what: impl Into<String>) -> Self {
        self.guard = Some((rows, what.into()));
        self
    }
}

/// Where read models live.
#[derive(Debug, Clone)]
pub enum ReadStoreConfig {
    Sqlite(PathBuf),
    Postgres { url: String, schema: Option<String> },
}

/// The read-model store. Cheap to clone.
#[derive(Clone)]
pub enum ReadStore {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(Pool),
}

impl ReadStore {
    pub async fn open(config: &ReadStoreConfig) -> Result<Self, StoreError> {
        match config {
            ReadStoreConfig::Sqlite(path) => Self::open_sqlite(path),
            ReadStoreConfig::Postgres { url, schema } => {
                Self::open_postgres(url, schema.as_deref()).await
            }
        }
    }

    pub fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let opened = (|| -> Result<rusqlite::Connection, StoreError> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let conn = rusqlite::Connection::open(path).map_err(StoreError::sqlite)?;
            // Read models are rebuilt from the log, and each commit carries its checkpoint, so
            // a commit lost in a power cut is replayed, never half-applied: NORMAL is enough.
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
            )
            .map_err(StoreError::sqlite)?;
            Ok(conn)
        })();
        // SQLite's words name neither the path nor the reason; the directory can tell.
        let conn = opened.map_err(|e| storage::explain(path, Target::File, e))?;
        Ok(ReadStore::Sqlite(Arc::new(Mutex::new(conn))))
    }

    pub async fn open_postgres(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let pool = kefu_eventlog::postgres::connect_pool(url, schema, &[], 8, "kefu-projections")
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let store = ReadStore::Postgres(pool);
        if let Some(schema) = schema {
            store
                .transaction(vec![Stmt::new(
                    format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
                    vec![],
                )])
                .await?;
        }
        Ok(store)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, ReadStore::Postgres(_))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            ReadStore::Sqlite(_) => "sqlite",
            ReadStore::Postgres(_) => "postgres",
        }
    }

    /// Runs `stmts` in one transaction: all of them or none.
    pub async fn transaction(&self, stmts: Vec<Stmt>) -> Result<(), StoreError> {
        match self {
            ReadStore::Sqlite(conn) => {
                let conn = conn.clone();
                blocking(move || {
                    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(StoreError::sqlite)?;
                    for stmt in &stmts {
                        let sql = sqlite_placeholders(&stmt.sql);
                        let changed = {
                            let mut prepared =
                                tx.prepare_cached(&sql).map_err(StoreError::sqlite)?;
                            prepared
                                .execute(rusqlite::params_from_iter(stmt.params.iter()))
                                .map_err(|e| StoreError::sqlite(format!("{e} in: {sql}")))?
                        };
                        check_guard(stmt, changed as u64)?;
                    }
                    tx.commit().map_err(StoreError::sqlite)
                })
                .await
            }
            ReadStore::Postgres(pool) => {
                let mut client = pool.get().await.map_err(StoreError::pg)?;
                let tx = client.transaction().await.map_err(pg_error)?;
                for stmt in &stmts {
                    let params: Vec<&(dyn ToSql + Sync)> = stmt
                        .params
                        .iter()
                        .map(|v| v as &(dyn ToSql + Sync))
                        .collect();
                    let changed = if params.is_empty() {
                        tx.batch_execute(&stmt.sql).await.map_err(pg_error)?;
                        0
                    } else {
                        let prepared = tx.prepare_cached(&stmt.sql).await.map_err(pg_error)?;
                        tx.execute(&prepared, &params).await.map_err(pg_error)?
                    };
                    if stmt.guard.is_some() && params.is_empty() {
                        return Err(StoreError::Config(
                            "a guarded statement needs parameters".into(),
                        ));
                    }
                    check_guard(stmt, changed)?;
                }
                tx.commit().await.map_err(pg_error)
            }
        }
    }

    /// Runs one query and returns its rows.
    pub async fn query(&self, sql: &str, params: Vec<Val>) -> Result<Vec<Vec<Val>>, StoreError> {
        match self {
            ReadStore::Sqlite(conn) => {
                let conn = conn.clone();
                let sql = sqlite_placeholders(sql);
                blocking(move || {
                    let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    let mut prepared = conn
                        .prepare_cached(&sql)
                        .map_err(|e| StoreError::sqlite(format!("{e} in: {sql}")))?;
                    let width = prepared.column_count();
                    let mut rows = prepared
                        .query(rusqlite::params_from_iter(params.iter()))
                        .map_err(StoreError::sqlite)?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next().map_err(StoreError::sqlite)? {
                        let mut values = Vec::with_capacity(width);
                        for i in 0..width {
                            values.push(sqlite_value(row.get_ref(i).map_err(StoreError::sqlite)?)?);
                        }
                        out.push(values);
                    }
                    Ok(out)
                })
                .await
            }
            ReadStore::Postgres(pool) => {
                let client = pool.get().await.map_err(StoreError::pg)?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let prepared = client.prepare_cached(sql).await.map_err(pg_error)?;
                let rows = client.query(&prepared, &params).await.map_err(pg_error)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Typed rows of `R`'s table (stored as `table`) whose single-column key is one of `keys`.
    pub async fn fetch_by_keys(
        &self,
        table: &str,
        def: &TableDef,
        keys: Vec<Val>,
    ) -> Result<Vec<Vec<Val>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let cols: Vec<&str> = def.column_names().collect();
        let key = def.columns[0].0;
        if self.is_postgres() {
            let sql = format!(
                "SELECT {} FROM {table} WHERE {key} = ANY($1::{}[])",
                cols.join(", "),
                def.columns[0].1.sql()
            );
            let keys: Vec<Vec<Val>> = keys.into_iter().map(|k| vec![k]).collect();
            let column = ColValues::of(&keys, 0, def.columns[0].1);
            return self.query(&sql, vec![Val::Column(column)]).await;
        }
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {} FROM {table} WHERE {key} IN ({})",
                cols.join(", "),
                marks.join(", ")
            );
            out.extend(self.query(&sql, chunk.to_vec()).await?);
        }
        Ok(out)
    }

    /// Whether a table of this name exists in the store.
    pub async fn table_exists(&self, table: &str) -> Result<bool, StoreError> {
        let rows = match self {
            ReadStore::Sqlite(_) => {
                self.query(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                    vec![table.into()],
                )
                .await?
            }
            ReadStore::Postgres(_) => {
                self.query(
                    "SELECT count(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = $1",
                    vec![table.into()],
                )
                .await?
            }
        };
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .and_then(Val::as_i64)
            .unwrap_or(0)
            > 0)
    }
}

/// Rows per multi-row statement: far below both engines' parameter limits for our widths.
pub(crate) const CHUNK: usize = 400;

fn check_guard(stmt: &Stmt, changed: u64) -> Result<(), StoreError> {
    match &stmt.guard {
        Some((want, what)) if *want != changed => Err(StoreError::Guard { what: what.clone() }),
        _ => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::sqlite(format!("worker thread failed: {e}")))?
}

/// `$1` → `?1`: SQLite reads `$1` as a named parameter, numbered by first appearance, which
/// would bind the wrong value whenever a statement uses its parameters out of order.
fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Result<Val, StoreError> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Val::Null,
        ValueRef::Integer(i) => Val::Int(i),
        ValueRef::Real(f) => Val::Real(f),
        ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => return Err(StoreError::sqlite("read models hold no blobs")),
    })
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Vec<Val>, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_();
        let v = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i).map(|v| v.map(Val::Int))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|v| Val::Int(i64::from(v))))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)
                .map(|v| v.map(|v| Val::Int(i64::from(v))))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i).map(|v| v.map(Val::Real))
        } else if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)
                .map(|v| v.map(|v| Val::Real(f64::from(v))))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
            row.try_get::<_, Option<String>>(i)
                .map(|v| v.map(Val::Text))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map(|v| v.map(|b| Val::Int(i64::from(b))))
        } else {
            return Err(StoreError::Backend {
                backend: "postgres",
                message: format!(
                    "column {} has type {ty}, which read models do not use (CAST it)",
                    col.name()
                ),
            });
        };
        out.push(v.map_err(pg_error)?.unwrap_or(Val::Null));
    }
    Ok(out)
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Column(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "column arrays are for PostgreSQL only".into(),
                ));
            }
        })
    }
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Val::Int(i) if *ty == Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            Val::Int(i) if *ty == Type::FLOAT8 => (*i as f64).to_sql(ty, out),
            Val::Int(i) => i.to_sql(ty, out),
            Val::Real(f) => f.to_sql(ty, out),
            Val::Text(s) => s.to_sql(ty, out),
            Val::Column(ColValues::Int(v)) => v.to_sql(ty, out),
            Val::Column(ColValues::Real(v)) => v.to_sql(ty, out),
            Val::Column(ColValues::Text(v)) => v.to_sql(ty, out),
        }
    }

    // Every variant says for itself whether it fits; a mismatch is the server's error, named.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_sqlite() {
        assert_eq!(
            sqlite_placeholders("SELECT a FROM t WHERE b = $2 AND c = $1 AND d = '$'"),
            "SELECT a FROM t WHERE b = ?2 AND c = ?1 AND d = '$'"
        );
    }
}
