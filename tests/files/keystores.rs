//! Keystores as openssl, keytool and cert-manager write them: every
//! certificate a series in store order, the password from a file or the
//! environment, and a reason of its own for a wrong or missing password.

use super::*;

/// A leaf issued by a CA, and the CA: the chain a keystore holds.
fn chain() -> (Ca, Minted) {
    let ca = Ca::new("Keystore CA");
    let leaf = leaf(&ca, "app.keystore.test", 40);
    (ca, leaf)
}

/// The stores of one chain, each as its tool writes it, in
/// `dir/stores`: OpenSSL 3's default and `-legacy` PKCS#12, keytool's
/// JKS and PKCS#12 (password `changeit`).
fn stores(dir: &Path, ca: &Ca, leaf: &Minted) -> Vec<PathBuf> {
    let stores = dir.join("stores");
    let modern = openssl_pkcs12(&stores, "modern.p12", leaf, &[&ca.cert], "changeit", false);
    let legacy = openssl_pkcs12(&stores, "legacy.p12", leaf, &[&ca.cert], "changeit", true);
    let jks = keytool_convert(
        &stores,
        &modern,
        "changeit",
        "keystore.jks",
        "jks",
        "changeit",
    );
    let keytool = keytool_convert(
        &stores,
        &modern,
        "changeit",
        "keytool.p12",
        "pkcs12",
        "changeit",
    );
    vec![modern, legacy, jks, keytool]
}

fn stores_yaml(extra: &str) -> String {
    yaml_paths(&["stores/*"], extra)
}

#[test]
fn openssl_and_keytool_keystores_yield_the_chain_in_store_order() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = chain();
    let stores = stores(dir.path(), &ca, &leaf);
    write(dir.path(), "password", "changeit\n");

    let scan = scan_yaml(dir.path(), &stores_yaml("    password_file: password\n"));
    for store in &stores {
        let r = report(&scan, store);
        assert_eq!(r.error, None, "{}", store.display());
        let facts: Vec<_> = r
            .certs
            .iter()
            .map(|c| (c.subject.cn.to_string(), c.not_after))
            .collect();
        assert_eq!(
            facts,
            [
                ("app.keystore.test".to_owned(), leaf.not_after),
                ("Keystore CA".to_owned(), ca.cert.not_after),
            ],
            "{}",
            store.display()
        );
    }
}

#[test]
fn truststores_yield_every_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ca::new("Trusted One");
    let second = Ca::new("Trusted Two");
    let stores = dir.path().join("stores");
    let certs = [&first.cert, &second.cert];
    let jks = keytool_truststore(&stores, "truststore.jks", &certs, "jks", "changeit");
    let p12 = keytool_truststore(&stores, "truststore.p12", &certs, "pkcs12", "changeit");

    let scan = scan_yaml(dir.path(), &stores_yaml("    password_file: password\n"));
    // Without the password file yet: the JKS shows its certificates but
    // cannot be verified; keytool's PKCS#12 encrypts them.
    assert_eq!(report(&scan, &jks).certs.len(), 2);
    assert_eq!(
        report(&scan, &jks).error.as_ref().map(|e| e.reason),
        Some(FileErrorReason::PassphraseRequired)
    );
    assert_failed(&scan, &p12, FileErrorReason::PassphraseRequired);
    assert!(
        report(&scan, &p12)
            .error
            .as_ref()
            .unwrap()
            .detail
            .contains("password_file"),
        "{:?}",
        report(&scan, &p12).error
    );

    write(dir.path(), "password", "changeit");
    let scan = scan_yaml(dir.path(), &stores_yaml("    password_file: password\n"));
    for store in [&jks, &p12] {
        let r = report(&scan, store);
        assert_eq!(r.error, None, "{}", store.display());
        // keytool keeps entries in a hash table: its order is the file's.
        let mut cns: Vec<_> = r.certs.iter().map(|c| c.subject.cn.to_string()).collect();
        cns.sort();
        assert_eq!(cns, ["Trusted One", "Trusted Two"], "{}", store.display());
    }
}

