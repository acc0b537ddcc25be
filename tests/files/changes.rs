//! Changes between passes: the stat cache sees rewrites in place (even
//! within one timestamp tick), renames over and deletions, and so does the
//! daemon.

use super::*;

#[test]
fn rewrite_in_place_is_seen_on_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let old = self_signed("old", now() + 10 * DAY);
    let new = self_signed("renewed-certificate", now() + 90 * DAY);
    let path = write(dir.path(), "tls.crt", &old.cert_pem);
    let source = file_source(dir.path(), &yaml_paths(&[&s(&path)], ""));

    let (first, cache, _) = scan_bounded(&source, FileCache::default());
    assert_good(&first, &path, &old);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    std::fs::write(&path, &new.cert_pem).unwrap();
    assert_eq!(
        ino,
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
        "rewritten in place"
    );
    let (second, cache, _) = scan_bounded(&source, cache);
    assert_good(&second, &path, &new);
    // And back to a broken file: the error shows on the next pass too.
    std::fs::write(&path, "garbage").unwrap();
    let (third, _, _) = scan_bounded(&source, cache);
    assert_failed(&third, &path, FileErrorReason::NoCertificateFound);
}

/// Two self-signed certificates whose PEM has the same length, so that a
/// rewrite changes neither the inode nor the size.
fn same_size_pair() -> (Minted, Minted) {
    let a = self_signed("same-size-a", now() + 10 * DAY);
    for _ in 0..200 {
        let b = self_signed("same-size-b", now() + 90 * DAY);
        if b.cert_pem.len() == a.cert_pem.len() {
            return (a, b);
        }
    }
    panic!("no same-size certificate pair in 200 attempts");
}

#[test]
fn same_size_rewrite_within_one_timestamp_tick_is_not_served_stale() {
    // File timestamps are taken from a coarse clock (one jiffy, often 4 ms,
    // and a whole second on some filesystems). A file rewritten in place,
    // to the same size, within the tick of the pass that cached it keeps
    // dev, inode, size, mtime and ctime: a cache keyed on those alone then
    // serves the old certificate until the file changes again — for a
    // certificate, possibly months. ("Racily clean" entries, as git calls
    // them, must be re-read.)
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = same_size_pair();
    let path = dir.path().join("tls.crt");
    let source = file_source(dir.path(), &yaml_paths(&[&s(&path)], ""));
    let stamp = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size(),
        )
    };

    // Every attempt must see the new certificate; the stamps only say
    // whether the attempt hit the racy case (identical stat before/after).
    let mut racy = 0;
    for attempt in 0..50 {
        std::fs::write(&path, &old.cert_pem).unwrap();
        let before = stamp(&path);
        let mut cache = FileCache::default();
        let first = scan(&source, &mut cache);
        assert_good(&first, &path, &old);
        std::fs::write(&path, &new.cert_pem).unwrap();
        let after = stamp(&path);
        let second = scan(&source, &mut cache);
        let same = before == after;
        racy += usize::from(same);
        let seen = report(&second, &path).certs.first().map(|c| c.not_after);
        assert_eq!(
            seen,
            Some(new.not_after),
            "attempt {attempt}: stale certificate served after an in-place \
             same-size rewrite (old NotAfter {}, new {}); stat before {before:?}, \
             after {after:?}, identical: {same}",
            old.not_after,
            new.not_after
        );
    }
    if racy == 0 {
        eprintln!(
            "the racy case never occurred: timestamps advanced between the two writes \
             (fine-grained after a stat, e.g. multigrain timestamps on Linux >= 6.13)"
        );
    }
}

#[test]
fn atomic_rename_replacement_is_seen_on_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let old = self_signed("old", now() + 10 * DAY);
    let (_, new) = same_size_pair();
    let path = write(dir.path(), "tls.crt", &old.cert_pem);
    let source = file_source(dir.path(), &yaml_paths(&["*.crt"], ""));

    let (first, cache, _) = scan_bounded(&source, FileCache::default());
    assert_good(&first, &path, &old);
    // Written beside, then renamed over: a new inode under the same path.
    let staged = write(dir.path(), ".tls.crt.tmp", &new.cert_pem);
    std::fs::rename(&staged, &path).unwrap();
    let (second, _, _) = scan_bounded(&source, cache);
    assert_eq!(relative_keys(&second, dir.path()), ["tls.crt"]);
    assert_good(&second, &path, &new);
}

#[test]
fn deleted_file_disappears_from_the_next_scan() {
    let dir = tempfile::tempdir().unwrap();
    let keep = self_signed("keep", now() + 30 * DAY);
    let gone = self_signed("gone", now() + 30 * DAY);
    let keep_path = write(dir.path(), "keep.crt", &keep.cert_pem);
    let gone_path = write(dir.path(), "gone.crt", &gone.cert_pem);
    let glob = file_source(dir.path(), &yaml_paths(&["*.crt"], ""));
    let literal = file_source(dir.path(), &yaml_paths(&["keep.crt", "gone.crt"], ""));

    let (first, glob_cache, _) = scan_bounded(&glob, FileCache::default());
    assert_eq!(relative_keys(&first, dir.path()), ["gone.crt", "keep.crt"]);
    let (first, literal_cache, _) = scan_bounded(&literal, FileCache::default());
    assert_good(&first, &gone_path, &gone);

    std::fs::remove_file(&gone_path).unwrap();
    let (second, _, _) = scan_bounded(&glob, glob_cache);
    assert_eq!(relative_keys(&second, dir.path()), ["keep.crt"]);
    assert_good(&second, &keep_path, &keep);
    // A path named literally stays, as not_found: the user asked for it.
    let (second, _, _) = scan_bounded(&literal, literal_cache);
    assert_failed(&second, &gone_path, FileErrorReason::NotFound);
    assert_good(&second, &keep_path, &keep);
}

// ---------------------------------------------------------------------------
// Through the binary.

#[test]
fn daemon_follows_rewrite_rename_and_delete_between_passes() {
    let dir = tempfile::tempdir().unwrap();
    let a_old = self_signed("a", now() + 10 * DAY);
    let a_new = self_signed("a-renewed", now() + 80 * DAY);
    let b_old = self_signed("b", now() + 11 * DAY);
    let b_new = self_signed("b", now() + 81 * DAY);
    let a = write(dir.path(), "a.crt", &a_old.cert_pem);
    let b = write(dir.path(), "b.crt", &b_old.cert_pem);
    let c = write(dir.path(), "c.crt", &a_old.cert_pem);

    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["*.crt"], ""));
    let not_after = |m: &Exposition, p: &Path| {
        let labels = file_cert_labels(p, 0);
        m.find("x509_cert_not_after", &borrowed(&labels))
            .first()
            .map(|s| s.value)
    };
    daemon.wait_for(METRICS_DEADLINE, |m| {
        not_after(m, &a) == Some(a_old.not_after as f64)
            && not_after(m, &b) == Some(b_old.not_after as f64)
            && not_after(m, &c).is_some()
    });

    std::fs::write(&a, &a_new.cert_pem).unwrap();
    let staged = write(dir.path(), "b.crt.tmp", &b_new.cert_pem);
    std::fs::rename(&staged, &b).unwrap();
    std::fs::remove_file(&c).unwrap();

    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        not_after(m, &a) == Some(a_new.not_after as f64)
            && not_after(m, &b) == Some(b_new.not_after as f64)
            && not_after(m, &c).is_none()
    });
    assert_eq!(
        m.find("x509_cert_not_after", &[("source_kind", "file")])
            .len(),
        2,
        "{}",
        m.text
    );
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);
}
