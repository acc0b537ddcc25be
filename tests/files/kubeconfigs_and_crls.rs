//! kubeconfigs — embedded and referenced certificates, each with its role
//! — and CRLs made by `openssl ca -gencrl`: update times, issuer, and a
//! reason once stale. In the library, on `/metrics` and in
//! `certinel check`.

use base64::Engine as _;

use super::*;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A kubeadm-style kubeconfig: the cluster CA and the admin certificate
/// embedded, the kubelet's client certificate referenced as kubelet.conf
/// does (`pki/kubelet-client-current.pem`, relative to the kubeconfig).
struct Kube {
    ca: Ca,
    admin: Minted,
    kubelet: Minted,
    config: PathBuf,
}

fn kube(dir: &Path) -> Kube {
    let ca = Ca::new("kubernetes");
    let admin = ca.issue(&Leaf {
        client_auth_only: true,
        ..Leaf::server("kubernetes-admin", 300)
    });
    let kubelet = ca.issue(&Leaf {
        client_auth_only: true,
        ..Leaf::server("system:node:worker-1", 20)
    });
    write(
        dir,
        "kube/pki/kubelet-client-current.pem",
        format!("{}{}", kubelet.cert_pem, kubelet.key_pem),
    );
    let config = write(
        dir,
        "kube/admin.conf",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.0.0.1:6443\n  name: kubernetes\ncontexts:\n- context: {{cluster: kubernetes, user: kubernetes-admin}}\n  name: admin@kubernetes\ncurrent-context: admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n- name: kubelet\n  user:\n    client-certificate: pki/kubelet-client-current.pem\n    client-key: pki/kubelet-client-current.pem\n",
            b64(&ca.cert.cert_pem),
            b64(&admin.cert_pem),
            b64(&admin.key_pem),
        ),
    );
    Kube {
        ca,
        admin,
        kubelet,
        config,
    }
}

#[test]
fn a_kubeconfig_yields_its_cluster_ca_and_user_certificates_with_their_roles() {
    let dir = tempfile::tempdir().unwrap();
    let k = kube(dir.path());
    let scan = scan_paths(dir.path(), &[&k.config]);
    let r = report(&scan, &k.config);
    assert_eq!(r.error, None);
    let got: Vec<_> = r
        .certs
        .iter()
        .zip(&r.roles)
        .map(|(c, role)| {
            (
                c.not_after,
                role.kind.as_str(),
                role.name.to_string(),
                role.file.clone(),
            )
        })
        .collect();
    let referenced = dir.path().join("kube/pki/kubelet-client-current.pem");
    assert_eq!(
        got,
        [
            (
                k.ca.cert.not_after,
                "cluster",
                "kubernetes".to_owned(),
                None
            ),
            (
                k.admin.not_after,
                "user",
                "kubernetes-admin".to_owned(),
                None
            ),
            (
                k.kubelet.not_after,
                "user",
                "kubelet".to_owned(),
                Some(referenced)
            ),
        ]
    );
}

#[test]
fn a_kubeconfig_whose_referenced_file_is_missing_says_so_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let k = kube(dir.path());
    std::fs::remove_file(dir.path().join("kube/pki/kubelet-client-current.pem")).unwrap();
    let scan = scan_paths(dir.path(), &[&k.config]);
    let r = report(&scan, &k.config);
    let error = r.error.as_ref().unwrap();
    assert_eq!(error.reason, FileErrorReason::NotFound);
    assert!(
        error
            .detail
            .contains("user \"kubelet\" (client-certificate)"),
        "{}",
        error.detail
    );
    assert_eq!(r.certs.len(), 2);
}

