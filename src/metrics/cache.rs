//! The rendered `/metrics` body, shared by concurrent scrapers.
//!
//! Rendering 10 000 certificates takes tens of milliseconds of CPU, so
//! scrapes share renders instead of each paying for one:
//!
//! * the body has two parts: the snapshot part (every family per
//!   certificate, probe and source, nearly all of the bytes) is rendered
//!   once per snapshot, and again only when [`valid_until`]
//!   says a value in it is due to flip with the clock; the clock part
//!   (`process_*`, the opt-in relative metrics) is rendered per second;
//! * one render serves every scrape of the same snapshot in the same
//!   second (the clock-dependent values have one-second resolution);
//! * renders are single-flight: scrapers that need a new one wait for the
//!   one in progress instead of starting their own;
//! * when only the clock moved (same snapshot) and the body is less than
//!   [`STALE_FOR`] old, the scrape is answered with it at once and a render
//!   for the new second runs in the background (stale-while-revalidate),
//!   so under sustained load no scraper waits for a render at all;
//! * a new snapshot (a probe or file pass published) is always rendered
//!   before it is served: what a scrape returns is never older than what
//!   was published when it arrived.
//!
//! Renders run on the blocking pool, so a long one never holds up the
//! async workers that serve other connections.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use prometheus_client::registry::Registry;
use tokio::sync::OnceCell;

use super::probe::{CountersCollector, ProbeCounters};
use super::rendered::{encode, RenderError, Rendered, SnapshotPart};
use super::{clock_registry, snapshot_registry, valid_until};
use crate::snapshot::Store;

/// How old a body may be when served for a later second of the same
/// snapshot. Values that move with the clock (`x509_cert_expired`,
/// `x509_source_up`, `expose_relative`, `process_*`) are then at most this
/// much late.
pub(super) const STALE_FOR: Duration = Duration::from_secs(1);

/// A body that has not been replaced this long after its render is
/// dropped. Under sustained load a new one is rendered every second, so it
/// stays; a Prometheus scraping every 15 s or more would find it outdated
/// anyway (endpoint probes publish between scrapes), and holding a body of
/// megabytes between its scrapes is what a sidecar should not do.
pub(super) const KEEP_FOR: Duration = Duration::from_secs(2);

/// The shared render cache for one store.
#[derive(Debug)]
pub struct Exposition {
    store: Arc<Store>,
    snapshot_registry: Arc<Registry>,
    clock_registry: Arc<Registry>,
    /// `/probe` requests, rendered with the clock part.
    probe_counters: Arc<ProbeCounters>,
    latest: Mutex<Option<Arc<Rendered>>>,
    /// The snapshot part of the last body dropped from the cache, alive as
    /// long as a scrape is still sending it: reused while still exact,
    /// rather than rendered again beside it (each slow reader would
    /// otherwise hold a copy of its own).
    evicted: Mutex<Weak<SnapshotPart>>,
    /// Held while rendering: the single flight.
    rendering: tokio::sync::Mutex<()>,
    /// A background refresh is queued or running.
    refreshing: AtomicBool,
    /// The size of the last snapshot part, to size the next one's buffer
    /// at once (growing a buffer of megabytes by doubling leaves the
    /// allocator holding the discarded halves).
    last_len: AtomicUsize,
}

impl Exposition {
    /// A cache over the metrics of `store` ([`snapshot_registry`]
    /// followed by [`clock_registry`] and the `/probe` counters).
    pub fn new(store: Arc<Store>) -> Exposition {
        let probe_counters = Arc::new(ProbeCounters::default());
        let mut clock = clock_registry(store.clone());
        clock.register_collector(Box::new(CountersCollector(probe_counters.clone())));
        Exposition {
            snapshot_registry: Arc::new(snapshot_registry(store.clone())),
            clock_registry: Arc::new(clock),
            probe_counters,
            store,
            latest: Mutex::new(None),
            evicted: Mutex::new(Weak::new()),
            rendering: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            last_len: AtomicUsize::new(0),
        }
    }

    /// The counters of `/probe` requests this exposition renders.
    pub fn probe_counters(&self) -> &Arc<ProbeCounters> {
        &self.probe_counters
    }

