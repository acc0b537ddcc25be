//! Bounded waiting: every wait in the tests has a limit, and says what it
//! waited for when the limit passes.

use std::time::{Duration, Instant};

/// How often [`eventually`] tries again.
const POLL: Duration = Duration::from_millis(50);

/// Calls `attempt` until it returns `Some`, for at most `limit`; then fails
/// with `why()`, which describes the state at that moment.
pub fn eventually<T>(
    limit: Duration,
    mut attempt: impl FnMut() -> Option<T>,
    why: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        if Instant::now() >= deadline {
            panic!("not within {limit:?}: {}", why());
        }
        std::thread::sleep(POLL);
    }
}
