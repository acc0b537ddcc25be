//! Keystores and CRLs made by the real tools — `openssl pkcs12`,
//! `keytool`, `openssl ca -gencrl` — from certificates minted per test,
//! so the files are exactly what users and cert-manager deploy.
//! `scripts/test` installs the tools when missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{run_bounded, write, Minted};

/// Runs a tool in `dir`; panics with its output unless it succeeds.
pub fn tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new(program).args(args).current_dir(dir),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// `openssl pkcs12 -export` of `leaf` (with its key) and `chain`, with
/// OpenSSL 3's defaults (PBES2, AES-256, HMAC-SHA-256) or `-legacy`
/// (RC2-40, 3DES, SHA-1), as `dir/name`.
pub fn openssl_pkcs12(
    dir: &Path,
    name: &str,
    leaf: &Minted,
    chain: &[&Minted],
    password: &str,
    legacy: bool,
) -> PathBuf {
    write(dir, "in/leaf.crt", &leaf.cert_pem);
    write(dir, "in/leaf.key", &leaf.key_pem);
    let chain_pem: String = chain.iter().map(|c| c.cert_pem.as_str()).collect();
    write(dir, "in/chain.crt", chain_pem);
    let passout = format!("pass:{password}");
    let mut args = vec![
        "pkcs12",
        "-export",
        "-in",
        "in/leaf.crt",
        "-inkey",
        "in/leaf.key",
        "-name",
        "tls",
        "-passout",
        &passout,
        "-out",
        name,
    ];
    if !chain.is_empty() {
        args.extend(["-certfile", "in/chain.crt"]);
    }
    if legacy {
        args.push("-legacy");
    }
    tool(dir, "openssl", &args);
    dir.join(name)
}

/// `keytool -importkeystore` of a PKCS#12 store into a new store of
/// `storetype` (`jks` or `pkcs12`, keytool's own encoding), as `dir/name`.
pub fn keytool_convert(
    dir: &Path,
    source: &Path,
    source_password: &str,
    name: &str,
    storetype: &str,
    password: &str,
) -> PathBuf {
    tool(
        dir,
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            &source.to_string_lossy(),
            "-srcstoretype",
            "pkcs12",
            "-srcstorepass",
            source_password,
            "-destkeystore",
            name,
            "-deststoretype",
            storetype,
            "-deststorepass",
            password,
        ],
    );
    dir.join(name)
}

/// A truststore of `certs` (`keytool -importcert`, one alias each, in
/// order) of `storetype`, as `dir/name`.
pub fn keytool_truststore(
    dir: &Path,
    name: &str,
    certs: &[&Minted],
    storetype: &str,
    password: &str,
) -> PathBuf {
    for (i, cert) in certs.iter().enumerate() {
        let file = format!("in/trust-{i}.crt");
        write(dir, &file, &cert.cert_pem);
        let alias = format!("ca-{i}");
        tool(
            dir,
            "keytool",
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                &alias,
                "-file",
                &file,
                "-keystore",
                name,
                "-storetype",
                storetype,
                "-storepass",
                password,
            ],
        );
    }
    dir.join(name)
}

/// `openssl ca -gencrl` by `ca` (its certificate and key), with the given
/// `thisUpdate` and `nextUpdate` (`YYYYMMDDHHMMSSZ`) and cRLNumber 0x1000,
/// as `dir/name` (PEM).
pub fn openssl_crl(
    dir: &Path,
    name: &str,
    ca: &Minted,
    this_update: &str,
    next_update: &str,
) -> PathBuf {
    let work = dir.join(format!("{name}.ca"));
    write(&work, "index.txt", "");
    write(&work, "crlnumber", "1000\n");
    write(&work, "ca.crt", &ca.cert_pem);
    write(&work, "ca.key", &ca.key_pem);
    write(
        &work,
        "ca.cnf",
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\n",
    );
    let out = dir.join(name);
    tool(
        &work,
        "openssl",
        &[
            "ca",
            "-gencrl",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.crt",
            "-keyfile",
            "ca.key",
            "-crl_lastupdate",
            this_update,
            "-crl_nextupdate",
            next_update,
            "-out",
            &out.to_string_lossy(),
        ],
    );
    out
}
