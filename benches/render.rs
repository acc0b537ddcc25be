//! Rendering `/metrics` for 10 000 certificates: what every scrape costs.
//!
//! A store with one file source holding a synthetic pass of 10 000 files,
//! one certificate each, rendered through the real registry (certificate
//! families, source families, `process_*`).
//!
//! `cargo bench --bench render`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use certinel::cert::{CertFacts, NameFields};
use certinel::config::Config;
use certinel::metrics;
use certinel::snapshot::Store;
use certinel::sources::files::{FileReport, FileScan};

fn facts(i: usize) -> CertFacts {
    let mut sha256 = [0; 32];
    sha256[..8].copy_from_slice(&(i as u64).to_be_bytes());
    CertFacts {
        sha256,
        not_before: 1_700_000_000 + i as i64,
        not_after: 1_800_000_000 + 86_400 * (i as i64 % 700),
        serial_number: format!("{}", 0x0123_4567_89ab_cdef_u64.wrapping_mul(i as u64 + 1)).into(),
        subject: NameFields {
            cn: format!("svc-{i:05}.bench.test").into(),
            o: "certinel bench".into(),
            ..NameFields::default()
        },
        issuer: Arc::new(NameFields {
            cn: "certinel bench intermediate".into(),
            o: "certinel bench".into(),
            ..NameFields::default()
        }),
    }
}

fn store_with(certs: usize) -> Arc<Store> {
    let config = Config::from_yaml(
        "files:\n  - name: bench\n    paths: [\"/etc/certinel-bench/**/*.pem\"]\n",
        Path::new("/"),
    )
    .unwrap_or_else(|e| panic!("benchmark config rejected: {e}"));
    let store = Arc::new(Store::new());
    certinel::scheduler::lay_out(&config, &store);
    let scan: FileScan = (0..certs)
        .map(|i| {
            let path: Arc<Path> = Arc::from(Path::new(&format!(
                "/etc/certinel-bench/ns-{:03}/svc-{i:05}.pem",
                i % 100
            )));
            let report = FileReport {
                certs: vec![Arc::new(facts(i))],
                ..FileReport::default()
            };
            (path, Arc::new(report))
        })
        .collect::<BTreeMap<_, _>>();
    store.publish_files(0, scan, Duration::from_millis(1));
    store
}

fn bench_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.sample_size(30);
    for certs in [1_000usize, 10_000] {
        let store = store_with(certs);
        let registry = metrics::registry(store);
        let mut size = 0;
        group.throughput(Throughput::Elements(certs as u64));
        group.bench_with_input(
            BenchmarkId::new("encode", certs),
            &registry,
            |b, registry| {
                b.iter(|| {
                    let mut out = String::with_capacity(size + 1024);
                    metrics::encode(registry, &mut out)
                        .unwrap_or_else(|e| panic!("encoding failed: {e}"));
                    size = out.len();
                    out
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
