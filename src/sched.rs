//! Thread scheduling: the threads doing background work (ingest parsing, the SQLite
//! writer, the rollups' fold, the checkpointer, the dropper) run at a lower priority
//! than the runtime's workers, which serve requests, so on a machine with few cores a
//! guard call does not queue behind a commit or a batch being parsed (ARCHITECTURE.md,
//! "The guard's latency"). Linux only; elsewhere, or where the kernel refuses, nothing
//! changes.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The nice value of background threads unless `BURNRATE_BACKGROUND_NICE` says
/// otherwise (0 keeps them at the workers' priority).
const DEFAULT_NICE: i32 = 10;

/// The nice value background threads take (0 to 19), read once.
fn background_nice() -> i32 {
    static NICE: OnceLock<i32> = OnceLock::new();
    *NICE.get_or_init(|| {
        std::env::var("BURNRATE_BACKGROUND_NICE")
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .map_or(DEFAULT_NICE, |n| n.clamp(0, 19))
    })
}

thread_local! {
    /// Set once this thread was made a background thread.
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Make the calling thread a background thread (once per thread; later calls are free):
/// its name becomes `name` (for `top -H` and `perf`) and its nice value the background
/// one. Raising one's own nice value needs no privilege; a refusal is logged once at
/// debug and the thread runs as before.
pub fn background(name: &str) {
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    set_name(name);
    let nice = background_nice();
    if nice > 0 {
        lower(nice);
    }
}

#[cfg(target_os = "linux")]
fn set_name(name: &str) {
    // Thread names hold 15 bytes.
    let short: String = name.chars().take(15).collect();
    if let Ok(name) = std::ffi::CString::new(short) {
        let _ = rustix::thread::set_name(&name);
    }
}

#[cfg(target_os = "linux")]
fn lower(nice: i32) {
    // On Linux a nice value is per thread: PRIO_PROCESS with a thread id sets only it.
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        refused(&e.to_string());
    }
}

#[cfg(not(target_os = "linux"))]
fn set_name(_name: &str) {}

#[cfg(not(target_os = "linux"))]
fn lower(_nice: i32) {}

/// Logged once: a container's seccomp profile may refuse, and that is no error.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn refused(error: &str) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::debug!(error, "background threads keep the workers' priority");
    }
}
