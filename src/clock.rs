//! The clock the server's services read "now" from: the system's in the server, a fixed
//! or stepped one in tests. Pure stages never read it; their callers pass `now`.

use std::sync::Arc;

/// Milliseconds since the epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| jiff::Timestamp::now().as_millisecond())
}
