//! The label sets of the contract, and every place a certificate or a
//! probe was seen in a snapshot, walked in a stable order.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hasher;
use std::path::Path;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use super::series::{hash_label, hex8, short_hash, Series};
use crate::cert::{CertFacts, CrlFacts, NameFields};
use crate::config::{MetricsSettings, NameAttribute};
use crate::snapshot::{SourceData, SourceState};
use crate::sources::endpoint::restart::Verdict;
use crate::sources::endpoint::AddressReport;
use crate::sources::files::CertRole;
use crate::sources::SourceKind;
use crate::text::path_label;

/// One certificate and where it was seen: the full `x509_cert_*` label set.
pub(super) struct CertLabels<'a> {
    pub(super) kind: SourceKind,
    pub(super) source_name: &'a str,
    pub(super) filepath: Cow<'a, str>,
    pub(super) filename: Cow<'a, str>,
    pub(super) target: &'a str,
    pub(super) server_name: &'a str,
    pub(super) address: &'a str,
    pub(super) chain_index: usize,
    pub(super) facts: &'a CertFacts,
    pub(super) settings: &'a MetricsSettings,
}

impl CertLabels<'_> {
    /// Every label, in exposition order, as (name, value); `f` is called
    /// by both the encoder and the uniqueness guard, so they cannot differ.
    fn each(&self, mut f: impl FnMut(&str, &str) -> fmt::Result) -> fmt::Result {
        f("source_kind", self.kind.as_str())?;
        f("source_name", self.source_name)?;
        f("filepath", &self.filepath)?;
        f("filename", &self.filename)?;
        f("target", self.target)?;
        f("server_name", self.server_name)?;
        f("address", self.address)?;
        f("chain_index", itoa(self.chain_index, &mut [0; 20]))?;
        f("serial_number", &self.facts.serial_number)?;
        f("subject_CN", &self.facts.subject.cn)?;
        f("subject_O", &self.facts.subject.o)?;
        f("subject_OU", &self.facts.subject.ou)?;
        extra(
            &self.settings.subject_labels,
            "subject",
            &self.facts.subject,
            &mut f,
        )?;
        f("issuer_CN", &self.facts.issuer.cn)?;
        f("issuer_O", &self.facts.issuer.o)?;
        extra(
            &self.settings.issuer_labels,
            "issuer",
            &self.facts.issuer,
            &mut f,
        )
    }
}

/// The opt-in `subject_C`, … labels.
fn extra(
    attrs: &[NameAttribute],
    prefix: &str,
    names: &NameFields,
    f: &mut impl FnMut(&str, &str) -> fmt::Result,
) -> fmt::Result {
    for attr in attrs {
        let (name, value) = match (prefix, attr) {
            ("subject", NameAttribute::C) => ("subject_C", &names.c),
            ("subject", NameAttribute::ST) => ("subject_ST", &names.st),
            ("subject", NameAttribute::L) => ("subject_L", &names.l),
            (_, NameAttribute::C) => ("issuer_C", &names.c),
            (_, NameAttribute::ST) => ("issuer_ST", &names.st),
            (_, NameAttribute::L) => ("issuer_L", &names.l),
        };
        f(name, value)?;
    }
    Ok(())
}

/// A small number as text without allocating.
fn itoa(n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// `EncodeLabelSet` and `Series` for a label set with an `each` method,
/// so the encoder and the uniqueness guard read the very same labels;
/// `$discriminator` tells apart two series whose labels are equal.
macro_rules! label_set {
    ($type:ident, |$this:ident| $discriminator:expr) => {
        impl EncodeLabelSet for $type<'_> {
            fn encode(&self, e: &mut LabelSetEncoder<'_>) -> fmt::Result {
                self.each(|k, v| (k, v).encode(e.encode_label()))
            }
        }

        impl Series for $type<'_> {
            fn hash_labels(&self, h: &mut dyn Hasher) {
                let _ = self.each(|k, v| {
                    hash_label(h, k, v);
                    Ok(())
                });
            }

            fn discriminator(&self) -> String {
                let $this = self;
                $discriminator
            }
        }
    };
}

