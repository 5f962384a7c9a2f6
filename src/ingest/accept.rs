//! `ingest::accept`: the one path every front door (the HTTP ingest endpoints, OTLP,
//! `import`, the demo loader) takes with prepared events. The store dedupes and commits
//! them and returns the commit's sequence and cost changes; those go to the budget
//! counters and to every other `SpendSink` (the metrics); the receipt names the budgets
//! the accepted events touched.

use crate::budget::counters::Counters;
use crate::budget::CallDims;
use crate::event::PricedEvent;
use crate::store::{
    CommitSeq, EventStore, FieldTally, IngestOutcome, SpendEffect, StoreError, WorkspaceId,
    WriteResult,
};
use std::sync::Arc;

/// Something kept exact by the commits' cost changes besides the budget counters (the
/// metrics' spend): told every commit's effects with the commit's sequence.
pub trait SpendSink: Send + Sync {
    fn apply(&self, seq: CommitSeq, effects: &[SpendEffect]);
}

/// What becomes of prepared events: the store they are written to, the budget counters
/// they count against, and whatever else follows the spend.
#[derive(Clone)]
pub struct Ingestor {
    pub store: Arc<dyn EventStore>,
    pub counters: Arc<Counters>,
    pub sinks: Vec<Arc<dyn SpendSink>>,
}

/// What became of a prepared batch.
#[derive(Debug, Default)]
pub struct Receipt {
    /// Per event: stored, a new attempt, or a duplicate; and the commit's sequence.
    pub outcome: IngestOutcome,
    /// Budgets the accepted events count against that are at warning / exceeded now.
    pub budget_warning: Vec<i64>,
    pub budget_exceeded: Vec<i64>,
}

impl Ingestor {
    /// Store `events` for `ws` (with the request's unknown-field tally) and keep the
    /// counters and sinks exact. The commit and the counters' update run in their own
    /// task, so a caller that goes away (a client hanging up) cannot leave a committed
    /// cost uncounted.
    pub async fn accept(
        &self,
        ws: WorkspaceId,
        events: Vec<PricedEvent>,
        tally: FieldTally,
        now_ms: i64,
    ) -> Result<Receipt, StoreError> {
        if events.is_empty() {
            // A request refused whole still counts its key's unknown fields.
            if tally.unknown_fields > 0 {
                self.store.ingest_counted(ws, Vec::new(), tally).await?;
            }
            return Ok(Receipt::default());
        }
        // Which budget each event counts against, worked out before the events move into
        // the store: the receipt names those the accepted ones touched.
        let hits = self
            .counters
            .matching(ws, events.iter().map(|p| CallDims::of_event(&p.event)));
        let commit = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut outcome = me.store.ingest_counted(ws, events, tally).await?;
                me.counters.apply(outcome.seq, &outcome.effects);
                for sink in &me.sinks {
                    sink.apply(outcome.seq, &outcome.effects);
                }
                outcome.effects = Vec::new();
                Ok::<_, StoreError>(outcome)
            })
        };
        let outcome = commit
            .await
            .map_err(|e| StoreError::Database(format!("ingest task failed: {e}")))??;
        let mut touched: Vec<_> = hits
            .into_iter()
            .filter(|(i, _)| !matches!(outcome.results[*i], WriteResult::Duplicate))
            .map(|(_, hit)| hit)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let (budget_warning, budget_exceeded) = self.counters.states(ws, &touched, now_ms);
        Ok(Receipt {
            outcome,
            budget_warning,
            budget_exceeded,
        })
    }
}
