//! The write-back cache a projection applies events to.
//!
//! Applying events one SQL statement at a time would cap a rebuild at the store's statement
//! rate; instead a batch of events is applied to rows in memory and the rows it changed are
//! written in one transaction together with the checkpoint. Before a batch the projection
//! names the rows it will read ([`KeyRequests`]); they are fetched in one query per table.
//! Rows it only writes (a ticket's history, deleted queue entries) need no fetch.
//!
//! A batch is 1000 events while catching up and one page when live (10,000 in a rebuild). The rows
//! it changed are written as multi-row upserts and deletes (on PostgreSQL one `unnest` statement of
//! column arrays per table), so a rebuild costs a few statements per thousand events instead of one
//! or more per event. Rows are cached as the projection wrote them (typed), changed in place
//! (`get_mut`), and converted to SQL values once per write; rows of tables the projection never
//! reads back leave the cache once stored. A row stays cached until the write that stores it has
//! landed (`trim` runs only then), so a batch applied while that write is in flight never reads the
//! row from the store. The deterministic simulation (`kefu_tests::sim`) holds a projection's whole
//! tables in memory with no store under them (`RowSet::hold_whole`).

use std::any::Any;
use std::collections::{HashMap, HashSet};

use crate::error::ProjectionError;
use crate::sql::{CHUNK, ColValues, ReadStore, Record, Stmt, TableDef, Val};

/// Most parameters one multi-row statement binds.
const MAX_PARAMS: usize = 8_000;
/// Clean rows kept between batches; past this the cache is emptied after a flush.
const CACHE_ROWS: usize = 100_000;

fn key_string(key: &[Val]) -> String {
    let mut out = String::new();
    for (i, v) in key.iter().enumerate() {
        if i > 0 {
            out.push('\u{1f}');
        }
        match v {
            Val::Null => out.push('\u{0}'),
            Val::Int(i) => out.push_str(&i.to_string()),
            Val::Real(f) => out.push_str(&f.to_string()),
            Val::Text(s) => out.push_str(s),
            Val::Column(c) => out.push_str(&format!("{c:?}")),
        }
    }
    out
}

/// A row as the cache holds it: as fetched (SQL values), or as the projection last wrote it
/// (its typed struct, converted to SQL values only when stored).
enum Row {
    Stored(Vec<Val>),
    Typed(Box<dyn TypedRow>),
}

