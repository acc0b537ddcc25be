//! Every Kubernetes manifest in `deploy/` (and the generated
//! PrometheusRule) validated against the real Kubernetes OpenAPI schemas,
//! strictly (unknown fields refused), by `kubernetes-validate`, which ships
//! them offline. `scripts/test` installs it (`pip install
//! kubernetes-validate`); without it this test fails, it never skips.
//!
//! Custom resources have no schema there; the kinds that may go without
//! one are listed, so a core kind can never be skipped unnoticed. Their
//! structure is cross-checked by `kubernetes.rs` and `probe.rs`.

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// Custom resources: validated by the cross-checks, not by a schema.
const CUSTOM_KINDS: [&str; 4] = [
    "Certificate",
    "ClusterIssuer",
    "PodMonitor",
    "PrometheusRule",
];

/// `python3 -m kubernetes_validate`, or the program in `$KUBERNETES_VALIDATE`.
fn validator() -> Command {
    match std::env::var_os("KUBERNETES_VALIDATE") {
        Some(program) => Command::new(program),
        None => {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "kubernetes_validate"]);
            cmd
        }
    }
}

fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(repo().join("deploy"))
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && std::fs::read_to_string(p).is_ok_and(|t| t.contains("apiVersion:"))
        })
        .collect();
    files.push(repo().join("alerts/certinel.prometheusrule.yaml"));
    files
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    let files = manifest_files();
    assert!(
        files.len() >= 15,
        "only {} manifests: {files:?}",
        files.len()
    );
    let out = validator()
        .arg("--strict")
        .args(&files)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubernetes-validate cannot run ({e}): run scripts/test, which installs it \
                 (pip install kubernetes-validate)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named"),
        "kubernetes-validate is not installed: run scripts/test (pip install kubernetes-validate)\n{text}"
    );
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    let (mut passed, mut custom) = (0, 0);
    for line in text.lines() {
        if line.starts_with("INFO ") && line.contains(" passed for resource ") {
            passed += 1;
        } else if let Some(rest) = line.split("Couldn't find schema for kind ").nth(1) {
            let kind = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                CUSTOM_KINDS.contains(&kind),
                "no schema for core kind {kind}: {line}"
            );
            custom += 1;
        } else {
            assert!(!line.starts_with("ERROR"), "{line}");
        }
    }
    // Every document was judged, one way or the other.
    let documents: usize = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.split("\n---")
                .filter(|d| d.contains("apiVersion:"))
                .count()
        })
        .sum();
    assert_eq!(passed + custom, documents, "{text}");
    assert!(passed >= 10, "{text}");
}
