//! Rebuilds from position 0 beside the live generations, and as-of generations.

use super::*;

/// What `rebuild` did for one projection.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub generation: Generation,
    /// The generation it replaced, when swapped in.
    pub replaced: Option<i64>,
}

/// Builds new generations of `projections` from position 0 beside the live ones. Without a
/// bound they are swapped in once caught up with the log's head (blue-green: queries read
/// the old generation until the swap); with one they are kept as as-of generations.
pub async fn rebuild<L: EventLog>(
    log: &L,
    store: &ReadStore,
    projections: Vec<Box<dyn Projection>>,
    until: Until,
    progress: impl FnMut(&Progress),
) -> Result<(Vec<Rebuilt>, Progress), ProjectionError> {
    let catalog = Catalog::open(store.clone()).await?;
    let state = if until.is_bounded() {
        GenState::AsOf
    } else {
        GenState::Building
    };
    let mut members = Vec::new();
    for p in projections {
        catalog
            .drop_abandoned(
                p.as_ref(),
                chrono::Duration::minutes(ABANDONED_AFTER_MINUTES),
            )
            .await?;
        let g = catalog.create(p.as_ref(), state, until).await?;
        info!(
            projection = p.name(),
            generation = g.generation,
            state = state.as_str(),
            "building"
        );
        members.push(Member::new(p, g));
    }
    let mut group = Group::new(store.clone(), members).with_batch(REBUILD_BATCH);
    let report = group.catch_up(log, progress).await?;
    let mut out = Vec::new();
    for m in group.into_members() {
        let generation = m.generation.clone();
        let p = m.into_projection();
        catalog.ensure_tables(p.as_ref(), &generation).await?;
        let replaced = if state == GenState::Building {
            let old = catalog.swap(p.as_ref(), generation.generation).await?;
            info!(
                projection = p.name(),
                generation = generation.generation,
                "swapped in"
            );
            old.map(|o| o.generation)
        } else {
            None
        };
        let generation = catalog.get(p.name(), generation.generation).await?;
        out.push(Rebuilt {
            generation,
            replaced,
        });
    }
    Ok((out, report))
}
