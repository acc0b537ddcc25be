//! alerting tests.
