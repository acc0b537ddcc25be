//! One rendered `/metrics` body: the snapshot part shared across seconds,
//! the clock part of one second, and their conversion to the text format.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use prometheus_client::registry::Registry;
use tokio::sync::OnceCell;

use super::{
    encode as encode_registry, to_prometheus_text, CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE,
};

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
            Format::OpenMetrics => CONTENT_TYPE,
            Format::PrometheusText => PROMETHEUS_TEXT_CONTENT_TYPE,
        }
    }
}

/// The part of the exposition that only changes with the snapshot (or at
/// the instant `valid_until`): all per-certificate, per-probe and
/// per-source families. At 10 000 certificates it is nearly all of the
/// ~10 MB body, so it is rendered once per snapshot, not once per second.
#[derive(Debug)]
pub(super) struct SnapshotPart {
    pub(super) generation: u64,
    pub(super) valid_until: Option<SystemTime>,
    /// OpenMetrics without the closing `# EOF`.
    pub(super) openmetrics: Bytes,
    pub(super) prometheus_text: OnceCell<Bytes>,
}

impl SnapshotPart {
    pub(super) fn fresh_for(&self, generation: u64, now: SystemTime) -> bool {
        self.generation == generation && self.valid_until.is_none_or(|until| now < until)
    }
}

/// One rendered exposition: the shared snapshot part and this second's
/// clock part, served one after the other without copying them together.
#[derive(Debug)]
pub struct Rendered {
    /// The store generation it shows.
    pub(super) generation: u64,
    /// The Unix second it was rendered for.
    pub(super) second: i64,
    /// When the render started.
    pub(super) at: Instant,
    pub(super) part: Arc<SnapshotPart>,
    /// The clock-dependent families, OpenMetrics, ending in `# EOF`.
    pub(super) clock: Bytes,
    /// `clock` in the text format, converted when first asked for.
    pub(super) clock_text: OnceCell<Bytes>,
}

/// A body as its chunks, in order.
pub type Chunks = [Bytes; 2];

impl Rendered {
    /// Whether this body is at least as new as a scrape of `generation` in
    /// `second` needs (a render finished while that scrape waited).
    pub(super) fn covers(&self, generation: u64, second: i64) -> bool {
        self.generation >= generation && self.second >= second
    }

    /// The body in `format`. The text format is converted (once, off the
    /// async workers) the first time it is asked for.
    pub async fn body(&self, format: Format) -> Result<Chunks, RenderError> {
        match format {
            Format::OpenMetrics => Ok([self.part.openmetrics.clone(), self.clock.clone()]),
            Format::PrometheusText => {
                let part = self
                    .part
                    .prometheus_text
                    .get_or_try_init(|| to_text(self.part.openmetrics.clone()))
                    .await?;
                let clock = self
                    .clock_text
                    .get_or_try_init(|| to_text(self.clock.clone()))
                    .await?;
                Ok([part.clone(), clock.clone()])
            }
        }
    }
}

/// Converts OpenMetrics to the text format on the blocking pool.
async fn to_text(openmetrics: Bytes) -> Result<Bytes, RenderError> {
    let text = tokio::task::spawn_blocking(move || {
        to_prometheus_text(std::str::from_utf8(&openmetrics).unwrap_or_default())
    })
    .await?;
    Ok(Bytes::from(text))
}

/// Encodes `registry` as OpenMetrics, reserving `capacity` bytes.
pub(super) fn encode(registry: &Registry, capacity: usize) -> Result<String, RenderError> {
    let mut body = String::with_capacity(capacity);
    encode_registry(registry, &mut body).map_err(|_| RenderError::Encode)?;
    Ok(body)
}
