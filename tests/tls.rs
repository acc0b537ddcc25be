//! Handshake failure reasons.
