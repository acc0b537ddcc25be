//! PEM/DER → certificate facts, per certificate: the work a file pass does
//! for every changed file and a probe does for every served certificate.
//!
//! `cargo bench --bench decode`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use certinel::cert::{decode_bundle, parse_der};

struct Minted {
    pem: String,
    der: Vec<u8>,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "certinel bench");
    dn.push(DnType::OrganizationalUnitName, "platform");
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A root, an intermediate it signs, and a leaf the intermediate signs.
fn chain() -> Result<[Minted; 3], rcgen::Error> {
    let root_params = ca_params("bench root");
    let root_key = KeyPair::generate()?;
    let root = root_params.self_signed(&root_key)?;
    let inter_params = ca_params("bench intermediate");
    let inter_key = KeyPair::generate()?;
    let inter =
        inter_params.signed_by(&inter_key, &Issuer::from_params(&root_params, &root_key))?;
    let mut leaf_params = CertificateParams::new(vec![
        "svc.bench.test".to_owned(),
        "svc.bench.svc.cluster.local".to_owned(),
    ])?;
    leaf_params.distinguished_name = name("svc.bench.test");
    let leaf_key = KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &Issuer::from_params(&inter_params, &inter_key))?;
    Ok([leaf, inter, root].map(|c| Minted {
        pem: c.pem(),
        der: c.der().to_vec(),
    }))
}

fn bench_decode(c: &mut Criterion) {
    let Ok([leaf, inter, root]) = chain() else {
        panic!("rcgen could not mint the benchmark certificates");
    };
    let mut group = c.benchmark_group("cert");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_der/leaf", |b| b.iter(|| parse_der(&leaf.der)));
    group.bench_function("decode_bundle/der_file", |b| {
        b.iter(|| decode_bundle(&leaf.der))
    });
    let inputs = [
        ("single", 1, leaf.pem.clone()),
        ("leaf+intermediate", 2, format!("{}{}", leaf.pem, inter.pem)),
        (
            "4 CAs",
            4,
            format!("{}{}{}{}", root.pem, inter.pem, root.pem, inter.pem),
        ),
    ];
    for (label, certs, pem) in &inputs {
        group.throughput(Throughput::Elements(*certs));
        group.bench_with_input(
            BenchmarkId::new("decode_bundle/pem", label),
            pem,
            |b, pem| {
                b.iter(|| {
                    let bundle = decode_bundle(pem.as_bytes());
                    assert_eq!(bundle.certs.len() as u64, *certs);
                    bundle
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
