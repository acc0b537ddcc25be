//! The rendered `/metrics` body, shared by concurrent scrapers.
//!
//! Rendering 10 000 certificates takes tens of milliseconds of CPU, so
//! scrapes share renders instead of each paying for one:
//!
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use prometheus_client::registry::Registry;
use tokio::sync::OnceCell;

use crate::collector;
use crate::snapshot::Store;

/// How old a body may be when served for a later second of the same
/// snapshot. Values that move with the clock (`x509_cert_expired`,
/// `expose_relative`, `process_*`) are then at most this much late.
pub const STALE_FOR: Duration = Duration::from_secs(1);

/// Why no body could be produced.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The registry failed to encode (a collector returned an error).
    #[error("encoding metrics failed")]
    Encode,
    /// The render task panicked or was cancelled at shutdown.
    #[error("render task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The wire format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for).
    OpenMetrics,
    /// Prometheus text format 0.0.4 (curl, older scrapers).
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => collector::CONTENT_TYPE,
            Format::PrometheusText => collector::PROMETHEUS_TEXT_CONTENT_TYPE,
        }
    }
}

/// One rendered exposition: OpenMetrics always, the text format when first
/// asked for (most deployments never do).
#[derive(Debug)]
pub struct Rendered {
    /// The store generation it shows.
    generation: u64,
    /// The Unix second it was rendered for.
    second: u64,
    /// When the render started.
    at: Instant,
    openmetrics: Bytes,
    prometheus_text: OnceCell<Bytes>,
}

impl Rendered {
    /// The body in `format`, converting (once, off the async workers) the
    /// first time the text format is asked for.
    pub async fn body(&self, format: Format) -> Result<Bytes, RenderError> {
        match format {
            Format::OpenMetrics => Ok(self.openmetrics.clone()),
            Format::PrometheusText => {
                let om = self.openmetrics.clone();
                self.prometheus_text
                    .get_or_try_init(|| async move {
                        tokio::task::spawn_blocking(move || {
                            Bytes::from(collector::to_prometheus_text(
                                std::str::from_utf8(&om).unwrap_or_default(),
                            ))
                        })
                        .await
                    })
                    .await
                    .cloned()
                    .map_err(RenderError::from)
            }
        }
    }
}

/// The shared render cache for one registry.
#[derive(Debug)]
pub struct Exposition {
    registry: Arc<Registry>,
    store: Arc<Store>,
    latest: Mutex<Option<Arc<Rendered>>>,
    /// Held while rendering: the single flight.
    rendering: tokio::sync::Mutex<()>,
    /// A background refresh is queued or running.
    refreshing: AtomicBool,
}

impl Exposition {
    /// A cache over `registry`, whose data lives in `store`.
    pub fn new(registry: Arc<Registry>, store: Arc<Store>) -> Exposition {
        Exposition {
            registry,
            store,
            latest: Mutex::new(None),
            rendering: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        }
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
        if let Some(latest) = self.latest() {
            if latest.generation >= generation && latest.second >= second {
                return Ok(latest);
            }
        }
        self.render().await
    }

    fn latest(&self) -> Option<Arc<Rendered>> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Renders the store as it is now and makes that the latest body.
    /// Callers hold `rendering`.
    async fn render(&self) -> Result<Arc<Rendered>, RenderError> {
        let (generation, second, at) = (self.store.generation(), unix_second(), Instant::now());
        let capacity = self.latest().map_or(4096, |p| p.openmetrics.len() + 1024);
        let registry = self.registry.clone();
        let body = tokio::task::spawn_blocking(move || {
            let mut body = String::with_capacity(capacity);
            collector::encode(&registry, &mut body).map(|()| body)
        })
        .await?
        .map_err(|_| RenderError::Encode)?;
        let rendered = Arc::new(Rendered {
            generation,
            second,
            at,
            openmetrics: Bytes::from(body),
            prometheus_text: OnceCell::new(),
        });
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(rendered.clone());
        Ok(rendered)
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
            let fresh = this
                .latest()
                .is_some_and(|l| l.generation >= generation && l.second >= second);
            if !fresh {
                if let Err(e) = this.render().await {
                    tracing::error!(error = %e, "background render of /metrics failed");
                }
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn exposition() -> (Arc<Exposition>, Arc<Store>) {
        let config = Config::from_yaml(
            "files:\n  - name: f\n    paths: [/nonexistent/x.pem]\n",
            std::path::Path::new("/"),
        )
        .unwrap();
        let store = Arc::new(Store::new(&config));
        let registry = Arc::new(collector::registry(store.clone()));
        (Arc::new(Exposition::new(registry, store.clone())), store)
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
        let body = next.body(Format::OpenMetrics).await.unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(
            body.contains("certinel_source_last_run_timestamp_seconds{source_kind=\"file\""),
            "{body}"
        );
    }

    #[tokio::test]
    async fn the_text_format_is_converted_once_and_has_no_eof() {
        let (exposition, _) = exposition();
        let rendered = exposition.current().await.unwrap();
        let text = rendered.body(Format::PrometheusText).await.unwrap();
        let again = rendered.body(Format::PrometheusText).await.unwrap();
        assert_eq!(text.as_ptr(), again.as_ptr());
        assert!(!std::str::from_utf8(&text).unwrap().contains("# EOF"));
    }
}
