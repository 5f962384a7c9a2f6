//! Budget tests.