#[test]
fn daemon_labels_kubeconfig_roles_and_follows_the_referenced_file() {
    let dir = tempfile::tempdir().unwrap();
    let k = kube(dir.path());
    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["kube/*.conf"], ""));
    let config = s(&k.config);
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find("certinel_kubeconfig_cert_info", &[]).len() == 3
    });
    let referenced = s(&dir.path().join("kube/pki/kubelet-client-current.pem"));
    for (i, kind, key, file, minted) in [
        ("0", "cluster", "kubernetes", "", &k.ca.cert),
        ("1", "user", "kubernetes-admin", "", &k.admin),
        ("2", "user", "kubelet", referenced.as_str(), &k.kubelet),
    ] {
        let info = m.one(
            "certinel_kubeconfig_cert_info",
            &[("filepath", &config), ("chain_index", i)],
        );
        assert_eq!(info.labels["embedded_kind"], kind);
        assert_eq!(info.labels["embedded_key"], key);
        assert_eq!(info.labels["referenced_file"], file);
        assert_eq!(info.labels["source_name"], "certs");
        let cert = m.one(
            "x509_cert_not_after",
            &[("filepath", &config), ("chain_index", i)],
        );
        assert_eq!(cert.value, minted.not_after as f64, "{key}");
    }

    // The kubelet rotates its client certificate; the kubeconfig does not
    // change, and the new expiry shows all the same.
    let renewed = k.ca.issue(&Leaf::server("system:node:worker-1", 50));
    write(
        dir.path(),
        "kube/pki/kubelet-client-current.pem",
        &renewed.cert_pem,
    );
    daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find(
            "x509_cert_not_after",
            &[("filepath", &config), ("chain_index", "2")],
        )
        .first()
        .is_some_and(|s| s.value == renewed.not_after as f64)
    });
}

#[test]
fn check_shows_kubeconfig_roles() {
    let dir = tempfile::tempdir().unwrap();
    let k = kube(dir.path());
    let config = s(&k.config);
    let out = run_bounded(
        certinel_command()
            .args(["check", &config])
            .env("NO_COLOR", "1"),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("{config} #2 (user kubelet)")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("{config} (cluster kubernetes)")),
        "{}",
        out.stdout
    );
    let json = run_bounded(
        certinel_command().args(["check", &config, "--output", "json"]),
        Duration::from_secs(30),
    );
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let kubelet = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chain_index"] == 2)
        .unwrap_or_else(|| panic!("{}", json.stdout));
    assert_eq!(kubelet["embedded_kind"], "user");
    assert_eq!(kubelet["embedded_key"], "kubelet");
    assert_eq!(kubelet["status"], "warn");
}

// ---------------------------------------------------------------------------
// CRLs.

/// Unix seconds as `openssl ca` takes them: `YYYYMMDDHHMMSSZ`.
fn generalized(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':', 'T'], "")
}

/// A fresh CRL (issued a day ago, next due in a week) and a stale one
/// (due an hour ago), both by one CA, PEM; and the fresh one in DER.
struct Crls {
    ca: Ca,
    fresh: PathBuf,
    stale: PathBuf,
    der: PathBuf,
    times: [(i64, i64); 2],
}

fn crls(dir: &Path) -> Crls {
    let ca = Ca::new("Revoking CA");
    // Whole seconds: what the CRL can hold.
    let now = now();
    let fresh_times = (now - DAY, now + 7 * DAY);
    let stale_times = (now - 8 * DAY, now - 3600);
    let crl = |name, (this, next): (i64, i64)| {
        openssl_crl(
            &dir.join("crl"),
            name,
            &ca.cert,
            &generalized(this),
            &generalized(next),
        )
    };
    let fresh = crl("fresh.crl", fresh_times);
    let stale = crl("stale.crl", stale_times);
    let der = dir.join("crl/fresh.der");
    tool(
        dir,
        "openssl",
        &[
            "crl",
            "-in",
            &s(&fresh),
            "-outform",
            "DER",
            "-out",
            &s(&der),
        ],
    );
    Crls {
        ca,
        fresh,
        stale,
        der,
        times: [fresh_times, stale_times],
    }
}

