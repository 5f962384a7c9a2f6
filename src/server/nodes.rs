//! The nodes serving one store: each server registers itself as a control object of
//! kind `node` and touches it every 2 s; the nodes touched within the last 6 s are the
//! live ones. Budgets use the count to share each blocking budget's headroom between the
//! nodes (`budget::counters::node_share`); a node leaving deletes its object.

use crate::store::{Store, StoreError, WorkspaceId};
use serde_json::json;

pub const NODE: &str = "node";

/// A node is live when it touched its object within this (three reload ticks).
const LIVE_MS: i64 = 6_000;
/// Objects of nodes gone this long (killed without leaving) are removed by any node.
const FORGET_MS: i64 = 3_600_000;

/// This server's entry among the nodes.
pub struct Registration {
    workspace: WorkspaceId,
    id: i64,
}

/// Control objects live in a workspace: the nodes' in the first one (`default`).
async fn home(store: &dyn Store) -> Result<WorkspaceId, StoreError> {
    let workspaces = store.workspaces().await?;
    let first = workspaces.iter().map(|w| w.id).min_by_key(|id| {
        // `default` when it exists, so every node agrees.
        let named_default = workspaces
            .iter()
            .any(|w| w.id == *id && w.name == "default");
        (!named_default, *id)
    });
    first.ok_or_else(|| StoreError::NotFound("a workspace for the node registry".into()))
}

impl Registration {
    pub async fn join(store: &dyn Store) -> Result<Registration, StoreError> {
        let workspace = home(store).await?;
        let id = store.put_object(workspace, NODE, None, json!({})).await?;
        Ok(Registration { workspace, id })
    }

    /// Touch this node's object and count the live nodes (this one included); forget
    /// nodes gone for an hour.
    pub async fn beat(&self, store: &dyn Store, now_ms: i64) -> Result<u64, StoreError> {
        store
            .put_object(self.workspace, NODE, Some(self.id), json!({}))
            .await?;
        let nodes = store.objects(Some(self.workspace), NODE).await?;
        for gone in nodes.iter().filter(|n| n.updated_ms < now_ms - FORGET_MS) {
            store.delete_object(self.workspace, NODE, gone.id).await?;
        }
        Ok(self.count(&nodes, now_ms))
    }

    /// Count the live nodes now (this one included) without touching anything: what a
    /// load of a blocking budget's share asks first (`Budgets::count_nodes_with`), so a
    /// node never shares out a budget by a count older than its last tick.
    pub async fn live(&self, store: &dyn Store, now_ms: i64) -> Result<u64, StoreError> {
        let nodes = store.objects(Some(self.workspace), NODE).await?;
        Ok(self.count(&nodes, now_ms))
    }

    fn count(&self, nodes: &[crate::store::StoredObject], now_ms: i64) -> u64 {
        let live = nodes
            .iter()
            .filter(|n| n.id == self.id || n.updated_ms >= now_ms - LIVE_MS)
            .count();
        live.max(1) as u64
    }

    /// Whether this node is the live node with the smallest id: the one that seals
    /// (`background::seal_every_minute`). Nodes agree within a reload tick; two that
    /// briefly both think so seal the same hours twice, which costs time, never
    /// exactness (a seal's cells are read only under its own generation).
    pub async fn is_first(&self, store: &dyn Store, now_ms: i64) -> Result<bool, StoreError> {
        let nodes = store.objects(Some(self.workspace), NODE).await?;
        let first = nodes
            .iter()
            .filter(|n| n.id == self.id || n.updated_ms >= now_ms - LIVE_MS)
            .map(|n| n.id)
            .min();
        Ok(first.is_none_or(|id| id == self.id))
    }

    pub async fn leave(&self, store: &dyn Store) -> Result<(), StoreError> {
        store.delete_object(self.workspace, NODE, self.id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_live_node_with_the_smallest_id_is_first_and_the_next_one_after_it_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("nodes.db").display());
        let store = crate::store::open(&url).unwrap();
        let now = jiff::Timestamp::now().as_millisecond();
        let (a, b) = (
            Registration::join(store.as_ref()).await.unwrap(),
            Registration::join(store.as_ref()).await.unwrap(),
        );
        assert!(a.id < b.id);
        assert!(a.is_first(store.as_ref(), now).await.unwrap());
        assert!(!b.is_first(store.as_ref(), now).await.unwrap());
        // A node not touched within LIVE_MS no longer counts: the next one seals.
        let later = now + LIVE_MS + 1_000;
        b.beat(store.as_ref(), later).await.unwrap();
        assert!(b.is_first(store.as_ref(), later).await.unwrap());
        a.leave(store.as_ref()).await.unwrap();
        assert!(b.is_first(store.as_ref(), now).await.unwrap());
        store.close().await;
    }
}
