//! files tests.
