//! Facts shared by the SHA-256 of their DER, and issuer names shared by
//! their contents.
//!
//! A process-wide table maps the SHA-256 of each DER to the facts handed
//! out for it, holding them weakly, so the facts of a certificate nobody
//! tracks any more are freed. Another holds issuer names: the thousands of
//! certificates one CA issued all name it, and its six attributes (about
//! 250 bytes with their text) are kept once instead of once each.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};

use ring::digest::{self, SHA256};

use super::{parse_uncached, CertFacts, DecodeError, NameFields, Sha256};

/// Looks `der` up, parsing it only when no one holds its facts.
pub(super) fn parse(der: &[u8]) -> Result<Arc<CertFacts>, DecodeError> {
    INTERNED.parse(der)
}

/// The one shared copy of an issuer name equal to `name`.
pub(super) fn issuer(name: NameFields) -> Arc<NameFields> {
    NAMES.share(name)
}

/// The process-wide table behind [`issuer`].
static NAMES: LazyLock<Names> = LazyLock::new(|| Names::new(SWEEP_FLOOR));

/// Issuer names in use. The table holds a reference to each, so a name is
/// unused when the table's is the only one; those are swept as in
/// [`Table::sweep`].
struct Names {
    table: Mutex<NameTable>,
}

struct NameTable {
    names: HashSet<Arc<NameFields>>,
    swept_at: usize,
    floor: usize,
}

impl Names {
    fn new(floor: usize) -> Names {
        Names {
            table: Mutex::new(NameTable {
                names: HashSet::new(),
                swept_at: floor,
                floor,
            }),
        }
    }

    fn share(&self, name: NameFields) -> Arc<NameFields> {
        // As for the facts: every update leaves the set consistent.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = table.names.get(&name) {
            return shared.clone();
        }
        if table.names.len() >= 2 * table.swept_at {
            table.names.retain(|n| Arc::strong_count(n) > 1);
            table.swept_at = table.names.len().max(table.floor);
            let room = 2 * table.swept_at;
            table.names.shrink_to(room);
        }
        let name = Arc::new(name);
        table.names.insert(name.clone());
        name
    }
}

/// The process-wide table behind [`parse`].
static INTERNED: LazyLock<Interner> = LazyLock::new(|| Interner::new(SWEEP_FLOOR));

/// Dead entries are swept once the table has doubled since the last sweep,
/// but never below this size, so a small table is not swept on every miss.
const SWEEP_FLOOR: usize = 64;

/// Facts by the SHA-256 of their DER, held weakly: the table never keeps
/// a certificate alive, it only lets a second holder find the first one's.
struct Interner {
    table: Mutex<Table>,
}

/// The table's key: the first eight bytes of the SHA-256. A full digest
/// per entry was 32 of the table's 40 bytes per certificate; a lookup
/// confirms the whole digest on the facts it finds (they carry it), so two
/// certificates sharing a prefix are told apart, the second simply not
/// shared.
type Prefix = u64;

fn prefix(sha256: &Sha256) -> Prefix {
    let mut head = [0u8; 8];
    head.copy_from_slice(&sha256[..8]);
    u64::from_le_bytes(head)
}

struct Table {
    facts: HashMap<Prefix, Weak<CertFacts>>,
    /// Size after the last sweep; the next one is due at twice this.
    swept_at: usize,
    floor: usize,
}

impl Interner {
    fn new(floor: usize) -> Interner {
        Interner {
            table: Mutex::new(Table {
                facts: HashMap::new(),
                swept_at: floor,
                floor,
            }),
        }
    }