#[test]
fn a_wrong_password_is_bad_passphrase_and_none_is_passphrase_required() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = chain();
    let [modern, legacy, jks, keytool] =
        <[PathBuf; 4]>::try_from(stores(dir.path(), &ca, &leaf)).unwrap();
    write(dir.path(), "wrong", "not-the-password");

    let wrong = scan_yaml(dir.path(), &stores_yaml("    password_file: wrong\n"));
    let none = scan_yaml(dir.path(), &stores_yaml(""));
    for (scan, reason) in [
        (&wrong, FileErrorReason::BadPassphrase),
        (&none, FileErrorReason::PassphraseRequired),
    ] {
        for p12 in [&modern, &legacy, &keytool] {
            assert_failed(scan, p12, reason);
        }
        // A JKS keeps its certificates in clear: they stay exported
        // beside the reason, as a bundle's good blocks do.
        let r = report(scan, &jks);
        assert_eq!(r.error.as_ref().map(|e| e.reason), Some(reason));
        assert_eq!(r.certs.len(), 2);
    }
}

#[test]
fn a_store_without_a_password_opens_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = chain();
    let store = openssl_pkcs12(
        &dir.path().join("stores"),
        "open.p12",
        &leaf,
        &[&ca.cert],
        "",
        false,
    );
    let scan = scan_yaml(dir.path(), &stores_yaml(""));
    assert_eq!(report(&scan, &store).error, None);
    assert_eq!(report(&scan, &store).certs.len(), 2);
}

#[test]
fn a_forced_format_refuses_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = chain();
    let stores = stores(dir.path(), &ca, &leaf);
    write(dir.path(), "stores/tls.crt", &leaf.cert_pem);
    let scan = scan_yaml(dir.path(), &stores_yaml("    format: jks\n"));
    assert_failed(
        &scan,
        &dir.path().join("stores/tls.crt"),
        FileErrorReason::DecodeFailed,
    );
    assert_failed(&scan, &stores[0], FileErrorReason::DecodeFailed);
    assert_eq!(report(&scan, &stores[2]).certs.len(), 2);
}

// ---------------------------------------------------------------------------
// Through the binary.

/// cert-manager's layout: `keystores.pkcs12` and `keystores.jks` beside
/// the PEM files in the Secret, the password in another Secret.
fn cert_manager_secret(dir: &Path, ca: &Ca, leaf: &Minted) {
    let tls = dir.join("tls");
    write(
        &tls,
        "tls.crt",
        format!("{}{}", leaf.cert_pem, ca.cert.cert_pem),
    );
    write(&tls, "tls.key", &leaf.key_pem);
    write(&tls, "ca.crt", &ca.cert.cert_pem);
    openssl_pkcs12(&tls, "keystore.p12", leaf, &[&ca.cert], "s3cret", true);
    keytool_convert(
        &tls,
        &tls.join("keystore.p12"),
        "s3cret",
        "keystore.jks",
        "jks",
        "s3cret",
    );
    keytool_truststore(&tls, "truststore.p12", &[&ca.cert], "pkcs12", "s3cret");
    keytool_truststore(&tls, "truststore.jks", &[&ca.cert], "jks", "s3cret");
    std::fs::remove_dir_all(tls.join("in")).unwrap();
    write(dir, "keystore-password/password", "s3cret");
}

fn cert_manager_yaml(password: &str) -> String {
    daemon_yaml(&["tls"], &format!("    exclude: [\"*.key\"]\n{password}"))
}

/// A cert-manager Secret in a new directory, and a configuration
/// reading it with `password` (a `password_*` line).
fn cert_manager_config(password: &str) -> (tempfile::TempDir, Ca, Minted, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = chain();
    cert_manager_secret(dir.path(), &ca, &leaf);
    let config = write(dir.path(), "certinel.yaml", cert_manager_yaml(password));
    (dir, ca, leaf, config)
}