// The contract's discriminator: the certificate's SHA-256.
label_set!(CertLabels, |this| hex8(&this.facts.sha256));

/// One CRL and where it was seen: the `x509_crl_*` label set, the
/// certificate schema's names for what a CRL has (no subject, no serial).
pub(super) struct CrlLabels<'a> {
    pub(super) source_name: &'a str,
    pub(super) filepath: Cow<'a, str>,
    pub(super) filename: Cow<'a, str>,
    /// Position among the file's CRLs.
    pub(super) chain_index: usize,
    pub(super) crl: &'a CrlFacts,
    pub(super) settings: &'a MetricsSettings,
}

impl CrlLabels<'_> {
    fn each(&self, mut f: impl FnMut(&str, &str) -> fmt::Result) -> fmt::Result {
        f("source_kind", SourceKind::File.as_str())?;
        f("source_name", self.source_name)?;
        f("filepath", &self.filepath)?;
        f("filename", &self.filename)?;
        f("chain_index", itoa(self.chain_index, &mut [0; 20]))?;
        f("issuer_CN", &self.crl.issuer.cn)?;
        f("issuer_O", &self.crl.issuer.o)?;
        extra(
            &self.settings.issuer_labels,
            "issuer",
            &self.crl.issuer,
            &mut f,
        )
    }
}

// The CRL's SHA-256, as for certificates.
label_set!(CrlLabels, |this| hex8(&this.crl.sha256));

/// Calls `f` for every CRL in the snapshot, in a stable order.
pub(super) fn for_each_crl<'a>(
    sources: &'a [Arc<SourceState>],
    settings: &'a MetricsSettings,
    mut f: impl FnMut(&CrlLabels<'a>) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        let SourceData::Files(scan) = &source.data else {
            continue;
        };
        for (path, report) in scan.iter().filter(|(_, r)| !r.crls.is_empty()) {
            let (filepath, filename) = path_labels(path);
            for (chain_index, crl) in report.crls.iter().enumerate() {
                f(&CrlLabels {
                    source_name: &source.name,
                    filepath: filepath.clone(),
                    filename: filename.clone(),
                    chain_index,
                    crl,
                    settings,
                })?;
            }
        }
    }
    Ok(())
}

/// Calls `f` with the labels of `certinel_kubeconfig_cert_info` for every
/// certificate found in a kubeconfig, and the raw path for the
/// discriminator.
pub(super) fn for_each_kubeconfig_cert(
    sources: &[Arc<SourceState>],
    mut f: impl FnMut(&[(&str, &str)], &[u8]) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        let SourceData::Files(scan) = &source.data else {
            continue;
        };
        for (path, report) in scan.iter().filter(|(_, r)| !r.roles.is_empty()) {
            let filepath = path_label(path);
            for (chain_index, role) in report.roles.iter().enumerate() {
                let role: &CertRole = role;
                let referenced = role.file.as_deref().map(path_label).unwrap_or_default();
                let mut digits = [0; 20];
                let labels = [
                    ("source_name", source.name.as_str()),
                    ("filepath", &filepath),
                    ("chain_index", itoa(chain_index, &mut digits)),
                    ("embedded_kind", role.kind.as_str()),
                    ("embedded_key", &role.name),
                    ("referenced_file", &referenced),
                ];
                f(&labels, path.as_os_str().as_encoded_bytes())?;
            }
        }
    }
    Ok(())
}

/// `source_name`, `target`, `server_name`, `address` of an endpoint probe,
/// plus optional extras (`reason`, `version`/`cipher_suite`, `filepath`).
#[derive(Clone, Copy)]
pub(super) struct ProbeLabels<'a> {
    pub(super) source_name: &'a str,
    pub(super) target: &'a str,
    pub(super) server_name: &'a str,
    pub(super) address: &'a str,
    pub(super) extra: &'a [(&'a str, &'a str)],
}