trait TypedRow: Send + Sync {
    fn to_row(&self) -> Vec<Val>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<R: Record> TypedRow for R {
    fn to_row(&self) -> Vec<Val> {
        Record::to_row(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Row {
    fn values(&self) -> Vec<Val> {
        match self {
            Row::Stored(v) => v.clone(),
            Row::Typed(t) => t.to_row(),
        }
    }
}

struct Slot {
    key: Vec<Val>,
    row: Option<Row>,
    dirty: bool,
}

struct TableRows {
    def: &'static TableDef,
    stored_as: String,
    slots: HashMap<String, Slot>,
    /// Whether the projection ever reads this table back. Rows of tables it only writes
    /// (a ticket's history) are dropped once stored: keeping them would only crowd
    /// out the rows it does read.
    read: bool,
}

impl TableRows {
    /// Marks the rows of `keys` not held as known to be absent.
    fn absent_unless_held(&mut self, keys: Vec<Val>) {
        for key in keys {
            let k = key_string(std::slice::from_ref(&key));
            self.slots.entry(k).or_insert(Slot {
                key: vec![key],
                row: None,
                dirty: false,
            });
        }
    }
}

fn unrequested<R: Record>(key: &[Val]) -> ProjectionError {
    ProjectionError::Bug(format!(
        "{} row {key:?} read without being requested",
        R::TABLE.name
    ))
}

/// The rows of one projection generation, cached.
pub struct RowSet {
    tables: HashMap<&'static str, TableRows>,
}

impl RowSet {
    /// `prefix` is the generation's table prefix, e.g. `stats_g2_`.
    pub fn new(prefix: &str, defs: &[&'static TableDef]) -> Self {
        let tables = defs
            .iter()
            .map(|def| {
                (
                    def.name,
                    TableRows {
                        def,
                        stored_as: format!("{prefix}{}", def.name),
                        slots: HashMap::new(),
                        read: false,
                    },
                )
            })
            .collect();
        RowSet { tables }
    }

    fn table(&self, def: &TableDef) -> Result<&TableRows, ProjectionError> {
        self.tables
            .get(def.name)
            .ok_or_else(|| ProjectionError::Bug(format!("table {} is not declared", def.name)))
    }

    fn table_mut(&mut self, def: &TableDef) -> Result<&mut TableRows, ProjectionError> {
        self.tables
            .get_mut(def.name)
            .ok_or_else(|| ProjectionError::Bug(format!("table {} is not declared", def.name)))
    }

    /// The row of `R` with this key, or None if the store has none. The key must have been
    /// requested before the batch (or written during it).
    pub fn get<R: Record>(&self, key: &[Val]) -> Result<Option<R>, ProjectionError> {
        let table = self.table(&R::TABLE)?;
        let slot = table
            .slots
            .get(&key_string(key))
            .ok_or_else(|| unrequested::<R>(key))?;
        match &slot.row {
            None => Ok(None),
            Some(Row::Stored(values)) => R::from_row(values.clone())
                .map(Some)
                .map_err(ProjectionError::Bug),
            Some(Row::Typed(typed)) => typed
                .as_any()
                .downcast_ref::<R>()
                .cloned()
                .map(Some)
                .ok_or_else(|| {
                    ProjectionError::Bug(format!("{} row of another type", R::TABLE.name))
                }),
        }
    }

    /// The row of `R` with this key, to change in place, or None if the store has none; the
    /// row is marked changed. Requested like [`RowSet::get`]. Changing a row where it lies
    /// spares a copy of the row per event (a row is a dozen strings), which `get` and `put`
    /// make.
    pub fn get_mut<R: Record>(&mut self, key: &[Val]) -> Result<Option<&mut R>, ProjectionError> {
        let slot = self
            .table_mut(&R::TABLE)?
            .slots
            .get_mut(&key_string(key))
            .ok_or_else(|| unrequested::<R>(key))?;
        if let Some(Row::Stored(values)) = &mut slot.row {
            let typed = R::from_row(std::mem::take(values)).map_err(ProjectionError::Bug)?;
            slot.row = Some(Row::Typed(Box::new(typed)));
        }
        let Some(Row::Typed(typed)) = &mut slot.row else {
            return Ok(None);
        };
        slot.dirty = true;
        typed
            .as_any_mut()
            .downcast_mut::<R>()
            .map(Some)
            .ok_or_else(|| ProjectionError::Bug(format!("{} row of another type", R::TABLE.name)))
    }

    /// Writes the whole row.
    pub fn put<R: Record>(&mut self, row: R) -> Result<(), ProjectionError> {
        let key = row.key();
        self.set(&R::TABLE, key, Some(Row::Typed(Box::new(row))))
    }

    pub fn delete<R: Record>(&mut self, key: Vec<Val>) -> Result<(), ProjectionError> {
        self.set(&R::TABLE, key, None)
    }

    fn set(
        &mut self,
        def: &TableDef,
        key: Vec<Val>,
        row: Option<Row>,
    ) -> Result<(), ProjectionError> {
        let table = self.table_mut(def)?;
        table.slots.insert(
            key_string(&key),
            Slot {
                key,
                row,
                dirty: true,
            },
        );
        Ok(())
    }

    /// Fetches the requested rows that are not cached yet.
    pub async fn fetch(
        &mut self,
        store: &ReadStore,
        requests: KeyRequests,
    ) -> Result<(), ProjectionError> {
        for (name, keys) in requests.wanted {
            let Some(table) = self.tables.get_mut(name) else {
                return Err(ProjectionError::Bug(format!(
                    "table {name} is not declared"
                )));
            };
            table.read = true;
            let missing: Vec<Val> = keys
                .into_iter()
                .filter(|k| {
                    !table
                        .slots
                        .contains_key(&key_string(std::slice::from_ref(k)))
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let found = store
                .fetch_by_keys(&table.stored_as, table.def, missing.clone())
                .await?;
            for row in found {
                let key = row[..table.def.key_len].to_vec();
                table.slots.insert(
                    key_string(&key),
                    Slot {
                        key,
                        row: Some(Row::Stored(row)),
                        dirty: false,
                    },
                );
            }
            table.absent_unless_held(missing);
        }
        Ok(())
    }

    /// Marks the requested rows not held as absent, without asking a store: for a row set
    /// that holds the whole of its tables (a read model kept in memory and never trimmed, as
    /// the simulation of the desk keeps the queues), where a row not held does not exist.
    pub fn hold_whole(&mut self, requests: KeyRequests) -> Result<(), ProjectionError> {
        for (name, keys) in requests.wanted {
            let Some(table) = self.tables.get_mut(name) else {
                return Err(ProjectionError::Bug(format!(
                    "table {name} is not declared"
                )));
            };
            table.read = true;
            table.absent_unless_held(keys);
        }
        Ok(())
    }

    /// Forgets the rows deleted so far. Only for a row set kept whole with no store under it
    /// (nothing to write the deletions to): a whole table otherwise keeps a slot for every row
    /// it ever deleted, and a long-running read model in memory (the what-if replay's queues,
    /// where every chat that ever waited was once a row) would walk them all on each read. A
    /// forgotten key is requested again, and known absent, before the projection next reads it.
    pub fn forget_deleted(&mut self) {
        for table in self.tables.values_mut() {
            table.slots.retain(|_, slot| slot.row.is_some());
        }
    }

    /// Every row of `R` held, in key order: the whole table for a row set kept whole (see
    /// [`RowSet::hold_whole`]).
    pub fn rows<R: Record>(&self) -> Result<Vec<R>, ProjectionError> {
        let table = self.table(&R::TABLE)?;
        // Deleted rows keep their slots (known absent) until forgotten: sort only the live.
        let mut held: Vec<(&String, &Row)> = table
            .slots
            .iter()
            .filter_map(|(k, slot)| slot.row.as_ref().map(|row| (k, row)))
            .collect();
        held.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(held.len());
        for (_, row) in held {
            match row {
                Row::Stored(values) => {
                    out.push(R::from_row(values.clone()).map_err(ProjectionError::Bug)?)
                }
                Row::Typed(typed) => {
                    out.push(typed.as_any().downcast_ref::<R>().cloned().ok_or_else(|| {
                        ProjectionError::Bug(format!("{} row of another type", R::TABLE.name))
                    })?)
                }
            }
        }
        Ok(out)
    }

    /// The statements that write every changed row; marks them clean. On PostgreSQL each
    /// table's rows go as one statement of column arrays (`unnest`), whatever their number:
    /// one text to parse and plan instead of one per batch size.
    pub fn take_changes(&mut self, postgres: bool) -> Vec<Stmt> {
        let mut stmts = Vec::new();
        let mut names: Vec<&'static str> = self.tables.keys().copied().collect();
        names.sort();
        for name in names {
            let Some(table) = self.tables.get_mut(name) else {
                continue;
            };
            let def = table.def;
            let mut upserts = Vec::new();
            let mut deletes = Vec::new();
            // Copied, never moved out, even for a table the projection has not read back
            // (yet): a row stays cached until the write that stores it has landed (`trim`),
            // because a batch applied while that write is in flight must find it here, not
            // in the store.
            for slot in table.slots.values_mut().filter(|s| s.dirty) {
                slot.dirty = false;
                match &slot.row {
                    Some(row) => upserts.push(row.values()),
                    None => deletes.push(slot.key.clone()),
                }
            }
            if postgres {
                if !deletes.is_empty() {
                    stmts.extend(pg_delete_stmts(&table.stored_as, def, deletes));
                }
                for chunk in upserts.chunks_mut(PG_ROWS) {
                    stmts.push(pg_upsert_stmt(&table.stored_as, def, chunk));
                }
                continue;
            }
            stmts.extend(
                deletes
                    .into_iter()
                    .map(|key| delete_stmt(&table.stored_as, def, key)),
            );
            let per_stmt = (MAX_PARAMS / def.columns.len()).clamp(1, CHUNK);
            for chunk in upserts.chunks(per_stmt) {
                stmts.push(upsert_stmt(&table.stored_as, def, chunk));
            }
        }
        stmts
    }

    /// Forgets the rows of tables the projection does not read back, and every clean row
    /// once the cache is large. Call only once the rows taken by `take_changes` are stored.
    pub fn trim(&mut self) {
        for table in self.tables.values_mut().filter(|t| !t.read) {
            table.slots.retain(|_, s| s.dirty);
        }
        let total: usize = self.tables.values().map(|t| t.slots.len()).sum();
        if total > CACHE_ROWS {
            for table in self.tables.values_mut() {
                table.slots.retain(|_, s| s.dirty);
            }
        }
    }

    /// Drops everything cached, written or not: after a failed flush the store is the truth.
    pub fn clear(&mut self) {
        for table in self.tables.values_mut() {
            table.slots.clear();
        }
    }
}

fn delete_stmt(table: &str, def: &TableDef, key: Vec<Val>) -> Stmt {
    let cond: Vec<String> = def
        .key_columns()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    Stmt::new(
        format!("DELETE FROM {table} WHERE {}", cond.join(" AND ")),
        key,
    )
}

/// Rows per `unnest` statement: bounds one message to a few megabytes.
const PG_ROWS: usize = 5_000;

fn on_conflict(def: &TableDef) -> String {
    let key: Vec<&str> = def.key_columns().collect();
    let cols: Vec<&str> = def.column_names().collect();
    let updates: Vec<String> = cols[def.key_len..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    if updates.is_empty() {
        format!("ON CONFLICT ({}) DO NOTHING", key.join(", "))
    } else {
        format!(
            "ON CONFLICT ({}) DO UPDATE SET {}",
            key.join(", "),
            updates.join(", ")
        )
    }
}

fn pg_upsert_stmt(table: &str, def: &TableDef, rows: &mut [Vec<Val>]) -> Stmt {
    let cols: Vec<&str> = def.column_names().collect();
    let arrays: Vec<String> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty, _))| format!("${}::{}[]", i + 1, ty.sql()))
        .collect();
    let params = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, ty, _))| Val::Column(ColValues::take(rows, i, *ty)))
        .collect();
    Stmt::new(
        format!(
            "INSERT INTO {table} ({}) SELECT * FROM unnest({}) {}",
            cols.join(", "),
            arrays.join(", "),
            on_conflict(def)
        ),
        params,
    )
}

fn pg_delete_stmts(table: &str, def: &TableDef, keys: Vec<Vec<Val>>) -> Vec<Stmt> {
    if def.key_len != 1 {
        return keys
            .into_iter()
            .map(|key| delete_stmt(table, def, key))
            .collect();
    }
    let (name, ty, _) = def.columns[0];
    vec![Stmt::new(
        format!("DELETE FROM {table} WHERE {name} = ANY($1::{}[])", ty.sql()),
        vec![Val::Column(ColValues::of(&keys, 0, ty))],
    )]
}

fn upsert_stmt(table: &str, def: &TableDef, rows: &[Vec<Val>]) -> Stmt {
    let cols: Vec<&str> = def.column_names().collect();
    let width = cols.len();
    let mut values = Vec::with_capacity(rows.len());
    let mut params = Vec::with_capacity(rows.len() * width);
    for (r, row) in rows.iter().enumerate() {
        let marks: Vec<String> = (0..width)
            .map(|c| format!("${}", r * width + c + 1))
            .collect();
        values.push(format!("({})", marks.join(", ")));
        params.extend(row.iter().cloned());
    }
    Stmt::new(
        format!(
            "INSERT INTO {table} ({}) VALUES {} {}",
            cols.join(", "),
            values.join(", "),
            on_conflict(def)
        ),
        params,
    )
}

/// The rows a batch will read, by table; single-column keys only.
#[derive(Default)]
pub struct KeyRequests {
    wanted: HashMap<&'static str, Vec<Val>>,
    seen: HashSet<(&'static str, String)>,
}

impl KeyRequests {
    pub fn want<R: Record>(&mut self, key: impl Into<Val>) {
        let key = key.into();
        let name = R::TABLE.name;
        if self
            .seen
            .insert((name, key_string(std::slice::from_ref(&key))))
        {
            self.wanted.entry(name).or_default().push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queues::AgentRow;

    fn agent(id: &str, name: &str) -> AgentRow {
        AgentRow {
            id: id.into(),
            name: name.into(),
            skills: "[]".into(),
            max_concurrent: 1,
            status: "online".into(),
            status_since: 0,
            active: 0,
            retired: false,
        }
    }

    fn whole() -> RowSet {
        RowSet::new("", &[&AgentRow::TABLE])
    }

    fn want(rows: &mut RowSet, ids: &[&str]) {
        let mut want = KeyRequests::default();
        for id in ids {
            want.want::<AgentRow>(*id);
        }
        rows.hold_whole(want).unwrap();
    }

    #[test]
    fn a_whole_table_lists_its_live_rows_in_key_order_and_forgets_the_deleted() {
        let mut rows = whole();
        want(&mut rows, &["b", "a", "c"]);
        for (id, name) in [("b", "Bo"), ("a", "An"), ("c", "Cy")] {
            rows.put(agent(id, name)).unwrap();
        }
        rows.delete::<AgentRow>(vec![Val::from("b")]).unwrap();
        let ids = |rows: &RowSet| -> Vec<String> {
            rows.rows::<AgentRow>()
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids(&rows), ["a", "c"]);
        assert_eq!(rows.get::<AgentRow>(&[Val::from("b")]).unwrap(), None);
        rows.forget_deleted();
        assert_eq!(ids(&rows), ["a", "c"], "the live rows stay");
        assert!(
            rows.get::<AgentRow>(&[Val::from("b")]).is_err(),
            "a forgotten key is no longer held"
        );
        // Requested again, it is known absent, and can come back.
        want(&mut rows, &["b"]);
        assert_eq!(rows.get::<AgentRow>(&[Val::from("b")]).unwrap(), None);
        rows.put(agent("b", "Bo")).unwrap();
        assert_eq!(ids(&rows), ["a", "b", "c"]);
    }
}
