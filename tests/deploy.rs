//! deploy tests.
