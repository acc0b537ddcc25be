//! The allocator policy of a small, long-running sidecar.
//!
//! glibc's malloc keeps freed memory for reuse, and by default raises its
//! mmap threshold to the size of the largest block freed: after the first
//! `/metrics` body of megabytes is dropped, the next ones are carved from
//! an arena heap whose free top is never handed back (a render runs on a
//! blocking-pool thread, with an arena of its own). Measured at 1000
//! endpoints: +2.5 MiB of RSS for good after the second scrape. Pinning
//! the thresholds keeps large, short-lived buffers in their own mappings,
//! unmapped when freed, and [`release_free`] returns what remains free.
//!
//! glibc also gives threads arenas of their own (up to 8 per core), each
//! keeping its own free pages: the runtime's workers and the blocking
//! pool's threads all allocate. One arena for the process, with the
//! per-thread caches in front of it, measured at 1000 endpoints probed
//! 200 times a second: -0.5 to -0.9 MiB of RSS, CPU per probe unchanged
//! (bench/NOTES.md F9).
//!
//! Its `unsafe` is two libc calls that take no pointers; the only other
//! `unsafe` in certinel is `http::limits` (the open-file limit).

/// Large blocks (bodies, scan buffers) get their own mapping from this
/// size on; small ones (per-certificate facts, TLS records) are unaffected.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Pins glibc's mmap and trim thresholds (disabling their growth). Call
/// once, before the runtime starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune_allocator() {
    // SAFETY: mallopt takes two integers and only changes glibc's malloc
    // parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns free heap pages to the kernel (after dropping a large cached
/// body).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free() {
    // SAFETY: malloc_trim takes no pointers and works on glibc's own
    // arenas under their locks; it only returns pages nobody holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators need no tuning.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free() {}