#[test]
fn a_crl_in_pem_or_der_yields_its_update_times_issuer_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let c = crls(dir.path());
    let bundle = write(
        dir.path(),
        "crl/ca-and-crl.pem",
        format!(
            "{}{}",
            c.ca.cert.cert_pem,
            std::fs::read_to_string(&c.fresh).unwrap()
        ),
    );
    let scan = scan_paths(dir.path(), &[&c.fresh, &c.stale, &c.der, &bundle]);
    for (path, (this, next)) in [
        (&c.fresh, c.times[0]),
        (&c.der, c.times[0]),
        (&bundle, c.times[0]),
        (&c.stale, c.times[1]),
    ] {
        let r = report(&scan, path);
        assert_eq!(
            r.error,
            None,
            "{}: staleness is judged at scrape time",
            path.display()
        );
        assert_eq!(r.crls.len(), 1, "{}", path.display());
        let crl = &r.crls[0];
        assert_eq!((crl.this_update, crl.next_update), (this, Some(next)));
        assert_eq!(&*crl.issuer.cn, "Revoking CA");
        assert_eq!(&*crl.issuer.o, "certinel tests");
        assert_eq!(&*crl.crl_number, "4096");
    }
    assert_eq!(report(&scan, &bundle).certs.len(), 1);
    assert_eq!(
        report(&scan, &c.stale).reason_at(now()),
        Some(FileErrorReason::CrlStale)
    );
    assert_eq!(report(&scan, &c.fresh).reason_at(now()), None);
}

#[test]
fn daemon_exports_crl_metrics_and_a_reason_for_a_stale_crl() {
    let dir = tempfile::tempdir().unwrap();
    let c = crls(dir.path());
    let daemon = Daemon::start(dir.path(), &daemon_yaml(&["crl/*.crl"], ""));
    let (fresh, stale) = (s(&c.fresh), s(&c.stale));
    let m = daemon.wait_for(METRICS_DEADLINE, |m| {
        m.find("x509_crl_next_update", &[]).len() == 2
    });
    for (path, (this, next), is_stale) in [(&fresh, c.times[0], 0.0), (&stale, c.times[1], 1.0)] {
        let labels = [
            ("source_kind", "file"),
            ("source_name", "certs"),
            ("filepath", path.as_str()),
            ("chain_index", "0"),
            ("issuer_CN", "Revoking CA"),
            ("issuer_O", "certinel tests"),
        ];
        assert_eq!(m.value("x509_crl_next_update", &labels), next as f64);
        assert_eq!(m.value("x509_crl_this_update", &labels), this as f64);
        assert_eq!(m.value("x509_crl_stale", &labels), is_stale);
        assert_eq!(m.value("x509_crl_number", &labels), 4096.0);
    }
    let info = m.one("certinel_file_error_info", &[("filepath", &stale)]);
    assert_eq!(info.labels["reason"], "crl_stale");
    assert!(!m.has("certinel_file_error_info", &[("filepath", &fresh)]));
    assert_eq!(m.value("x509_read_errors", &[]), 1.0);
    assert!(m.duplicate_series().is_empty());
}

#[test]
fn check_shows_crls_and_fails_on_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = crls(dir.path());
    let (fresh, stale) = (s(&c.fresh), s(&c.stale));
    let out = run_bounded(
        certinel_command()
            .args(["check", &fresh, &stale])
            .env("NO_COLOR", "1"),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}{}", out.stdout, out.stderr);
    let line = |needle: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {}", out.stdout))
            .to_owned()
    };
    let stale_line = line(&format!("{stale} (CRL)"));
    assert!(stale_line.starts_with("EXPIRED"), "{stale_line}");
    assert!(stale_line.ends_with("crl_stale"), "{stale_line}");
    assert!(stale_line.contains("CRL of Revoking CA"), "{stale_line}");
    // Seven days left is fine for a CRL: they are judged on nextUpdate.
    assert!(
        line(&format!("{fresh} (CRL)")).starts_with("OK"),
        "{}",
        out.stdout
    );

    let json = run_bounded(
        certinel_command().args(["check", &fresh, "--output", "json"]),
        Duration::from_secs(30),
    );
    assert_eq!(json.status.code(), Some(0), "{}", json.stdout);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let row = &rows[0];
    assert_eq!(row["object"], "crl");
    assert_eq!(row["issuer_cn"], "Revoking CA");
    assert_eq!(row["not_after"], c.times[0].1);
    assert_eq!(row["this_update"], c.times[0].0);
    assert_eq!(row["serial_number"], "4096");
    assert_eq!(rows.as_array().unwrap().len(), 1, "{}", json.stdout);
}
