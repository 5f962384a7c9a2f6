//! Thread scheduling: the threads doing background work (ingest parsing, the rollups'
//! fold, the checkpointer, the dropper) run at a lower priority than the runtime's
//! workers, which serve requests, so on a machine with few cores a guard call does not
//! queue behind a batch being parsed or folded (ARCHITECTURE.md, "The guard's latency").
//! The SQLite writer is not one of them: every ingest answer waits for its commit.
//! Linux only; elsewhere, or where the kernel refuses, nothing changes.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// How much nicer than the process background threads are by default (`burnrate serve
/// --background-nice`, `BURNRATE_BACKGROUND_NICE`; 0 keeps them at the workers'
/// priority). Measured (ARCHITECTURE.md, "The guard's latency"): 10 cut the guard's
/// p99; 19 did worse than 10 in the same runs.
pub const DEFAULT_NICE: i32 = 10;

/// The step in force: the server sets it from its configuration before its store
/// starts any thread; other commands keep the default.
static STEP: AtomicI32 = AtomicI32::new(DEFAULT_NICE);

/// Set how much nicer background threads started from now on are (clamped to 0..=19).
pub fn set_background_nice(step: i32) {
    STEP.store(step.clamp(0, 19), Ordering::Relaxed);
}

fn background_nice() -> i32 {
    STEP.load(Ordering::Relaxed)
}

thread_local! {
    /// Set once this thread was made a background thread.
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Make the calling thread a background thread (once per thread; later calls are free):
/// its name becomes `name` (for `top -H` and `perf`) and its nice value goes up by the
/// background step (at most 19), relative to what it had, so a server started under
/// `nice` keeps the same gap. Raising one's own nice value needs no privilege; a
/// refusal is logged once at debug and the thread runs as before.
pub fn background(name: &str) {
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    set_name(name);
    let step = background_nice();
    if step > 0 {
        lower(step);
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
fn lower(step: i32) {
    // On Linux a nice value is per thread: PRIO_PROCESS with a thread id sets only it.
    let tid = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    // The step counts from the process's own level, taken from the first thread made a
    // background thread (no thread was lowered before it): a thread started by a
    // background thread inherits its nice value and must not be lowered twice.
    static BASE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| current);
    let nice = (base + step).min(19);
    if nice <= current {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        refused(&e.to_string());
    }
}

#[cfg(not(target_os = "linux"))]
fn set_name(_name: &str) {}

#[cfg(not(target_os = "linux"))]
fn lower(_step: i32) {}

/// Logged once: a container's seccomp profile may refuse, and that is no error.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn refused(error: &str) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::debug!(error, "background threads keep the workers' priority");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
    }

    /// A background thread is named and nicer by the step than it was; the thread that
    /// started it keeps its own priority (nice values are per thread on Linux).
    #[test]
    fn a_background_thread_is_named_and_nicer_than_before() {
        let caller = nice_of_this_thread();
        let (before, after, name) = std::thread::spawn(|| {
            let before = nice_of_this_thread();
            background("burnrate-test-background");
            background("burnrate-again");
            let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
            (before, nice_of_this_thread(), name)
        })
        .join()
        .unwrap();
        assert_eq!(after, (before + background_nice()).min(19));
        assert_eq!(name.trim(), "burnrate-test-b", "15 bytes, the first call's");
        assert_eq!(nice_of_this_thread(), caller);
    }

    /// A background thread started by another inherits its level and is not lowered a
    /// second time.
    #[test]
    fn a_background_thread_started_by_one_is_lowered_once() {
        let caller = nice_of_this_thread();
        let (outer, inner) = std::thread::spawn(|| {
            background("burnrate-outer");
            let inner = std::thread::spawn(|| {
                background("burnrate-inner");
                nice_of_this_thread()
            })
            .join()
            .unwrap();
            (nice_of_this_thread(), inner)
        })
        .join()
        .unwrap();
        assert_eq!(outer, (caller + background_nice()).min(19));
        assert_eq!(inner, outer);
    }
}