    fn parse(&self, der: &[u8]) -> Result<Arc<CertFacts>, DecodeError> {
        let mut key: Sha256 = [0; 32];
        key.copy_from_slice(digest::digest(&SHA256, der).as_ref());
        let seen = self.lock().facts.get(&prefix(&key)).and_then(Weak::upgrade);
        if let Some(facts) = seen.filter(|f| f.sha256 == key) {
            return Ok(facts);
        }
        // Parsed outside the lock so probes finishing together do not queue
        // behind each other's parsing. Only successes are kept: a failure
        // costs a parse each time, as before.
        let facts = Arc::new(parse_uncached(der, key)?);
        Ok(self.lock().insert(key, facts))
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update leaves the map consistent, so a panic elsewhere while
        // the lock was held is no reason to stop decoding certificates.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Stores `facts` under `key` and returns what holders should share:
    /// the facts already there if another thread parsed the same bytes
    /// meanwhile, else `facts`.
    fn insert(&mut self, key: Sha256, facts: Arc<CertFacts>) -> Arc<CertFacts> {
        match self.facts.entry(prefix(&key)) {
            Entry::Occupied(mut slot) => {
                if let Some(live) = slot.get().upgrade() {
                    // Another certificate with the same prefix keeps the
                    // slot; this one goes unshared.
                    return if live.sha256 == key { live } else { facts };
                }
                slot.insert(Arc::downgrade(&facts));
            }
            Entry::Vacant(slot) => {
                slot.insert(Arc::downgrade(&facts));
                if self.facts.len() >= 2 * self.swept_at {
                    self.sweep();
                }
            }
        }
        facts
    }

    /// Drops the entries of certificates no one holds any more. Run when
    /// the table has doubled, this costs O(1) amortised per insert and
    /// keeps the table within twice the live certificates (or the floor).
    fn sweep(&mut self) {
        self.facts.retain(|_, facts| facts.strong_count() > 0);
        self.swept_at = self.facts.len().max(self.floor);
        self.facts.shrink_to(2 * self.swept_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_no_one_holds_leave_the_table() {
        // A table of its own: the process-wide one is shared with tests
        // running in parallel.
        let interner = Interner::new(4);
        let key = rcgen::KeyPair::generate().unwrap();
        let mint = |serial: u8| {
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let kept_der = mint(0);
        let kept = interner.parse(&kept_der).unwrap();
        for serial in 1..=40 {
            drop(interner.parse(&mint(serial)).unwrap());
            let len = interner.lock().facts.len();
            assert!(
                len <= 2 * 4,
                "{len} entries after {serial} dropped certificates"
            );
        }
        interner.lock().sweep();
        assert_eq!(interner.lock().facts.len(), 1);
        assert!(Arc::ptr_eq(&kept, &interner.parse(&kept_der).unwrap()));
        drop(kept);
        interner.lock().sweep();
        assert_eq!(interner.lock().facts.len(), 0);
    }

    #[test]
    fn equal_issuers_share_one_copy_and_unused_ones_leave() {
        let names = Names::new(4);
        let name = |cn: &str| NameFields {
            cn: cn.into(),
            o: "Example".into(),
            ..NameFields::default()
        };
        let a = names.share(name("CA 1"));
        let b = names.share(name("CA 1"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &names.share(name("CA 2"))));
        for i in 0..40 {
            drop(names.share(name(&format!("gone {i}"))));
            let len = names.table.lock().unwrap().names.len();
            assert!(len <= 2 * 4 + 1, "{len} names after {i} unused ones");
        }
        assert!(Arc::ptr_eq(&a, &names.share(name("CA 1"))));
    }

    #[test]
    fn certificates_sharing_a_prefix_are_never_mixed_up() {
        let interner = Interner::new(4);
        let facts = |last: u8| {
            let mut sha256 = [7u8; 32];
            sha256[31] = last;
            Arc::new(CertFacts {
                sha256,
                not_before: 0,
                not_after: i64::from(last),
                serial_number: "1".into(),
                subject: NameFields::default(),
                issuer: Arc::default(),
            })
        };
        let (a, b) = (facts(1), facts(2));
        let mut table = interner.lock();
        assert!(Arc::ptr_eq(&table.insert(a.sha256, a.clone()), &a));
        // Same first eight bytes, another certificate: not handed `a`.
        assert!(Arc::ptr_eq(&table.insert(b.sha256, b.clone()), &b));
        assert!(Arc::ptr_eq(&table.insert(a.sha256, facts(1)), &a));
    }

    #[test]
    fn a_dead_entry_is_parsed_again() {
        let interner = Interner::new(4);
        let key = rcgen::KeyPair::generate().unwrap();
        let der = rcgen::CertificateParams::new(Vec::new())
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec();
        let first = interner.parse(&der).unwrap();
        let facts = (*first).clone();
        drop(first);
        let again = interner.parse(&der).unwrap();
        assert_eq!(*again, facts);
        assert_eq!(interner.lock().facts.len(), 1);
    }
}
