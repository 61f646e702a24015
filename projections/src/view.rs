//! Reading read models: [`ReadModels`] finds the generation to read (the live one, or an
//! as-of build an analyst asked for) and hands out a [`View`] over its tables.
//!
//! Listings page newest first with `<time>:<id>` cursors.

use chrono::{DateTime, Utc};
use kefu_domain::common::BusinessLine;
use serde::Serialize;

use crate::error::ProjectionError;
use crate::runner::{Catalog, GenState, Generation};
use crate::sql::{ReadStore, Record, Val};

/// Most rows one listing returns.
pub const MAX_LIMIT: usize = 500;

/// The entry point for queries.
#[derive(Clone)]
pub struct ReadModels {
    catalog: Catalog,
}

impl ReadModels {
    pub async fn open(store: ReadStore) -> Result<Self, ProjectionError> {
        Ok(ReadModels {
            catalog: Catalog::open(store).await?,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The live generation of `projection`.
    pub async fn live(&self, projection: &str) -> Result<View, ProjectionError> {
        let generation =
            self.catalog
                .live(projection)
                .await?
                .ok_or_else(|| ProjectionError::NotBuilt {
                    projection: projection.to_owned(),
                })?;
        Ok(self.view(generation))
    }

    /// A given generation (an as-of build, or the live one by number).
    pub async fn generation(
        &self,
        projection: &str,
        generation: i64,
    ) -> Result<View, ProjectionError> {
        let g = self.catalog.get(projection, generation).await?;
        if g.state == GenState::Retired {
            return Err(ProjectionError::UnknownGeneration {
                projection: projection.to_owned(),
                generation,
            });
        }
        Ok(self.view(g))
    }

    /// The live generation, or `generation` when given.
    pub async fn pick(
        &self,
        projection: &str,
        generation: Option<i64>,
    ) -> Result<View, ProjectionError> {
        match generation {
            Some(g) => self.generation(projection, g).await,
            None => self.live(projection).await,
        }
    }

    fn view(&self, generation: Generation) -> View {
        View {
            store: self.catalog.store().clone(),
            generation,
        }
    }
}

/// One generation of one projection, for reading.
#[derive(Clone)]
pub struct View {
    pub(crate) store: ReadStore,
    pub generation: Generation,
}

impl View {
    /// Rows of `R` selected by `rest` (a `WHERE … ORDER BY … LIMIT …` tail).
    pub(crate) async fn select<R: Record>(
        &self,
        rest: &str,
        params: Vec<Val>,
    ) -> Result<Vec<R>, ProjectionError> {
        let cols: Vec<&str> = R::TABLE.column_names().collect();
        let sql = format!(
            "SELECT {} FROM {} {rest}",
            cols.join(", "),
            self.generation.table(&R::TABLE)
        );
        self.store
            .query(&sql, params)
            .await?
            .into_iter()
            .map(|row| R::from_row(row).map_err(ProjectionError::Bug))
            .collect()
    }

    pub(crate) async fn rows(
        &self,
        sql: &str,
        params: Vec<Val>,
    ) -> Result<Vec<Vec<Val>>, ProjectionError> {
        Ok(self.store.query(sql, params).await?)
    }

    pub(crate) fn table<R: Record>(&self) -> String {
        self.generation.table(&R::TABLE)
    }

    /// Every row of every table, sorted: for comparing two generations in tests and drills.
    pub async fn dump(
        &self,
        tables: &[&crate::sql::TableDef],
    ) -> Result<Vec<String>, ProjectionError> {
        let mut out = Vec::new();
        for def in tables {
            let cols: Vec<&str> = def.column_names().collect();
            let rows = self
                .store
                .query(
                    &format!(
                        "SELECT {} FROM {}",
                        cols.join(", "),
                        self.generation.table(def)
                    ),
                    vec![],
                )
                .await?;
            let mut lines: Vec<String> = rows
                .into_iter()
                .map(|r| format!("{} {r:?}", def.name))
                .collect();
            lines.sort();
            out.extend(lines);
        }
        Ok(out)
    }
}

/// The conditions of a listing, with their parameters numbered as they are added.
#[derive(Default)]
pub(crate) struct Listing {
    cond: Vec<String>,
    params: Vec<Val>,
}

impl Listing {
    pub(crate) fn eq(&mut self, col: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.params.push(v.clone().into());
            self.cond.push(format!("{col} = ${}", self.params.len()));
        }
    }

    /// Rows where any of `cols` holds one of `values` (none when `values` is empty).
    pub(crate) fn any_in(&mut self, cols: &[&str], values: &Option<Vec<String>>) {
        let Some(values) = values else {
            return;
        };
        if values.is_empty() {
            self.cond.push("1 = 0".into());
            return;
        }
        let mut any = Vec::new();
        for col in cols {
            let mut slots = Vec::new();
            for v in values {
                self.params.push(v.clone().into());
                slots.push(format!("${}", self.params.len()));
            }
            any.push(format!("{col} IN ({})", slots.join(", ")));
        }
        self.cond.push(format!("({})", any.join(" OR ")));
    }

    pub(crate) fn cmp(&mut self, col: &str, op: &str, v: Option<i64>) {
        if let Some(v) = v {
            self.params.push(v.into());
            self.cond.push(format!("{col} {op} ${}", self.params.len()));
        }
    }
}

impl View {
    /// Rows of `R` newest first by `time_col` (ties by id), after the cursor `after`
    /// (`<time>:<id>` of the last row of the previous page).
    pub(crate) async fn newest_first<R: Record>(
        &self,
        mut q: Listing,
        time_col: &str,
        after: Option<&str>,
        limit: usize,
        cursor_of: impl Fn(&R) -> (i64, String),
    ) -> Result<Page<R>, ProjectionError> {
        let limit = check_limit(limit)?;
        if let Some(cursor) = after {
            let (at, id) = parse_cursor(cursor)?;
            q.params.push(at.into());
            let a = q.params.len();
            q.params.push(id.into());
            let b = q.params.len();
            q.cond.push(format!(
                "({time_col} < ${a} OR ({time_col} = ${a} AND id < ${b}))"
            ));
        }
        q.params.push((limit as i64 + 1).into());
        let sql = format!(
            "{} ORDER BY {time_col} DESC, id DESC LIMIT ${}",
            where_clause(&q.cond),
            q.params.len()
        );
        let mut rows = self.select::<R>(&sql, q.params).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = rows.last().filter(|_| more).map(|r| {
            let (at, id) = cursor_of(r);
            format!("{at}:{id}")
        });
        Ok(Page { items: rows, next })
    }

    /// How many rows of `R` the listing's conditions admit.
    pub(crate) async fn count<R: Record>(&self, q: Listing) -> Result<i64, ProjectionError> {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM {} {}",
            self.table::<R>(),
            where_clause(&q.cond)
        );
        let rows = self.rows(&sql, q.params).await?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(Val::as_i64)
            .ok_or_else(|| ProjectionError::Bug(format!("no count from {sql}")))
    }
}

/// A page of a listing and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The serde name of a unit enum value (`web`, `low_confidence`), or its JSON otherwise.
pub fn code<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// JSON text of a list or nested value, for a TEXT column.
pub fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Serializes a TEXT column written by [`json`] as the value it holds (`serialize_with`), so
/// a row read out (`kefu query`) carries a list as a list, never JSON inside a string.
pub fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| serde::ser::Error::custom(format!("a JSON column holds {text:?}: {e}")))?;
    value.serialize(s)
}

