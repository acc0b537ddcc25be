//! PEM bundles, DER, combined cert+key files and CRLF: what each yields,
//! fact by fact, in the library and on `/metrics`.

use super::*;

#[test]
fn pem_bundle_of_three_yields_three_certs_in_file_order_with_exact_facts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Bundle Root CA");
    let svc = leaf(&ca, "svc.bundle.test", 30);
    let other = self_signed("other-root", now() + 400 * DAY);
    let path = write(
        dir.path(),
        "bundle.pem",
        format!("{}{}{}", svc.cert_pem, ca.cert.cert_pem, other.cert_pem),
    );

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    let expected = [
        (&svc, "svc.bundle.test", "Bundle Root CA"),
        (&ca.cert, "Bundle Root CA", "Bundle Root CA"),
        (&other, "other-root", "other-root"),
    ];
    assert_eq!(r.certs.len(), expected.len());
    for (i, (facts, (minted, subject, issuer))) in r.certs.iter().zip(expected).enumerate() {
        assert_eq!(facts.not_after, minted.not_after, "cert {i} NotAfter");
        assert_eq!(facts.not_before, minted.not_before, "cert {i} NotBefore");
        assert_eq!(
            &*facts.serial_number,
            serial_decimal(&minted.der),
            "cert {i}"
        );
        assert_eq!(&*facts.subject.cn, subject, "cert {i} subject");
        assert_eq!(&*facts.issuer.cn, issuer, "cert {i} issuer");
    }
    assert_eq!(&*r.certs[1].subject.o, "certinel tests");
    assert_eq!(&*r.certs[0].issuer.o, "certinel tests");
    assert_eq!(&*r.certs[0].subject.o, "");
}

#[test]
fn serial_number_is_unsigned_decimal_even_when_the_high_bit_is_set() {
    let dir = tempfile::tempdir().unwrap();
    // 16 bytes of 0xFF: DER needs a leading 0x00 to keep it positive, and
    // the value (2^128 - 1) overflows every primitive but u128.
    let cert = with_serial("serial.test", &[0xFF; 16]);
    let path = write(dir.path(), "serial.pem", cert.cert_pem);

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    assert_eq!(
        &*r.certs[0].serial_number,
        "340282366920938463463374607431768211455"
    );
    assert_eq!(
        &*r.certs[0].serial_number,
        decimal_of_be_bytes(&[0xFF; 16]),
        "helper self-check"
    );
}

#[test]
fn der_file_yields_exactly_one_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("DER CA");
    let svc = leaf(&ca, "der.test", 90);
    let path = write(dir.path(), "svc.der", &svc.der);

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    assert_eq!(r.certs.len(), 1);
    assert_eq!(r.certs[0].not_after, svc.not_after);
    assert_eq!(r.certs[0].not_before, svc.not_before);
    assert_eq!(&*r.certs[0].serial_number, serial_decimal(&svc.der));
    assert_eq!(&*r.certs[0].subject.cn, "der.test");
    assert_eq!(&*r.certs[0].issuer.cn, "DER CA");
}

#[test]
fn cert_and_key_in_one_pem_export_the_cert_without_error() {
    // haproxy-style combined files: the key block is not an error.
    let dir = tempfile::tempdir().unwrap();
    let c = self_signed("combined", now() + 10 * DAY);
    let path = write(
        dir.path(),
        "combined.pem",
        format!("{}{}", c.key_pem, c.cert_pem),
    );
    assert_good(&scan_paths(dir.path(), &[&path]), &path, &c);
}

#[test]
fn pem_with_crlf_line_endings_and_explanatory_text_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let a = self_signed("crlf-a", now() + 10 * DAY);
    let b = self_signed("crlf-b", now() + 20 * DAY);
    let text = format!(
        "subject=CN = crlf-a\nissuer=CN = crlf-a\n{}Bag Attributes\n    friendlyName: b\n{}",
        a.cert_pem, b.cert_pem
    )
    .replace('\n', "\r\n");
    let path = write(dir.path(), "windows.pem", text);

    let scan = scan_paths(dir.path(), &[&path]);
    let r = report(&scan, &path);
    assert_eq!(r.error, None);
    let after: Vec<i64> = r.certs.iter().map(|c| c.not_after).collect();
    assert_eq!(after, [a.not_after, b.not_after]);
}

// ---------------------------------------------------------------------------
// Through the binary.

#[test]
fn daemon_exports_every_bundle_certificate_with_the_full_label_set() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Bundle Root CA");
    let svc = leaf(&ca, "svc.bundle.test", 30);
    let other = self_signed("other-root", now() + 400 * DAY);
    let bundle = write(
        dir.path(),
        "certs/bundle.pem",
        format!("{}{}{}", svc.cert_pem, ca.cert.cert_pem, other.cert_pem),
    );
    let der = write(dir.path(), "certs/svc.der", &svc.der);

    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["certs/*"], ""));
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find("x509_cert_not_after", &[("source_kind", "file")])
            .len()
            == 4
    });

    let expected = [
        (&svc, "svc.bundle.test", "Bundle Root CA", ""),
        (
            &ca.cert,
            "Bundle Root CA",
            "Bundle Root CA",
            "certinel tests",
        ),
        (&other, "other-root", "other-root", ""),
    ];
    for (i, (minted, subject, issuer, subject_o)) in expected.into_iter().enumerate() {
        let labels = file_cert_labels(&bundle, i);
        let serial = serial_decimal(&minted.der);
        let mut full = borrowed(&labels);
        full.extend([
            ("serial_number", serial.as_str()),
            ("subject_CN", subject),
            ("issuer_CN", issuer),
            ("subject_O", subject_o),
            ("subject_OU", ""),
        ]);
        let sample = m.one("x509_cert_not_after", &full);
        assert_eq!(sample.value, minted.not_after as f64, "chain_index {i}");
        let names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        for required in [
            "source_kind",
            "source_name",
            "filepath",
            "filename",
            "target",
            "server_name",
            "address",
            "chain_index",
            "serial_number",
            "subject_CN",
            "subject_O",
            "subject_OU",
            "issuer_CN",
            "issuer_O",
        ] {
            assert!(names.contains(&required), "missing {required}: {names:?}");
        }
        assert_eq!(
            m.value("x509_cert_not_before", &full),
            minted.not_before as f64,
            "chain_index {i}"
        );
        assert_eq!(m.value("x509_cert_expired", &full), 0.0);
    }

    let der_labels = file_cert_labels(&der, 0);
    let mut der_full = borrowed(&der_labels);
    der_full.push(("subject_CN", "svc.bundle.test"));
    assert_eq!(
        m.value("x509_cert_not_after", &der_full),
        svc.not_after as f64
    );
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);
    assert_eq!(m.value("x509_source_up", &FILE_SOURCE_UP), 1.0);
}
