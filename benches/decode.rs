//! PEM/DER → certificate facts, per certificate: the work a file pass does
//! for every changed file and a probe does for every served certificate.
//!
//! `cargo bench --bench decode`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use certinel::cert::{decode_bundle, parse_der};
use certinel_testkit::{now, Ca, Error, Minted, Purpose, Spec, DAY};

/// `CN=cn, O=certinel bench, OU=platform`, valid for a year.
fn spec(cn: &str, purpose: Purpose) -> Spec<'_> {
    Spec {
        o: Some("certinel bench"),
        ou: Some("platform"),
        ..Spec::new(cn, now() - DAY, now() + 365 * DAY, purpose)
    }
}

/// A root, an intermediate it signs, and a leaf the intermediate signs.
fn chain() -> Result<[Minted; 3], Error> {
    let root = Ca::root(&spec("bench root", Purpose::Ca))?;
    let inter = root.intermediate(&spec("bench intermediate", Purpose::Ca))?;
    let leaf = inter.issue(&Spec {
        sans: &["svc.bench.test", "svc.bench.svc.cluster.local"],
        ..spec("svc.bench.test", Purpose::Any)
    })?;
    Ok([leaf, inter.cert, root.cert])
}

fn bench_decode(c: &mut Criterion) {
    let [leaf, inter, root] =
        chain().unwrap_or_else(|e| panic!("cannot mint the benchmark certificates: {e}"));
    let mut group = c.benchmark_group("cert");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_der/leaf", |b| b.iter(|| parse_der(&leaf.der)));
    group.bench_function("decode_bundle/der_file", |b| {
        b.iter(|| decode_bundle(&leaf.der))
    });
    let inputs = [
        ("single", 1, leaf.cert_pem.clone()),
        (
            "leaf+intermediate",
            2,
            format!("{}{}", leaf.cert_pem, inter.cert_pem),
        ),
        (
            "4 CAs",
            4,
            format!(
                "{}{}{}{}",
                root.cert_pem, inter.cert_pem, root.cert_pem, inter.cert_pem
            ),
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
