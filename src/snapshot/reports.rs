//! The per-target slots of an endpoint source, in chunks.
//!
//! Every probe publishes by copying its source's state (`Store::update`):
//! with one flat vector of `Arc`s that copy is one reference count up and
//! one down per target, so a round of `n` probes cost `n²` of them (10 000
//! endpoints: 10⁸ atomic operations a round, half a probe's CPU). In
//! chunks of [`CHUNK`], a publish copies the outer vector (`n / CHUNK`
//! references) and the one chunk it writes to.

use std::sync::Arc;

use super::TargetReport;

/// Slots per chunk: a publish copies `n / CHUNK + CHUNK` references, least
/// for `n` around `CHUNK²` (4096), and stays small well past it.
const CHUNK: usize = 64;

/// One target's last probe, `None` until its first.
pub type Slot = Option<Arc<TargetReport>>;

/// The slots of an endpoint source's targets, in config order.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    chunks: Vec<Arc<Vec<Slot>>>,
    len: usize,
}

impl Reports {
    /// Number of slots (configured targets).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot at `index`.
    pub fn get(&self, index: usize) -> Option<&Slot> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// The slot at `index`, to write: copies its chunk if a published
    /// snapshot still shares it.
    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut Slot> {
        let chunk = self.chunks.get_mut(index / CHUNK)?;
        Arc::make_mut(chunk).get_mut(index % CHUNK)
    }

    /// Every slot, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            chunks: self.chunks.iter(),
            current: [].iter(),
        }
    }
}

impl FromIterator<Slot> for Reports {
    fn from_iter<I: IntoIterator<Item = Slot>>(iter: I) -> Reports {
        let mut reports = Reports::default();
        let mut chunk = Vec::with_capacity(CHUNK);
        for slot in iter {
            chunk.push(slot);
            if chunk.len() == CHUNK {
                reports.len += CHUNK;
                reports.chunks.push(Arc::new(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(CHUNK),
                )));
            }
        }
        if !chunk.is_empty() {
            reports.len += chunk.len();
            reports.chunks.push(Arc::new(chunk));
        }
        reports
    }
}

/// The iterator of [`Reports::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    chunks: std::slice::Iter<'a, Arc<Vec<Slot>>>,
    current: std::slice::Iter<'a, Slot>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Slot;

    fn next(&mut self) -> Option<&'a Slot> {
        loop {
            if let Some(slot) = self.current.next() {
                return Some(slot);
            }
            self.current = self.chunks.next()?.iter();
        }
    }
}

impl<'a> IntoIterator for &'a Reports {
    type Item = &'a Slot;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Slot {
        Some(Arc::new(TargetReport {
            addresses: Vec::new(),
            restart: None,
        }))
    }

    #[test]
    fn slots_keep_their_order_and_index_across_chunks() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
            let reports: Reports = (0..n)
                .map(|i| (i % 3 == 0).then(report).flatten())
                .collect();
            assert_eq!(reports.len(), n);
            assert_eq!(reports.iter().count(), n);
            for (i, slot) in reports.iter().enumerate() {
                assert_eq!(slot.is_some(), i % 3 == 0, "slot {i} of {n}");
                assert_eq!(reports.get(i).map(Option::is_some), Some(i % 3 == 0));
            }
            assert!(reports.get(n).is_none());
        }
    }

    #[test]
    fn a_write_copies_only_its_own_chunk() {
        let published: Reports = (0..3 * CHUNK).map(|_| None).collect();
        let mut next = published.clone();
        *next.get_mut(CHUNK + 1).unwrap() = report();
        assert!(
            published.get(CHUNK + 1).unwrap().is_none(),
            "the published copy moved"
        );
        assert!(next.get(CHUNK + 1).unwrap().is_some());
        for chunk in [0, 2] {
            assert!(Arc::ptr_eq(&published.chunks[chunk], &next.chunks[chunk]));
        }
        assert!(!Arc::ptr_eq(&published.chunks[1], &next.chunks[1]));
    }
}
