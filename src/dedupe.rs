//! Retries and dedupe (docs/event-contract.md, "Retries"): what a new
//! (externalRequestId, attempt) does to the logical call already stored under that id.
//! Pure; the store applies the decision.

/// What the store knows about a logical call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCall {
    /// Bit n-1 set = attempt n seen.
    pub attempt_mask: u64,
    pub has_usage: bool,
    pub success: bool,
}

/// What an arriving attempt brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingAttempt {
    pub attempt: u8,
    pub has_usage: bool,
    pub success: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The same (id, attempt) again: a telemetry resend, ignored.
    Duplicate,
    /// An app-level retry: the attempt count grows; `replace` = this attempt's usage,
    /// cost and outcome now describe the call (cost stays counted once per call).
    NewAttempt { replace: bool, attempt_mask: u64 },
}

pub fn attempt_bit(attempt: u8) -> u64 {
    1u64 << (attempt.clamp(1, 64) - 1)
}

/// Decide what to do with an attempt for a call that is already stored. An attempt with
/// usage beats one without; among equals a success beats a failure; otherwise the call
/// keeps what it has (the earlier attempt).
pub fn decide(stored: StoredCall, incoming: IncomingAttempt) -> Decision {
    let bit = attempt_bit(incoming.attempt);
    if stored.attempt_mask & bit != 0 {
        return Decision::Duplicate;
    }
    let rank = |has_usage: bool, success: bool| (has_usage, success);
    Decision::NewAttempt {
        replace: rank(incoming.has_usage, incoming.success)
            > rank(stored.has_usage, stored.success),
        attempt_mask: stored.attempt_mask | bit,
    }
}

/// Attempts seen for a call.
pub fn attempt_count(mask: u64) -> u32 {
    mask.count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(mask: u64, has_usage: bool, success: bool) -> StoredCall {
        StoredCall {
            attempt_mask: mask,
            has_usage,
            success,
        }
    }

    fn incoming(attempt: u8, has_usage: bool, success: bool) -> IncomingAttempt {
        IncomingAttempt {
            attempt,
            has_usage,
            success,
        }
    }

    #[test]
    fn same_attempt_again_is_a_duplicate_even_with_other_content() {
        assert_eq!(
            decide(stored(0b1, false, false), incoming(1, true, true)),
            Decision::Duplicate
        );
        assert_eq!(
            decide(stored(0b11, true, true), incoming(2, true, true)),
            Decision::Duplicate
        );
    }

    #[test]
    fn attempt_with_usage_replaces_one_without() {
        assert_eq!(
            decide(stored(0b1, false, false), incoming(2, true, true)),
            Decision::NewAttempt {
                replace: true,
                attempt_mask: 0b11
            }
        );
    }

    #[test]
    fn attempt_without_usage_never_replaces_one_with_usage() {
        assert_eq!(
            decide(stored(0b10, true, true), incoming(1, false, false)),
            Decision::NewAttempt {
                replace: false,
                attempt_mask: 0b11
            }
        );
    }

    #[test]
    fn success_replaces_a_failed_attempt_that_had_usage() {
        assert_eq!(
            decide(stored(0b1, true, false), incoming(3, true, true)),
            Decision::NewAttempt {
                replace: true,
                attempt_mask: 0b101
            }
        );
    }

    #[test]
    fn two_successes_keep_the_first_so_cost_counts_once() {
        assert_eq!(
            decide(stored(0b1, true, true), incoming(2, true, true)),
            Decision::NewAttempt {
                replace: false,
                attempt_mask: 0b11
            }
        );
        assert_eq!(attempt_count(0b111), 3);
    }

    #[test]
    fn attempt_64_uses_the_top_bit() {
        assert_eq!(attempt_bit(64), 1u64 << 63);
        assert_eq!(
            decide(stored(1u64 << 63, true, true), incoming(64, true, true)),
            Decision::Duplicate
        );
    }
}
