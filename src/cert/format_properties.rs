//! Property tests over the file formats: keystores, kubeconfigs and CRLs
//! are hostile input too. Arbitrary bytes, and real files with bytes
//! flipped or cut, never panic, and decode to certificates or a reason.
use super::properties::sample_der as sample_cert;
use super::*;
use proptest::prelude::*;

/// Real files of every format, made once: a PKCS#12 truststore (a low
/// iteration count keeps the cases fast), a JKS, a kubeconfig, a CRL.
fn samples() -> &'static [(Format, Vec<u8>)] {
    static SAMPLES: std::sync::OnceLock<Vec<(Format, Vec<u8>)>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(|| {
        use base64::Engine as _;
        let mut store = p12_keystore::KeyStore::new();
        let cert = p12_keystore::Certificate::from_der(sample_cert()).unwrap();
        store.add_entry("ca", p12_keystore::KeyStoreEntry::Certificate(cert));
        let pkcs12 = store
            .writer("secret")
            .encryption_iterations(1)
            .mac_iterations(1)
            .write()
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(sample_cert());
        let kubeconfig = format!(
            "clusters:\n- name: c\n  cluster:\n    certificate-authority-data: {b64}\nusers:\n- name: u\n  user:\n    client-certificate: /nonexistent\n"
        );
        vec![
            (Format::Pkcs12, pkcs12),
            (Format::Jks, jks::tests::jks_of(&[sample_cert()], "secret")),
            (Format::Kubeconfig, kubeconfig.into_bytes()),
            (Format::Pem, crl::tests::crl_der(1_700_000_000, 1_700_600_000, 3)),
        ]
    })
}

/// Decodes `bytes` in every format, with and without a password; each
/// yields certificates or a reason, never a panic.
fn decodes_cleanly(bytes: &[u8]) {
    for format in [
        Format::Auto,
        Format::Pem,
        Format::Pkcs12,
        Format::Jks,
        Format::Kubeconfig,
    ] {
        for password in [None, Some(&b"secret"[..])] {
            match decode_file(bytes, format, password) {
                Decoded::Bundle(b) => assert!(
                    !b.certs.is_empty() || !b.crls.is_empty() || b.error.is_some(),
                    "{format:?}: neither certificates nor a reason"
                ),
                Decoded::Kubeconfig(_) => {}
            }
        }
    }
}

#[test]
fn the_samples_decode_whole() {
    for (format, bytes) in samples() {
        match decode_file(bytes, Format::Auto, Some(b"secret")) {
            Decoded::Bundle(b) => {
                assert_eq!(b.error, None, "{format:?}");
                assert_eq!(b.certs.len() + b.crls.len(), 1, "{format:?}");
            }
            Decoded::Kubeconfig(entries) => assert_eq!(entries.len(), 2),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decodes_cleanly(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_magic_number_never_panic(
        magic in prop_oneof![
            Just(vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]),
            Just(vec![0xce, 0xce, 0xce, 0xce, 0, 0, 0, 2]),
            Just(vec![0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03]),
            Just(b"clusters:\n- cluster:\n    certificate-authority-data: ".to_vec()),
        ],
        tail in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        decodes_cleanly(&[magic, tail].concat());
    }

    #[test]
    fn real_files_flipped_or_cut_never_panic(
        which in 0..4usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = samples()[which].1.clone();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        decodes_cleanly(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        decodes_cleanly(&bytes);
    }
}