    /// The body for a scrape arriving now.
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Rendered>, RenderError> {
        let (generation, second) = (self.store.generation(), unix_second());
        if let Some(latest) = self.latest() {
            if latest.generation == generation && latest.second == second {
                return Ok(latest);
            }
            if latest.generation == generation && latest.at.elapsed() < STALE_FOR {
                self.refresh_in_background();
                return Ok(latest);
            }
        }
        let _flight = self.rendering.lock().await;
        // While this scrape waited, the render in flight may have produced
        // a body at least as new as the one it needs.
        if let Some(latest) = self.latest().filter(|l| l.covers(generation, second)) {
            return Ok(latest);
        }
        self.render().await
    }

    fn latest(&self) -> Option<Arc<Rendered>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Renders the store as it is now and makes that the latest body,
    /// reusing the snapshot part while it is still exact. Callers hold
    /// `rendering`.
    async fn render(self: &Arc<Self>) -> Result<Arc<Rendered>, RenderError> {
        // The generation is read before anything is rendered: if a publish
        // lands meanwhile, the body is labelled older than it is and the
        // next scrape renders again, never the other way round.
        let generation = self.store.generation();
        let now = SystemTime::now();
        let at = Instant::now();
        let reusable = self
            .latest()
            .map(|p| p.part.clone())
            .or_else(|| {
                self.evicted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .upgrade()
            })
            .filter(|part| part.fresh_for(generation, now));
        let capacity = self.last_len.load(Ordering::Relaxed).max(4096);
        let (store, snapshot_registry, clock_registry) = (
            self.store.clone(),
            self.snapshot_registry.clone(),
            self.clock_registry.clone(),
        );
        let (part, clock) = tokio::task::spawn_blocking(move || {
            let part = match reusable {
                Some(part) => part,
                None => {
                    let valid_until = valid_until(&store.load(), now);
                    let mut body = encode(&snapshot_registry, capacity + 1024)?;
                    if body.ends_with(EOF) {
                        body.truncate(body.len() - EOF.len());
                    }
                    Arc::new(SnapshotPart::new(
                        generation,
                        valid_until,
                        Bytes::from(body),
                    ))
                }
            };
            let clock = Bytes::from(encode(&clock_registry, 8192)?);
            Ok::<_, RenderError>((part, clock))
        })
        .await??;
        let rendered = Arc::new(Rendered {
            generation,
            second: crate::clock::unix_secs(now),
            at,
            part,
            clock,
            clock_text: OnceCell::new(),
            clock_gzip: [OnceCell::new(), OnceCell::new()],
        });
        self.last_len
            .store(rendered.part.openmetrics.len(), Ordering::Relaxed);
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(rendered.clone());
        self.evict_later(&rendered);
        Ok(rendered)
    }

    /// Drops `rendered` after [`KEEP_FOR`] unless a newer render replaced
    /// it, and hands the freed pages back to the kernel.
    fn evict_later(self: &Arc<Self>, rendered: &Arc<Rendered>) {
        let (this, rendered) = (Arc::downgrade(self), Arc::downgrade(rendered));
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_FOR).await;
            let Some(this) = this.upgrade() else {
                return;
            };
            let evicted = {
                let mut latest = this.latest.lock().unwrap_or_else(PoisonError::into_inner);
                match &*latest {
                    Some(l) if std::ptr::eq(Arc::as_ptr(l), rendered.as_ptr()) => latest.take(),
                    _ => None,
                }
            };
            if let Some(evicted) = evicted {
                *this.evicted.lock().unwrap_or_else(PoisonError::into_inner) =
                    Arc::downgrade(&evicted.part);
                drop(evicted);
                tracing::debug!(
                    still_sending = rendered.strong_count(),
                    "dropped the cached /metrics body: not scraped for a while"
                );
                // A scrape may still be sending it; then it is freed when
                // that one finishes, and trimmed at the next eviction.
                if rendered.strong_count() == 0 {
                    crate::memory::release_free();
                }
            }
        });
    }

    /// Starts a render for the current second unless one is already queued.
    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _flight = this.rendering.lock().await;
            let (generation, second) = (this.store.generation(), unix_second());
            let fresh = this.latest().is_some_and(|l| l.covers(generation, second));
            if !fresh {
                if let Err(e) = this.render().await {
                    tracing::error!(error = %e, "background render of /metrics failed");
                }
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }
}