/// [`as_json`] for a nullable column.
pub fn as_json_opt<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(t) => as_json(t, s),
        None => s.serialize_none(),
    }
}

pub fn seller(line: &BusinessLine) -> String {
    match line {
        BusinessLine::SelfOperated => "self_operated".into(),
        BusinessLine::Merchant { merchant } => format!("merchant:{merchant}"),
    }
}

pub(crate) fn where_clause(cond: &[String]) -> String {
    if cond.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", cond.join(" AND "))
    }
}

pub(crate) fn check_limit(limit: usize) -> Result<usize, ProjectionError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ProjectionError::Invalid(format!(
            "limit {limit} is out of range: ask for 1 to {MAX_LIMIT} rows"
        )));
    }
    Ok(limit)
}

pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, String), ProjectionError> {
    cursor
        .split_once(':')
        .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
        .ok_or_else(|| {
            ProjectionError::Invalid(format!(
                "cursor {cursor:?} is not one this listing returned"
            ))
        })
}

#[cfg(test)]
mod tests {
    use crate::queues::QueueRow;
    use crate::tickets::TicketHistoryRow;

    #[test]
    fn json_columns_serialize_as_the_values_they_hold() {
        let queue = QueueRow {
            id: "q".into(),
            name: "售后".into(),
            business_line: "self_operated".into(),
            categories: r#"["refund","delivery"]"#.into(),
            skills: "[]".into(),
            priority: 2,
            first_response_secs: 60,
            resolution_secs: 3600,
            retired: false,
        };
        let v = serde_json::to_value(&queue).unwrap();
        assert_eq!(v["categories"], serde_json::json!(["refund", "delivery"]));
        assert_eq!(v["skills"], serde_json::json!([]));
        let change = TicketHistoryRow {
            ticket: "t".into(),
            version: 1,
            event_type: "TicketStatusChanged".into(),
            field: Some("status".into()),
            before: Some(r#""new""#.into()),
            after: Some(r#""open""#.into()),
            by: None,
            detail: r#"{"type":"TicketStatusChanged"}"#.into(),
            at: 0,
        };
        let v = serde_json::to_value(&change).unwrap();
        assert_eq!(v["before"], "new");
        assert_eq!(v["by"], serde_json::Value::Null);
        assert_eq!(v["detail"]["type"], "TicketStatusChanged");
    }
}
