//! Wall-clock time as Prometheus wants it: Unix seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as fractional Unix seconds (0 before the epoch): the value of every
/// `*_timestamp_seconds` gauge.
pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `t` as whole Unix seconds (0 before the epoch), the resolution of
/// certificate validity.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whole Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    unix_secs(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn before_the_epoch_is_zero() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(unix_secs(before), 0);
        assert_eq!(unix_seconds(before), 0.0);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(1500)), 1.5);
    }
}