/// The line that ends an OpenMetrics exposition.
const EOF: &str = "# EOF\n";

fn unix_second() -> i64 {
    crate::clock::now_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Encoding, Format};

    fn exposition() -> (Arc<Exposition>, Arc<Store>) {
        let store =
            crate::scheduler::test_store("files:\n  - name: f\n    paths: [/nonexistent/x.pem]\n");
        (Arc::new(Exposition::new(store.clone())), store)
    }

    /// Sleeps until the wall clock's sub-second part is at least `at`.
    async fn until_fraction(at: Duration) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let fraction = Duration::from_nanos(u64::from(now.subsec_nanos()));
        let wait = if fraction < at {
            at - fraction
        } else {
            Duration::from_secs(1) - fraction + at
        };
        tokio::time::sleep(wait).await;
    }

    #[tokio::test]
    async fn scrapes_in_the_same_second_share_one_render() {
        let (exposition, _) = exposition();
        until_fraction(Duration::from_millis(100)).await;
        let first = exposition.current().await.unwrap();
        let second = exposition.current().await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[tokio::test]
    async fn a_new_second_serves_the_previous_body_while_rendering_the_next() {
        let (exposition, _) = exposition();
        until_fraction(Duration::from_millis(600)).await;
        let first = exposition.current().await.unwrap();
        until_fraction(Duration::from_millis(20)).await;
        let stale = exposition.current().await.unwrap();
        assert!(Arc::ptr_eq(&first, &stale), "served at once, not rendered");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let latest = exposition.latest().unwrap();
            if latest.second > first.second {
                break;
            }
            assert!(Instant::now() < deadline, "no background render");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let next = exposition.current().await.unwrap();
        assert!(next.second > first.second);
    }

    #[tokio::test]
    async fn an_old_body_is_never_served_for_a_later_second() {
        let (exposition, _) = exposition();
        let first = exposition.current().await.unwrap();
        tokio::time::sleep(STALE_FOR + Duration::from_millis(50)).await;
        let next = exposition.current().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &next));
        assert!(next.second > first.second);
    }

    #[tokio::test]
    async fn a_publish_is_rendered_before_it_is_served() {
        let (exposition, store) = exposition();
        let first = exposition.current().await.unwrap();
        store.publish_files(0, Default::default(), Duration::ZERO);
        let next = exposition.current().await.unwrap();
        assert!(next.generation > first.generation);
        let body = text(&next, Format::OpenMetrics).await;
        assert!(
            body.contains("certinel_source_last_run_timestamp_seconds{source_kind=\"file\""),
            "{body}"
        );
    }

    fn facts_expiring_at(not_after: i64) -> Arc<crate::cert::CertFacts> {
        Arc::new(crate::cert::CertFacts {
            sha256: [0; 32],
            not_before: 0,
            not_after,
            serial_number: "1".into(),
            subject: Default::default(),
            issuer: Default::default(),
        })
    }

    fn publish_cert(store: &Store, not_after: i64) {
        let report = crate::sources::files::FileReport {
            certs: vec![facts_expiring_at(not_after)],
            ..Default::default()
        };
        let scan = [(Arc::from(std::path::Path::new("/x.pem")), Arc::new(report))]
            .into_iter()
            .collect();
        store.publish_files(0, scan, Duration::ZERO);
    }

    async fn text(rendered: &Rendered, format: Format) -> String {
        let chunks = rendered.body(format, Encoding::Identity).await.unwrap();
        chunks
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    async fn expired_value(rendered: &Rendered) -> String {
        let body = text(rendered, Format::OpenMetrics).await;
        let line = body
            .lines()
            .find(|l| l.starts_with("x509_cert_expired{"))
            .unwrap_or_else(|| panic!("no x509_cert_expired in {body}"));
        line.rsplit(' ').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn the_certificate_families_are_rendered_once_per_snapshot() {
        let (exposition, store) = exposition();
        publish_cert(&store, i64::MAX / 2);
        let first = exposition.current().await.unwrap();
        tokio::time::sleep(STALE_FOR + Duration::from_millis(50)).await;
        let next = exposition.current().await.unwrap();
        assert!(
            next.second > first.second,
            "a new render for the new second"
        );
        assert!(Arc::ptr_eq(&first.part, &next.part), "same snapshot part");
        assert!(!Arc::ptr_eq(&first, &next));
    }

    #[tokio::test]
    async fn a_certificate_passing_not_after_flips_expired_without_a_new_snapshot() {
        let (exposition, store) = exposition();
        let now = unix_second();
        publish_cert(&store, now + 1);
        let before = exposition.current().await.unwrap();
        assert_eq!(expired_value(&before).await, "0");
        // Expired once the clock reaches not_after + 1; bounded wait.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now_body = exposition.current().await.unwrap();
            if expired_value(&now_body).await == "1" {
                assert_eq!(now_body.generation, before.generation);
                break;
            }
            assert!(Instant::now() < deadline, "x509_cert_expired never flipped");
        }
    }

    #[tokio::test]
    async fn a_body_nobody_scrapes_is_dropped() {
        let (exposition, _) = exposition();
        exposition.current().await.unwrap();
        assert!(exposition.latest().is_some());
        tokio::time::sleep(KEEP_FOR + Duration::from_millis(300)).await;
        assert!(exposition.latest().is_none());
    }

    #[tokio::test]
    async fn a_dropped_body_still_being_sent_is_reused_not_rendered_again() {
        let (exposition, store) = exposition();
        publish_cert(&store, i64::MAX / 2);
        let sending = exposition.current().await.unwrap();
        tokio::time::sleep(KEEP_FOR + Duration::from_millis(300)).await;
        assert!(exposition.latest().is_none(), "dropped from the cache");
        let next = exposition.current().await.unwrap();
        assert!(Arc::ptr_eq(&sending.part, &next.part), "same snapshot part");
        // Once nobody sends it any more, it is gone for good.
        let part = Arc::downgrade(&next.part);
        drop((sending, next));
        tokio::time::sleep(KEEP_FOR + Duration::from_millis(300)).await;
        assert!(part.upgrade().is_none());
    }

    #[tokio::test]
    async fn sustained_scrapes_keep_sharing_one_snapshot_part() {
        let (exposition, store) = exposition();
        publish_cert(&store, i64::MAX / 2);
        let first = exposition.current().await.unwrap();
        let until = Instant::now() + KEEP_FOR * 2;
        let mut last = first.clone();
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = exposition.current().await.unwrap();
        }
        assert!(last.second > first.second);
        assert!(Arc::ptr_eq(&first.part, &last.part));
    }

    #[tokio::test]
    async fn the_text_format_is_converted_once_and_has_no_eof() {
        let (exposition, _) = exposition();
        let rendered = exposition.current().await.unwrap();
        let first = rendered
            .body(Format::PrometheusText, Encoding::Identity)
            .await
            .unwrap();
        let again = rendered
            .body(Format::PrometheusText, Encoding::Identity)
            .await
            .unwrap();
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(a.as_ptr(), b.as_ptr());
        }
        let body = text(&rendered, Format::PrometheusText).await;
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("# TYPE process_cpu_seconds_total counter"),
            "{body}"
        );
        let om = text(&rendered, Format::OpenMetrics).await;
        assert!(
            om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1,
            "{om}"
        );
    }

    #[tokio::test]
    async fn gzip_is_one_member_per_part_compressed_once_and_reads_back_whole() {
        use std::io::Read;
        let (exposition, store) = exposition();
        publish_cert(&store, i64::MAX / 2);
        let rendered = exposition.current().await.unwrap();
        for format in [Format::OpenMetrics, Format::PrometheusText] {
            let first = rendered.body(format, Encoding::Gzip).await.unwrap();
            let again = rendered.body(format, Encoding::Gzip).await.unwrap();
            for (a, b) in first.iter().zip(&again) {
                assert_eq!(a.as_ptr(), b.as_ptr(), "compressed once");
            }
            // Both members read back, in order, as one stream.
            let wire: Vec<u8> = first.iter().flat_map(|c| c.iter().copied()).collect();
            let mut unzipped = String::new();
            flate2::read::MultiGzDecoder::new(wire.as_slice())
                .read_to_string(&mut unzipped)
                .unwrap();
            assert_eq!(unzipped, text(&rendered, format).await);
        }
    }
}