#[test]
fn daemon_exports_cert_manager_keystores_and_follows_the_password() {
    let (dir, ca, leaf, config) =
        cert_manager_config("    password_file: keystore-password/password\n");
    let daemon = Launch::new(&config).start();
    let at = |m: &Exposition, file: &str, i: &str| {
        let path = s(&dir.path().join("tls").join(file));
        m.find(
            "x509_cert_not_after",
            &[("filepath", &path), ("chain_index", i)],
        )
        .first()
        .map(|s| s.value)
    };
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        at(m, "keystore.p12", "1").is_some() && at(m, "truststore.jks", "0").is_some()
    });
    for store in ["keystore.p12", "keystore.jks"] {
        assert_eq!(at(&m, store, "0"), Some(leaf.not_after as f64), "{store}");
        assert_eq!(
            at(&m, store, "1"),
            Some(ca.cert.not_after as f64),
            "{store}"
        );
    }
    for store in ["truststore.p12", "truststore.jks", "ca.crt"] {
        assert_eq!(
            at(&m, store, "0"),
            Some(ca.cert.not_after as f64),
            "{store}"
        );
    }
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);

    // The password Secret changes, the keystores do not: they are
    // opened again, and fail with their own reason.
    write(dir.path(), "keystore-password/password", "rotated");
    let reason = |m: &Exposition, file: &str| {
        let path = s(&dir.path().join("tls").join(file));
        m.find("certinel_file_error_info", &[("filepath", &path)])
            .first()
            .map(|s| s.labels["reason"].clone())
    };
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        reason(m, "keystore.p12").is_some() && reason(m, "truststore.jks").is_some()
    });
    for store in [
        "keystore.p12",
        "keystore.jks",
        "truststore.p12",
        "truststore.jks",
    ] {
        assert_eq!(
            reason(&m, store).as_deref(),
            Some("bad_passphrase"),
            "{store}"
        );
    }
    assert_eq!(m.value("x509_read_errors", &[]), 4.0);
    assert_eq!(
        at(&m, "keystore.p12", "0"),
        None,
        "an unopened PKCS#12 shows nothing"
    );
    assert_eq!(at(&m, "keystore.jks", "0"), Some(leaf.not_after as f64));
    let errors = m.value(
        "x509_source_errors_total",
        &[("source_name", "certs"), ("reason", "bad_passphrase")],
    );
    assert!(errors >= 4.0, "{errors}");
}

#[test]
fn daemon_takes_the_password_from_the_environment_and_never_shows_it() {
    let (dir, _, _, config) = cert_manager_config("    password_env: KEYSTORE_PASSWORD\n");
    let daemon = Launch::new(&config)
        .env("KEYSTORE_PASSWORD", "s3cret")
        .start();
    let path = s(&dir.path().join("tls/keystore.p12"));
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.has(
            "x509_cert_not_after",
            &[("filepath", &path), ("chain_index", "1")],
        )
    });
    assert_eq!(m.value("x509_read_errors", &[]), 0.0);
    let (_, body) = daemon.get("/metrics");
    assert!(!body.contains("s3cret"));
    assert!(daemon.logs().iter().all(|l| !l.contains("s3cret")));
}

#[test]
fn check_shows_keystore_certificates_in_its_table_and_json() {
    let (dir, _, leaf, config) =
        cert_manager_config("    password_file: keystore-password/password\n");
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--config.file", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_bounded(
            certinel_command().args(&args).env("NO_COLOR", "1"),
            Duration::from_secs(30),
        )
    };
    let table = check(&[]);
    assert_eq!(
        table.status.code(),
        Some(0),
        "{}{}",
        table.stdout,
        table.stderr
    );
    let p12 = s(&dir.path().join("tls/keystore.p12"));
    assert!(
        table.stdout.contains(&format!("{p12} #1")),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("app.keystore.test"),
        "{}",
        table.stdout
    );

    let json = check(&["--output", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["filepath"] == p12.as_str() && r["chain_index"] == 0)
        .unwrap_or_else(|| panic!("{}", json.stdout));
    assert_eq!(row["subject_cn"], "app.keystore.test");
    assert_eq!(row["object"], "certificate");
    assert_eq!(row["not_after"], leaf.not_after);
}
