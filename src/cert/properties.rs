//! Property tests: no input makes the decoder panic or hide a good
//! certificate.
use super::*;
use proptest::prelude::*;

/// A real certificate to mutate (the same for every case: minting
/// one per case would dominate the run time).
pub(super) fn sample_der() -> &'static [u8] {
    static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DER.get_or_init(|| {
        let mut params = rcgen::CertificateParams::new(vec!["p.test".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "props");
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    })
}

fn pem_block(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Pieces a PEM file is made of, good and broken.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(pem_block(sample_der())),
        Just("-----BEGIN CERTIFICATE-----\n".to_owned()),
        Just("-----END CERTIFICATE-----\n".to_owned()),
        Just("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_owned()),
        "[A-Za-z0-9+/=]{0,80}\n",
        "[ -~]{0,40}\n",
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_yield_certificates_or_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let bundle = decode_bundle(&bytes);
        prop_assert!(!bundle.certs.is_empty() || bundle.error.is_some());
    }

    #[test]
    fn pem_made_of_good_and_broken_pieces_keeps_every_good_certificate(
        pieces in proptest::collection::vec(fragment(), 0..12)
    ) {
        let text = pieces.concat();
        let bundle = decode_bundle(text.as_bytes());
        prop_assert!(!bundle.certs.is_empty() || bundle.error.is_some());
        // Every complete good block that no broken block swallows is
        // found: at least as many as the pieces that are whole blocks
        // preceded by a line break (or the start).
        let good = pem_block(sample_der());
        let mut whole = 0;
        let mut at_line_start = true;
        for p in &pieces {
            if *p == good && at_line_start {
                whole += 1;
            }
            at_line_start = p.is_empty() && at_line_start || p.ends_with('\n');
        }
        prop_assert!(bundle.certs.len() >= whole, "{} < {whole} in {text:?}", bundle.certs.len());
    }

    #[test]
    fn a_mutated_certificate_parses_or_fails_cleanly(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut der = sample_der().to_vec();
        for (at, byte) in flips {
            let i = at.index(der.len());
            der[i] ^= byte;
        }
        let _ = parse_der(&der);
        let _ = parse_der(&der[..cut.index(der.len())]);
    }
}
