//! The catalog of generations: which exist, which is live, where each has read to, and the
//! tables and views each owns.

use super::*;

pub(super) const CATALOG_COLUMNS: &str = "projection, generation, state, position, events, until_position, \
     until_time, updated_at, until_clock";

/// The generations of every projection in one store.
#[derive(Clone)]
pub struct Catalog {
    store: ReadStore,
}

impl Catalog {
    pub async fn open(store: ReadStore) -> Result<Self, ProjectionError> {
        // Two processes (or a server's tasks) creating the catalog at once: PostgreSQL's
        // `IF NOT EXISTS` does not cover the race, and the loser fails on a unique index of
        // the system catalog. By the time it tries again the winner has committed.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let created = store
                .transaction(vec![Stmt::new(
                    "CREATE TABLE IF NOT EXISTS kefu_projections (
                    projection     TEXT   NOT NULL,
                    generation     BIGINT NOT NULL,
                    state          TEXT   NOT NULL,
                    position       BIGINT NOT NULL,
                    events         BIGINT NOT NULL,
                    until_position BIGINT,
                    until_time     BIGINT,
                    updated_at     BIGINT NOT NULL,
                    PRIMARY KEY (projection, generation)
                )",
                    vec![],
                )])
                .await;
            match created {
                Ok(_) => {
                    Self::add_until_clock(&store).await?;
                    return Ok(Catalog { store });
                }
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, "creating the projection catalog raced another process; again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Catalogs made before as-of builds could bound business time lack `until_clock` (read
    /// as `recorded`, which is what they were built by).
    async fn add_until_clock(store: &ReadStore) -> Result<(), ProjectionError> {
        let probe = "SELECT until_clock FROM kefu_projections WHERE 1 = 0";
        if store.query(probe, vec![]).await.is_ok() {
            return Ok(());
        }
        let added = store
            .transaction(vec![Stmt::new(
                "ALTER TABLE kefu_projections ADD COLUMN until_clock TEXT",
                vec![],
            )])
            .await;
        // Another process may have added it first.
        match added {
            Ok(()) => Ok(()),
            Err(e) => match store.query(probe, vec![]).await {
                Ok(_) => Ok(()),
                Err(_) => Err(e.into()),
            },
        }
    }

    pub fn store(&self) -> &ReadStore {
        &self.store
    }

    pub async fn list(&self) -> Result<Vec<Generation>, ProjectionError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM kefu_projections ORDER BY projection, generation"
                ),
                vec![],
            )
            .await?;
        rows.into_iter().map(generation_of).collect()
    }

    pub async fn get(
        &self,
        projection: &str,
        generation: i64,
    ) -> Result<Generation, ProjectionError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM kefu_projections \
                     WHERE projection = $1 AND generation = $2"
                ),
                vec![projection.into(), generation.into()],
            )
            .await?;
        rows.into_iter()
            .next()
            .map(generation_of)
            .transpose()?
            .ok_or_else(|| ProjectionError::UnknownGeneration {
                projection: projection.to_owned(),
                generation,
            })
    }

    /// The generation queries read, if the projection has been built.
    pub async fn live(&self, projection: &str) -> Result<Option<Generation>, ProjectionError> {
        let rows = self
            .store
            .query(
                &format!(
                    "SELECT {CATALOG_COLUMNS} FROM kefu_projections \
                     WHERE projection = $1 AND state = 'live'"
                ),
                vec![projection.into()],
            )
            .await?;
        rows.into_iter().next().map(generation_of).transpose()
    }

    /// The live generation, created empty (as generation 1) on first use.
    pub async fn attach_live(&self, p: &dyn Projection) -> Result<Generation, ProjectionError> {
        if let Some(live) = self.live(p.name()).await? {
            // A build of an older kefu may lack tables added since; creating is idempotent.
            self.ensure_tables(p, &live).await?;
            self.check_columns(p, &live).await?;
            // And its views, or views of fewer columns.
            self.refresh_views(p, &live).await?;
            return Ok(live);
        }
        match self.create(p, GenState::Live, Until::default()).await {
            Ok(g) => {
                self.refresh_views(p, &g).await?;
                Ok(g)
            }
            // Another process created it first.
            Err(ProjectionError::Store(StoreError::Backend { .. })) => self
                .live(p.name())
                .await?
                .ok_or_else(|| ProjectionError::NotBuilt {
                    projection: p.name().to_owned(),
                }),
            Err(e) => Err(e),
        }
    }

    /// A new, empty generation with its tables.
    pub async fn create(
        &self,
        p: &dyn Projection,
        state: GenState,
        until: Until,
    ) -> Result<Generation, ProjectionError> {
        let rows = self
            .store
            .query(
                "SELECT CAST(COALESCE(MAX(generation), 0) AS BIGINT) FROM kefu_projections \
                 WHERE projection = $1",
                vec![p.name().into()],
            )
            .await?;
        let next = rows
            .first()
            .and_then(|r| r.first())
            .and_then(Val::as_i64)
            .unwrap_or(0)
            + 1;
        let generation = Generation {
            projection: p.name().to_owned(),
            generation: next,
            state,
            position: Position::START,
            events: 0,
            until,
            updated_at: Utc::now(),
        };
        let mut stmts = vec![Stmt::new(
            format!(
                "INSERT INTO kefu_projections ({CATALOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            vec![
                generation.projection.clone().into(),
                next.into(),
                state.as_str().into(),
                0i64.into(),
                0i64.into(),
                until.position.map(|p| p.0 as i64).into(),
                until.time.map(|t| t.timestamp_millis()).into(),
                generation.updated_at.timestamp_millis().into(),
                until.clock.as_str().into(),
            ],
        )];
        // A live generation is queried from the start; one being built gets its secondary
        // indexes once loaded (`ensure_tables`).
        stmts.extend(create_statements(p, &generation, state == GenState::Live));
        self.store.transaction(stmts).await?;
        Ok(generation)
    }

    /// Creates whatever of a generation's tables and indexes is missing: the secondary
    /// indexes of a generation built without them, or tables a newer kefu added.
    pub async fn ensure_tables(
        &self,
        p: &dyn Projection,
        g: &Generation,
    ) -> Result<(), ProjectionError> {
        self.store
            .transaction(create_statements(p, g, true))
            .await?;
        Ok(())
    }

    /// Refuses a generation whose tables lack a column this build writes (built by an older
    /// kefu): applying to it would fail on every batch, and what the column should hold for
    /// the events already applied is only known by replaying them.
    async fn check_columns(
        &self,
        p: &dyn Projection,
        g: &Generation,
    ) -> Result<(), ProjectionError> {
        for def in p.tables() {
            let table = g.table(def);
            let columns: Vec<&str> = def.column_names().collect();
            let probe = format!("SELECT {} FROM {table} WHERE 1 = 0", columns.join(", "));
            if let Err(e) = self.store.query(&probe, vec![]).await {
                return Err(ProjectionError::Outdated {
                    projection: p.name().to_owned(),
                    generation: g.generation,
                    table,
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Points the analysts' views of `p` at generation `g`: one view per table, named
    /// `<projection>_<table>` (`stats_facts`), which a saved BI question can rely on across
    /// replays, with times as timestamps (RFC 3339 text on SQLite), booleans as booleans
    /// (0 or 1 on SQLite, which has none) and names beside the ids [`Projection::names`]
    /// names. PostgreSQL replaces each view in place, so views an analyst built on them
    /// survive; only a change of a column's type needs the view dropped first, which such a
    /// dependent view refuses, by name.
    pub async fn refresh_views(
        &self,
        p: &dyn Projection,
        g: &Generation,
    ) -> Result<(), ProjectionError> {
        let pg = self.store.is_postgres();
        for def in p.tables() {
            let view = format!("{}_{}", p.name(), def.name);
            let select = view_select(p, g, def, pg);
            if pg {
                let replaced = self
                    .store
                    .transaction(vec![Stmt::new(
                        format!("CREATE OR REPLACE VIEW {view} AS {select}"),
                        vec![],
                    )])
                    .await;
                if replaced.is_ok() {
                    continue;
                }
            }
            self.store
                .transaction(vec![
                    Stmt::new(format!("DROP VIEW IF EXISTS {view}"), vec![]),
                    Stmt::new(format!("CREATE VIEW {view} AS {select}"), vec![]),
                ])
                .await?;
        }
        Ok(())
    }

    /// Makes `generation` the live one and drops the generation it replaces.
    pub async fn swap(
        &self,
        p: &dyn Projection,
        generation: i64,
    ) -> Result<Option<Generation>, ProjectionError> {
        let old = self.live(p.name()).await?;
        let now = Utc::now().timestamp_millis();
        self.store
            .transaction(vec![
                Stmt::new(
                    "UPDATE kefu_projections SET state = 'retired', updated_at = $2 \
                     WHERE projection = $1 AND state = 'live'",
                    vec![p.name().into(), now.into()],
                ),
                Stmt::new(
                    "UPDATE kefu_projections SET state = 'live', updated_at = $3 \
                     WHERE projection = $1 AND generation = $2 AND state = 'building'",
                    vec![p.name().into(), generation.into(), now.into()],
                )
                .guarded(
                    1,
                    format!(
                        "generation {generation} of {} is no longer being built",
                        p.name()
                    ),
                ),
            ])
            .await?;
        // Before the old tables go: on PostgreSQL a view still reading them would refuse it.
        self.refresh_views(p, &self.get(p.name(), generation).await?)
            .await?;
        if let Some(old) = &old {
            self.drop_generation(p, old.generation).await?;
        }
        Ok(old)
    }

    /// Drops the `building` generations of `p` that have not moved for `idle`: rebuilds that
    /// died. A running rebuild moves its checkpoint every batch (seconds apart), so it is never
    /// mistaken for one. Returns the generations dropped.
    pub async fn drop_abandoned(
        &self,
        p: &dyn Projection,
        idle: chrono::Duration,
    ) -> Result<Vec<i64>, ProjectionError> {
        let cutoff = Utc::now() - idle;
        let mut dropped = Vec::new();
        for g in self.list().await? {
            if g.projection == p.name() && g.state == GenState::Building && g.updated_at < cutoff {
                warn!(
                    projection = p.name(),
                    generation = g.generation,
                    "dropping an abandoned rebuild"
                );
                self.drop_generation(p, g.generation).await?;
                dropped.push(g.generation);
            }
        }
        Ok(dropped)
    }

    /// Drops a generation's tables and its catalog row.
    pub async fn drop_generation(
        &self,
        p: &dyn Projection,
        generation: i64,
    ) -> Result<(), ProjectionError> {
        let prefix = table_prefix(p.name(), generation);
        let mut stmts: Vec<Stmt> = p
            .tables()
            .iter()
            .map(|def| def.name)
            .chain(p.former_tables().iter().copied())
            .map(|name| Stmt::new(format!("DROP TABLE IF EXISTS {prefix}{name}"), vec![]))
            .collect();
        stmts.push(Stmt::new(
            "DELETE FROM kefu_projections WHERE projection = $1 AND generation = $2",
            vec![p.name().into(), generation.into()],
        ));
        self.store.transaction(stmts).await?;
        Ok(())
    }
}

/// The `SELECT` of one table's analysts' view (see [`Catalog::refresh_views`]).
pub(super) fn view_select(p: &dyn Projection, g: &Generation, def: &TableDef, pg: bool) -> String {
    let tables = p.tables();
    let mut cols = Vec::new();
    for (i, (name, ty, _)) in def.columns.iter().enumerate() {
        let c = format!("t.{name}");
        let expr = if def.bools[i] {
            if pg { format!("({c} <> 0)") } else { c }
        } else if *ty == ColType::Int && crate::sql::is_time_column(name) {
            if pg {
                format!("to_timestamp({c} / 1000.0)")
            } else {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', {c} / 1000.0, 'unixepoch')")
            }
        } else {
            c
        };
        cols.push(format!("{expr} AS {name}"));
        if let Some((_, table, key)) = p.names().iter().find(|(col, _, _)| col == name)
            && let Some(names) = tables.iter().find(|d| d.name == *table)
            && names.name != def.name
        {
            cols.push(format!(
                "(SELECT n.name FROM {} n WHERE n.{key} = t.{name}) AS {name}_name",
                g.table(names)
            ));
        }
    }
    format!("SELECT {} FROM {} t", cols.join(", "), g.table(def))
}

pub(super) fn create_statements(p: &dyn Projection, g: &Generation, indexes: bool) -> Vec<Stmt> {
    let mut out = Vec::new();
    for def in p.tables() {
        out.push(Stmt::new(def.create_sql(&g.table(def)), vec![]));
        if indexes {
            out.extend(
                def.index_sql(&g.table(def))
                    .into_iter()
                    .map(|sql| Stmt::new(sql, vec![])),
            );
        }
    }
    out
}

pub(super) fn generation_of(row: Vec<Val>) -> Result<Generation, ProjectionError> {
    let bad = || ProjectionError::Bug("malformed kefu_projections row".into());
    let mut it = row.into_iter();
    let mut next = || it.next().ok_or_else(bad);
    let projection = next()?.as_str().ok_or_else(bad)?.to_owned();
    let generation = next()?.as_i64().ok_or_else(bad)?;
    let state = GenState::parse(next()?.as_str().ok_or_else(bad)?)?;
    let position = Position(next()?.as_i64().ok_or_else(bad)?.max(0) as u64);
    let events = next()?.as_i64().ok_or_else(bad)?;
    let until_position = next()?.as_i64().map(|p| Position(p.max(0) as u64));
    let until_time = next()?
        .as_i64()
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    let updated_at = next()?
        .as_i64()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .ok_or_else(bad)?;
    let clock = match next()?.as_str() {
        Some("business") => Clock::Business,
        Some("recorded") | None => Clock::Recorded,
        Some(_) => return Err(bad()),
    };
    Ok(Generation {
        projection,
        generation,
        state,
        position,
        events,
        until: Until {
            position: until_position,
            time: until_time,
            clock,
        },
        updated_at,
    })
}
