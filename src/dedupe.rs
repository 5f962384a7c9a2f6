//! Retries and dedupe (docs/event-contract.md, "Retries"): what a new
//! (externalRequestId, attempt) does to the logical call already stored under that id.
//! Pure; the store applies the decision.

/// What the store knows about a logical call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCall {
    /// Bit n-1 set = attempt n seen.
    pub attempt_mask: u64,
    /// The attempt that describes the call now (the winner so far).
    pub attempt: u8,
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

/// How well an attempt describes its call: one with usage beats one without; among
/// equals a success beats a failure; among equals the lower attempt number wins. The
/// rank is a total order on the attempts of a call, so the winner does not depend on
/// the order they arrive in: a backend may decide it at write time (as SQLite does) or
/// at read time (max rank per call), and both give the same call.
pub fn rank(attempt: u8, has_usage: bool, success: bool) -> (bool, bool, std::cmp::Reverse<u8>) {
    (has_usage, success, std::cmp::Reverse(attempt))
}

/// Decide what to do with an attempt for a call that is already stored: a duplicate if
/// its number was seen, else a new attempt that describes the call if it ranks higher.
pub fn decide(stored: StoredCall, incoming: IncomingAttempt) -> Decision {
    let bit = attempt_bit(incoming.attempt);
    if stored.attempt_mask & bit != 0 {
        return Decision::Duplicate;
    }
    Decision::NewAttempt {
        replace: rank(incoming.attempt, incoming.has_usage, incoming.success)
            > rank(stored.attempt, stored.has_usage, stored.success),
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

    /// A stored call whose winner is the highest attempt in `mask`.
    fn stored(mask: u64, has_usage: bool, success: bool) -> StoredCall {
        StoredCall {
            attempt_mask: mask,
            attempt: 64 - mask.leading_zeros() as u8,
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
    fn two_successes_keep_the_lower_attempt_so_cost_counts_once() {
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
    fn an_equal_lower_attempt_arriving_late_takes_over() {
        // Attempt 2 arrived first; attempt 1 (same rank) arriving later describes the
        // call, as if they had arrived in order.
        assert_eq!(
            decide(stored(0b10, true, true), incoming(1, true, true)),
            Decision::NewAttempt {
                replace: true,
                attempt_mask: 0b11
            }
        );
    }

    #[test]
    fn the_winner_does_not_depend_on_arrival_order() {
        // Every order of four attempts of mixed rank ends with the same winner.
        let attempts = [
            incoming(1, false, false),
            incoming(2, true, false),
            incoming(3, true, true),
            incoming(4, true, true),
        ];
        let orders = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1], [1, 3, 0, 2]];
        for order in orders {
            let first = attempts[order[0]];
            let mut call = StoredCall {
                attempt_mask: attempt_bit(first.attempt),
                attempt: first.attempt,
                has_usage: first.has_usage,
                success: first.success,
            };
            for &i in &order[1..] {
                let a = attempts[i];
                let Decision::NewAttempt {
                    replace,
                    attempt_mask,
                } = decide(call, a)
                else {
                    panic!("not a duplicate");
                };
                call.attempt_mask = attempt_mask;
                if replace {
                    (call.attempt, call.has_usage, call.success) =
                        (a.attempt, a.has_usage, a.success);
                }
            }
            assert_eq!(
                (call.attempt, call.attempt_mask),
                (3, 0b1111),
                "order {order:?}"
            );
        }
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
