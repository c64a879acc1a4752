//! End-to-end tests that cross crates live in `tests/tests/`.