impl ProbeLabels<'_> {
    fn each(&self, mut f: impl FnMut(&str, &str) -> fmt::Result) -> fmt::Result {
        f("source_name", self.source_name)?;
        f("target", self.target)?;
        f("server_name", self.server_name)?;
        f("address", self.address)?;
        for (k, v) in self.extra {
            f(k, v)?;
        }
        Ok(())
    }
}

// A probe has no certificate: the hash of its labels.
label_set!(ProbeLabels, |this| {
    let mut raw = Vec::new();
    let _ = this.each(|k, v| {
        raw.extend_from_slice(k.as_bytes());
        raw.push(0);
        raw.extend_from_slice(v.as_bytes());
        raw.push(0);
        Ok(())
    });
    short_hash(&raw)
});

/// `filepath` and `filename` of a file.
pub(super) fn path_labels(path: &Path) -> (Cow<'_, str>, Cow<'_, str>) {
    let filename = path
        .file_name()
        .map(|n| path_label(Path::new(n)))
        .unwrap_or_default();
    (path_label(path), filename)
}

/// Calls `f` for every certificate in the snapshot, in a stable order.
pub(super) fn for_each_cert<'a>(
    sources: &'a [Arc<SourceState>],
    settings: &'a MetricsSettings,
    mut f: impl FnMut(&CertLabels<'a>) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        match &source.data {
            SourceData::Files(scan) => {
                for (path, report) in scan.iter() {
                    let (filepath, filename) = path_labels(path);
                    for (chain_index, facts) in report.certs.iter().enumerate() {
                        f(&CertLabels {
                            kind: source.kind,
                            source_name: &source.name,
                            filepath: filepath.clone(),
                            filename: filename.clone(),
                            target: "",
                            server_name: "",
                            address: "",
                            chain_index,
                            facts,
                            settings,
                        })?;
                    }
                }
            }
            SourceData::Endpoints(results) => {
                for (target, reports) in results.targets.iter().zip(&results.reports) {
                    for report in reports.iter().flat_map(|r| &r.addresses) {
                        for (chain_index, facts) in report.chain.iter().enumerate() {
                            f(&CertLabels {
                                kind: source.kind,
                                source_name: &source.name,
                                filepath: Cow::Borrowed(""),
                                filename: Cow::Borrowed(""),
                                target: &target.target,
                                server_name: target.sni(),
                                address: &report.address,
                                chain_index,
                                facts,
                                settings,
                            })?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// One probed address, with its restart-pending verdict when its target
/// has an `expect_file` and the comparison could be made.
pub(super) struct Probe<'a> {
    pub(super) labels: ProbeLabels<'a>,
    pub(super) report: &'a AddressReport,
    /// The `expect_file` and the verdict.
    pub(super) restart: Option<(&'a Path, Verdict)>,
}

/// Calls `f` for every probed address of every endpoint source.
pub(super) fn for_each_probe<'a>(
    sources: &'a [Arc<SourceState>],
    mut f: impl FnMut(&Probe<'a>) -> fmt::Result,
) -> fmt::Result {
    for source in sources {
        let SourceData::Endpoints(results) = &source.data else {
            continue;
        };
        for (target, report) in results.targets.iter().zip(&results.reports) {
            let Some(report) = report else { continue };
            for (i, address) in report.addresses.iter().enumerate() {
                let restart = report
                    .restart
                    .as_ref()
                    .and_then(|check| Some((check.file.as_path(), check.verdict(i)?)));
                f(&Probe {
                    labels: ProbeLabels {
                        source_name: &source.name,
                        target: &target.target,
                        server_name: target.sni(),
                        address: &address.address,
                        extra: &[],
                    },
                    report: address,
                    restart,
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::itoa;

    #[test]
    fn small_numbers_print_as_decimal() {
        for n in [0, 7, 10, 1234, usize::MAX] {
            assert_eq!(itoa(n, &mut [0; 20]), n.to_string());
        }
    }
}
