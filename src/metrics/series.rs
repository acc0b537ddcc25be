//! The one guard between every family and the exposition: a scrape never
//! holds two series with identical labels.
//!
//! Prometheus keeps one of two such series and silently drops the other,
//! so a collision can hide a certificate or a pending restart. Labels are
//! built to be unique (paths are escaped injectively, endpoint targets are
//! unique per source), and this guard makes it certain: every family is
//! written through a [`Family`], which first finds the label sets that
//! occur more than once ([`Twins`]) and gives each of those series a
//! `discriminator` label — the first 8 hex digits of its certificate's
//! SHA-256, or of the place's raw identity for other families — as the
//! metric contract prescribes. Series that still agree in every label
//! *and* the discriminator describe the same certificate in the same
//! place, so they carry the same value and are written once.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::hash::Hasher;

use prometheus_client::encoding::{
    EncodeCounterValue, EncodeGaugeValue, EncodeLabel, EncodeLabelSet, EncodeMetric,
    LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The label that tells apart series whose other labels are equal.
pub(super) const DISCRIMINATOR: &str = "discriminator";

/// A series' label set as the guard sees it.
pub(super) trait Series: EncodeLabelSet {
    /// Feeds `h` exactly the label names and values `encode` writes.
    fn hash_labels(&self, h: &mut dyn Hasher);
    /// 8 hex digits that tell this series apart from another with the
    /// same labels.
    fn discriminator(&self) -> String;
}

/// Feeds one label into a hasher, delimited so `("ab","c")` and
/// `("a","bc")` differ.
pub(super) fn hash_label(h: &mut dyn Hasher, name: &str, value: &str) {
    h.write(name.as_bytes());
    h.write_u8(0xff);
    h.write(value.as_bytes());
    h.write_u8(0xfe);
}

/// The first 8 hex digits of the SHA-256 of `bytes`.
pub(super) fn short_hash(bytes: &[u8]) -> String {
    hex8(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The first 8 hex digits of a digest.
pub(super) fn hex8(digest: &[u8]) -> String {
    let mut out = String::with_capacity(8);
    for b in digest.iter().take(4) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn label_hash(series: &dyn Series) -> u64 {
    let mut h = DefaultHasher::new();
    series.hash_labels(&mut h);
    h.finish()
}

/// The label sets that more than one series of a family would carry.
#[derive(Debug, Default)]
pub(super) struct Twins {
    hashes: HashSet<u64>,
}

impl Twins {
    /// Runs `each`, which calls its argument once per series of a family,
    /// and remembers the label sets seen more than once.
    pub(super) fn find(
        each: impl FnOnce(&mut dyn FnMut(&dyn Series) -> fmt::Result) -> fmt::Result,
    ) -> Twins {
        let mut seen = HashSet::new();
        let mut hashes = HashSet::new();
        let _ = each(&mut |series| {
            let h = label_hash(series);
            if !seen.insert(h) {
                hashes.insert(h);
            }
            Ok(())
        });
        Twins { hashes }
    }

    /// Whether no label set occurs twice.
    pub(super) fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Writes the series of one family through the guard.
#[derive(Debug)]
pub(super) struct Family<'t> {
    twins: &'t Twins,
    /// (label hash, discriminator) of twins already written.
    written: HashSet<(u64, String)>,
}

/// What to write for one series.
enum Verdict {
    /// Its labels are unique.
    AsIs,
    /// Its labels are shared: add the discriminator.
    Discriminated(String),
    /// An identical series was already written.
    Skip,
}

impl<'t> Family<'t> {
    /// A writer for a family whose twins are `twins`.
    pub(super) fn new(twins: &'t Twins) -> Family<'t> {
        Family {
            twins,
            written: HashSet::new(),
        }
    }

    fn verdict(&mut self, series: &dyn Series) -> Verdict {
        if self.twins.is_empty() {
            return Verdict::AsIs;
        }
        let h = label_hash(series);
        if !self.twins.hashes.contains(&h) {
            return Verdict::AsIs;
        }
        let d = series.discriminator();
        if self.written.insert((h, d.clone())) {
            Verdict::Discriminated(d)
        } else {
            Verdict::Skip
        }
    }

    /// Writes one gauge sample.
    pub(super) fn gauge<V: EncodeGaugeValue>(
        &mut self,
        m: &mut MetricEncoder<'_>,
        series: &dyn Series,
        value: V,
    ) -> fmt::Result {
        self.write(m, series, &ConstGauge::new(value))
    }

    /// Writes one counter sample.
    pub(super) fn counter<V: EncodeCounterValue>(
        &mut self,
        m: &mut MetricEncoder<'_>,
        series: &dyn Series,
        value: V,
    ) -> fmt::Result {
        self.write(m, series, &ConstCounter::new(value))
    }

    fn write(
        &mut self,
        m: &mut MetricEncoder<'_>,
        series: &dyn Series,
        metric: &dyn EncodeMetric,
    ) -> fmt::Result {
        let discriminator = match self.verdict(series) {
            Verdict::AsIs => None,
            Verdict::Discriminated(d) => Some(d),
            Verdict::Skip => return Ok(()),
        };
        metric.encode(m.encode_family(&With(series, discriminator.as_deref()))?)
    }
}

/// A series' labels, with the discriminator appended when it has one.
struct With<'a>(&'a dyn Series, Option<&'a str>);

impl EncodeLabelSet for With<'_> {
    fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.0.encode(e)?;
        match self.1 {
            Some(d) => (DISCRIMINATOR, d).encode(e.encode_label()),
            None => Ok(()),
        }
    }
}

/// A label set of name/value pairs, with the raw identity of its place
/// (e.g. a path's bytes before escaping) for the discriminator.
#[derive(Debug)]
pub(super) struct Pairs<'a> {
    pairs: &'a [(&'a str, &'a str)],
    raw: Option<&'a [u8]>,
}

impl<'a> Pairs<'a> {
    /// Labels whose values identify the place exactly.
    pub(super) fn new(pairs: &'a [(&'a str, &'a str)]) -> Pairs<'a> {
        Pairs { pairs, raw: None }
    }

    /// Labels whose values may have lost detail (an escaped path): `raw`
    /// is what the place really is.
    pub(super) fn with_raw(pairs: &'a [(&'a str, &'a str)], raw: &'a [u8]) -> Pairs<'a> {
        Pairs {
            pairs,
            raw: Some(raw),
        }
    }
}

impl EncodeLabelSet for Pairs<'_> {
    fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
        for (k, v) in self.pairs {
            (*k, *v).encode(e.encode_label())?;
        }
        Ok(())
    }
}

