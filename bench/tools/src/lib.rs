//! What the benchmark tools share: the certificates they mint, all
//! `O=certinel bench` with explicit serials, from `certinel-testkit`, the
//! factory the tests and criterion benches use too.

pub mod svg;

use certinel_testkit::{now, Purpose, Spec, DAY};

pub use certinel_testkit::{Ca, Error as BoxError, Minted};

fn spec<'a>(cn: &'a str, serial: &'a [u8], age_days: i64, days: i64, purpose: Purpose) -> Spec<'a> {
    Spec {
        o: Some("certinel bench"),
        serial: Some(serial),
        ..Spec::new(cn, now() - age_days * DAY, now() + days * DAY, purpose)
    }
}

/// A self-signed root CA, valid from 30 days ago for ten years.
pub fn root(cn: &str, serial: u64) -> Result<Ca, BoxError> {
    Ca::root(&spec(cn, &serial.to_be_bytes(), 30, 3650, Purpose::Ca))
}

/// An intermediate CA `ca` signs, valid from 30 days ago for ten years.
pub fn intermediate(ca: &Ca, cn: &str, serial: u64) -> Result<Ca, BoxError> {
    ca.intermediate(&spec(cn, &serial.to_be_bytes(), 30, 3650, Purpose::Ca))
}

/// A server leaf `ca` signs for `sans` (IP addresses or DNS names), valid
/// from a day ago for `days` days.
pub fn leaf(ca: &Ca, cn: &str, sans: &[&str], serial: u64, days: i64) -> Result<Minted, BoxError> {
    let serial = serial.to_be_bytes();
    ca.issue(&Spec {
        sans,
        ..spec(cn, &serial, 1, days, Purpose::Server)
    })
}
