//! # burnrate-client
//!
//! Rust client for burnrate, the self-hosted LLM cost attribution
//! server: one cost event per LLM call, queued in memory and sent in the background.
//!
//! ```no_run
//! use burnrate_client::{usage, Client, Event};
//! # let response = serde_json::json!({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 5}});
//! let burnrate = Client::from_env(); // BURNRATE_URL, BURNRATE_API_KEY
//! burnrate.track(Event::new("openai", "gpt-4o-mini", "support.reply").usage(usage::openai_chat(&response)));
//! ```
//!
//! * [`Client::track`] never blocks and never fails; a bounded queue drops the newest
//!   event when full, and [`Client::stats`] counts everything.
//! * [`usage`] maps each provider's usage object to the contract's token counts.
//! * [`Client::guard`] asks the server before a call whether it fits the budgets.
//! * [`pseudonymize`] turns user ids into stable pseudonyms; [`new_request_id`] makes
//!   ids for logical calls.

mod client;
mod error;
mod event;
mod guard;
pub mod usage;
mod util;

pub use client::{Client, ClientBuilder, Stats};
pub use error::Error;
pub use event::{DataMode, Environment, Event, Operation, ServiceTier, Status};
pub use guard::{parse_guard_response, BudgetStatus, GuardDecision, GuardRequest};
pub use usage::Usage;
pub use util::{new_request_id, pseudonymize};
