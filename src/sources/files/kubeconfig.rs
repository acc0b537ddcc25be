//! A kubeconfig's certificates, put together: the embedded ones as
//! decoded, the referenced ones read with the same care as any configured
//! file. Each certificate keeps its role (cluster CA or user certificate,
//! and the name) for `certinel_kubeconfig_cert_info`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::read::{decode_failure, read_failure, report_of, Dependency};
use super::{FileError, FileReport};
use crate::cert::kubeconfig::{EmbeddedKind, EntrySource, Kubeconfig};
use crate::cert::{decode_bundle, Bundle};
use crate::filesystem::{self, FileIdentity};

/// The role of a certificate found in a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRole {
    /// Cluster CA or user certificate (`embedded_kind`).
    pub kind: EmbeddedKind,
    /// The cluster's or user's name (`embedded_key`).
    pub name: Box<str>,
    /// The file it was read from, for `certificate-authority` and
    /// `client-certificate`; `None` when embedded.
    pub file: Option<PathBuf>,
}

/// Reads what `entries` reference and builds the kubeconfig's report:
/// every certificate in entry order, with its role, and the first
/// problem met. Referenced files become `dependencies`.
pub(super) fn assemble(
    kubeconfig: &Path,
    entries: Kubeconfig,
    cap: u64,
    dependencies: &mut Vec<Dependency>,
) -> FileReport {
    let base = kubeconfig.parent().unwrap_or(Path::new("/"));
    let mut report = FileReport::default();
    for entry in entries {
        let (bundle, file, field) = match entry.source {
            EntrySource::Inline(bundle) => (bundle, None, data_field(entry.kind)),
            EntrySource::File(written) => {
                let file = crate::config::absolute(&base.join(written));
                dependencies.push(Dependency {
                    path: file.clone(),
                    identity: FileIdentity::stat(&file),
                });
                let bundle = match filesystem::read_regular(&file, cap) {
                    Ok(bytes) => decode_bundle(&bytes),
                    Err(e) => {
                        let failed = read_failure(&file, e);
                        if let Some(error) = failed.error {
                            note(
                                &mut report,
                                &entry.kind,
                                &entry.name,
                                &file_field(entry.kind),
                                error,
                            );
                        }
                        continue;
                    }
                };
                (bundle, Some(file), file_field(entry.kind))
            }
        };
        let role = Arc::new(CertRole {
            kind: entry.kind,
            name: entry.name,
            file,
        });
        let Bundle { certs, error, crls } = bundle;
        if let Some(e) = error {
            note(
                &mut report,
                &role.kind,
                &role.name,
                &field,
                decode_failure(&e),
            );
        }
        report.roles.extend(certs.iter().map(|_| role.clone()));
        report.certs.extend(certs);
        report.crls.extend(crls);
    }
    if report.certs.is_empty() && report.crls.is_empty() && report.error.is_none() {
        return report_of(Bundle {
            error: Some(crate::cert::DecodeError::NoCertificateFound),
            ..Bundle::default()
        });
    }
    report
}

/// Keeps the first problem, saying which entry it is in.
fn note(report: &mut FileReport, kind: &EmbeddedKind, name: &str, field: &str, e: FileError) {
    if report.error.is_none() {
        report.error = Some(FileError {
            reason: e.reason,
            detail: format!("{} {name:?} ({field}): {}", kind.as_str(), e.detail),
        });
    }
}

fn data_field(kind: EmbeddedKind) -> String {
    format!("{}-data", file_field(kind))
}

fn file_field(kind: EmbeddedKind) -> String {
    match kind {
        EmbeddedKind::Cluster => "certificate-authority",
        EmbeddedKind::User => "client-certificate",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::kubeconfig::KubeconfigEntry;
    use crate::sources::files::FileErrorReason;

    #[test]
    fn a_missing_referenced_file_is_reported_and_hides_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        let entries = vec![
            KubeconfigEntry {
                kind: EmbeddedKind::Cluster,
                name: "prod".into(),
                source: EntrySource::File("pki/absent.crt".to_owned()),
            },
            KubeconfigEntry {
                kind: EmbeddedKind::User,
                name: "admin".into(),
                source: EntrySource::Inline(Bundle::default()),
            },
        ];
        let mut deps = Vec::new();
        let report = assemble(&kubeconfig, entries, 1024, &mut deps);
        let error = report.error.unwrap();
        assert_eq!(error.reason, FileErrorReason::NotFound);
        assert!(
            error
                .detail
                .starts_with("cluster \"prod\" (certificate-authority): "),
            "{}",
            error.detail
        );
        assert_eq!(deps[0].path, dir.path().join("pki/absent.crt"));
        assert_eq!(deps[0].identity, None);
    }
}
