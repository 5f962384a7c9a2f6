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
                let parts = match me.store.ingest_part_size() {
                    Some(size) if events.len() > size => split_evenly(events, size),
                    _ => vec![events],
                };
                let mut outcome = IngestOutcome::default();
                let mut failed = None;
                for part in me.store.ingest_parts(ws, parts, tally).await {
                    // Every stored part's changes count, also when a later part failed:
                    // its events are stored (a retry finds them as duplicates).
                    match part {
                        Ok(part) => {
                            me.count(&part);
                            outcome.results.extend(part.results);
                            outcome.seq = outcome.seq.max(part.seq);
                        }
                        Err(e) => failed = failed.or(Some(e)),
                    }
                }
                match failed {
                    Some(e) => Err(e),
                    None => Ok::<_, StoreError>(outcome),
                }
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

    /// Hand one commit's cost changes to the counters and every sink.
    fn count(&self, committed: &IngestOutcome) {
        self.counters.apply(committed.seq, &committed.effects);
        for sink in &self.sinks {
            sink.apply(committed.seq, &committed.effects);
        }
    }
}

/// `items` in order, in as few parts of at most `size` as can hold them, all of about
/// the same size (no part much smaller than the others: the writer queues small
/// requests first, so a small last part could commit before the parts ahead of it).
fn split_evenly<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let count = items.len().div_ceil(size.max(1)).max(1);
    let (base, extra) = (items.len() / count, items.len() % count);
    let mut items = items.into_iter();
    (0..count)
        .map(|i| items.by_ref().take(base + usize::from(i < extra)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_evenly;

    fn split(n: usize, size: usize) -> Vec<usize> {
        let parts = split_evenly((0..n).collect(), size);
        let joined: Vec<usize> = parts.iter().flatten().copied().collect();
        assert_eq!(joined, (0..n).collect::<Vec<_>>(), "in order, nothing lost");
        parts.iter().map(Vec::len).collect()
    }

    #[test]
    fn a_big_request_splits_in_order_into_parts_of_about_the_same_size() {
        assert_eq!(split(1000, 256), [250, 250, 250, 250]);
        assert_eq!(split(257, 256), [129, 128]);
        assert_eq!(split(256, 256), [256]);
        assert_eq!(split(5, 2), [2, 2, 1]);
        assert_eq!(split(1, 256), [1]);
    }
}
