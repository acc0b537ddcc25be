//! One rendered `/metrics` body: the snapshot part shared across seconds,
//! the clock part of one second, and their conversion to the text format
//! and to gzip.
//!
//! Each part is compressed on its own, once, the first time a scraper
//! asks for gzip, and the two gzip members are sent one after the other.
//! A gzip stream may hold several members (RFC 1952 2.2) and every reader
//! scrapers use reads them all (Go's `compress/gzip`, Prometheus' reader,
//! is multistream by default), so the snapshot part is compressed once per
//! snapshot, not once per second with the clock part.

use std::io::Write;
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
    /// Compressing the body failed (it writes to memory: only an
    /// allocation failure would).
    #[error("compressing metrics failed: {0}")]
    Compress(std::io::Error),
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
    /// Where this format's gzip member is cached.
    fn slot(self) -> usize {
        match self {
            Format::OpenMetrics => 0,
            Format::PrometheusText => 1,
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => CONTENT_TYPE,
            Format::PrometheusText => PROMETHEUS_TEXT_CONTENT_TYPE,
        }
    }
}

/// How a body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As rendered.
    Identity,
    /// gzip (`Content-Encoding: gzip`), which Prometheus asks for.
    Gzip,
}

/// The compression level, measured on the exposition of 10 000
/// certificates (10.8 MiB, bench/NOTES.md F7): level 1 takes 7 ms for
/// 510 KB, level 4 19 ms for 347 KB, levels 6 and 9 take 42 and 105 ms for
/// no fewer bytes. Every scrape sends the bytes; the CPU is spent once per
/// render.
const GZIP_LEVEL: u32 = 4;

/// Parts smaller than this are compressed where they are asked for: a
/// hop to the blocking pool would cost more than the compression.
const COMPRESS_INLINE_BELOW: usize = 64 * 1024;

/// Compresses `plain` as one gzip member, off the async workers unless it
/// is small.
async fn gzip(plain: Bytes) -> Result<Bytes, RenderError> {
    if plain.len() < COMPRESS_INLINE_BELOW {
        return gzip_now(&plain);
    }
    tokio::task::spawn_blocking(move || gzip_now(&plain)).await?
}

fn gzip_now(plain: &[u8]) -> Result<Bytes, RenderError> {
    // The exposition compresses about tenfold; a buffer of an eighth
    // rarely grows.
    let out = Vec::with_capacity(plain.len() / 8 + 64);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
    encoder.write_all(plain).map_err(RenderError::Compress)?;
    let out = encoder.finish().map_err(RenderError::Compress)?;
    Ok(Bytes::from(out))
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
    /// Each format as one gzip member, compressed when first asked for.
    pub(super) gzip: [OnceCell<Bytes>; 2],
}

impl SnapshotPart {
    /// A part holding `openmetrics`, nothing converted or compressed yet.
    pub(super) fn new(
        generation: u64,
        valid_until: Option<SystemTime>,
        openmetrics: Bytes,
    ) -> SnapshotPart {
        SnapshotPart {
            generation,
            valid_until,
            openmetrics,
            prometheus_text: OnceCell::new(),
            gzip: [OnceCell::new(), OnceCell::new()],
        }
    }

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
    /// The clock part in each format as one gzip member.
    pub(super) clock_gzip: [OnceCell<Bytes>; 2],
}

/// A body as its chunks, in order.
pub type Chunks = [Bytes; 2];

impl Rendered {
    /// Whether this body is at least as new as a scrape of `generation` in
    /// `second` needs (a render finished while that scrape waited).
    pub(super) fn covers(&self, generation: u64, second: i64) -> bool {
        self.generation >= generation && self.second >= second
    }

    /// The body in `format` and `encoding`. The text format is converted,
    /// and each part compressed, once (off the async workers) the first
    /// time it is asked for.
    pub async fn body(&self, format: Format, encoding: Encoding) -> Result<Chunks, RenderError> {
        let [part, clock] = self.plain(format).await?;
        if encoding == Encoding::Identity {
            return Ok([part, clock]);
        }
        let slot = format.slot();
        let part = self.part.gzip[slot].get_or_try_init(|| gzip(part)).await?;
        let clock = self.clock_gzip[slot]
            .get_or_try_init(|| gzip(clock))
            .await?;
        Ok([part.clone(), clock.clone()])
    }

    async fn plain(&self, format: Format) -> Result<Chunks, RenderError> {
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
