//! What every handler reads: the app's shared state, and the dashboard's login sessions,
//! which belong to the HTTP layer (a session cookie also lets the API's read endpoints
//! answer the dashboard's browser).

use super::dashboard::session::Sessions;
use crate::app::AppState;
use std::ops::Deref;
use std::sync::Arc;

pub struct HttpState {
    pub app: Arc<AppState>,
    /// Dashboard login sessions (in memory: a restart logs everyone out).
    pub sessions: Sessions,
}

impl HttpState {
    pub fn new(app: Arc<AppState>) -> HttpState {
        HttpState {
            app,
            sessions: Sessions::default(),
        }
    }
}

/// Handlers read the store, the prices, the budgets, ... as `state.store`: the HTTP
/// layer only adds the sessions to the app's state.
impl Deref for HttpState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}
