//! `ingest::accept`: the one path every front door (the HTTP ingest endpoints, `import`,
//! the demo loader, OTLP) takes with prepared events. The store dedupes and commits them
//! and returns the commit's sequence and cost changes; those go to the budget counters;
//! the receipt names the budgets the accepted events touched.

use crate::budget::counters::Counters;
use crate::budget::CallDims;
use crate::event::PricedEvent;
use crate::store::{EventStore, FieldTally, IngestOutcome, StoreError, WorkspaceId, WriteResult};
use std::sync::Arc;

/// What became of a prepared batch.
#[derive(Debug, Default)]
pub struct Receipt {
    /// Per event: stored, a new attempt, or a duplicate; and the commit's sequence.
    pub outcome: IngestOutcome,
    /// Budgets the accepted events count against that are at warning / exceeded now.
    pub budget_warning: Vec<i64>,
    pub budget_exceeded: Vec<i64>,
}

/// Store `events` for `ws` (with the request's unknown-field tally) and keep the budget
/// counters exact. The commit and the counters' update run in their own task, so a
/// caller that goes away (a client hanging up) cannot leave a committed cost uncounted.
pub async fn accept(
    store: Arc<dyn EventStore>,
    counters: Arc<Counters>,
    ws: WorkspaceId,
    events: Vec<PricedEvent>,
    tally: FieldTally,
    now_ms: i64,
) -> Result<Receipt, StoreError> {
    if events.is_empty() {
        // A request refused whole still counts its key's unknown fields.
        if tally.unknown_fields > 0 {
            store.ingest_counted(ws, Vec::new(), tally).await?;
        }
        return Ok(Receipt::default());
    }
    // Which budget each event counts against, worked out before the events move into
    // the store: the receipt names those the accepted ones touched.
    let hits = counters.matching(ws, events.iter().map(|p| CallDims::of_event(&p.event)));
    let commit = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut outcome = store.ingest_counted(ws, events, tally).await?;
            counters.apply(outcome.seq, &outcome.effects);
            outcome.effects = Vec::new();
            Ok::<_, StoreError>(outcome)
        })
    };
    let outcome = commit
        .await
        .map_err(|e| StoreError::Database(format!("ingest task failed: {e}")))??;
    let mut touched: Vec<i64> = hits
        .iter()
        .filter(|(i, _)| !matches!(outcome.results[*i], WriteResult::Duplicate))
        .map(|(_, id)| *id)
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let (budget_warning, budget_exceeded) = counters.states(ws, &touched, now_ms);
    Ok(Receipt {
        outcome,
        budget_warning,
        budget_exceeded,
    })
}