impl Series for Pairs<'_> {
    fn hash_labels(&self, h: &mut dyn Hasher) {
        for (k, v) in self.pairs {
            hash_label(h, k, v);
        }
    }

    fn discriminator(&self) -> String {
        match self.raw {
            Some(raw) => short_hash(raw),
            None => {
                let mut h = DefaultHasher::new();
                self.hash_labels(&mut h);
                short_hash(&h.finish().to_be_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::DescriptorEncoder;
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Registry;

    /// One series: labels, raw identity, value.
    type Sample = (Vec<(&'static str, &'static str)>, &'static [u8], i64);

    /// A family whose series are the given samples.
    #[derive(Debug)]
    struct Fixed(Vec<Sample>);

    impl Collector for Fixed {
        fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
            let each = |f: &mut dyn FnMut(&dyn Series) -> fmt::Result| {
                for (pairs, raw, _) in &self.0 {
                    f(&Pairs::with_raw(pairs, raw))?;
                }
                Ok(())
            };
            let twins = Twins::find(each);
            let mut family = Family::new(&twins);
            let mut m = enc.encode_descriptor("t", "t", None, MetricType::Gauge)?;
            for (pairs, raw, value) in &self.0 {
                family.gauge(&mut m, &Pairs::with_raw(pairs, raw), *value)?;
            }
            Ok(())
        }
    }

    fn render(series: Vec<Sample>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(series)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn unique_labels_are_written_as_they_are() {
        let out = render(vec![
            (vec![("path", "/a")], b"/a", 1),
            (vec![("path", "/b")], b"/b", 2),
        ]);
        assert!(out.contains("t{path=\"/a\"} 1\n"), "{out}");
        assert!(!out.contains(DISCRIMINATOR), "{out}");
    }

    #[test]
    fn shared_labels_get_a_discriminator_on_both_series() {
        let out = render(vec![
            (vec![("path", "/a\\xff")], b"/a\xff", 1),
            (vec![("path", "/a\\xff")], b"/a\\xff", 0),
            (vec![("path", "/b")], b"/b", 2),
        ]);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("t{")).collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(
            lines.iter().filter(|l| l.contains(DISCRIMINATOR)).count(),
            2
        );
        let unique: HashSet<&str> = lines
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        assert_eq!(unique.len(), 3, "{out}");
    }

    #[test]
    fn identical_series_are_written_once() {
        let out = render(vec![
            (vec![("path", "/a")], b"/a", 1),
            (vec![("path", "/a")], b"/a", 1),
        ]);
        assert_eq!(
            out.lines().filter(|l| l.starts_with("t{")).count(),
            1,
            "{out}"
        );
    }
}
