//! kubeconfig files → the certificates they embed or name, each with its
//! role. No I/O: certificates embedded as `certificate-authority-data`
//! and `client-certificate-data` are decoded here; the files named by
//! `certificate-authority` and `client-certificate` are returned for the
//! file source to read with its usual care.
//!
//! The roles are named as x509-certificate-exporter names them:
//! `embedded_kind` is `cluster` (a cluster's CA) or `user` (a client
//! certificate), `embedded_key` the cluster's or user's `name`.

use base64::Engine as _;
use serde::Deserialize;

use super::{decode_bundle, Bundle, DecodeError};

/// Which part of a kubeconfig a certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddedKind {
    /// `clusters[].cluster.certificate-authority(-data)`: the CA the
    /// client trusts for the API server.
    Cluster,
    /// `users[].user.client-certificate(-data)`: the client certificate.
    User,
}

impl EmbeddedKind {
    /// The `embedded_kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddedKind::Cluster => "cluster",
            EmbeddedKind::User => "user",
        }
    }
}

/// One cluster CA or user certificate of a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigEntry {
    /// Cluster or user.
    pub kind: EmbeddedKind,
    /// The cluster's or user's `name` (control characters escaped).
    pub name: Box<str>,
    /// Where its certificates are.
    pub source: EntrySource,
}

/// Where an entry's certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// Embedded (`*-data`), already decoded.
    Inline(Bundle),
    /// A file to read, as written (relative paths are relative to the
    /// kubeconfig's directory, as kubectl reads them).
    File(String),
}

/// The entries of a kubeconfig, clusters first, each in file order.
pub type Kubeconfig = Vec<KubeconfigEntry>;

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    clusters: Option<Vec<NamedCluster>>,
    #[serde(default)]
    users: Option<Vec<NamedUser>>,
}

#[derive(Deserialize)]
struct NamedCluster {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cluster: Option<Cluster>,
}

#[derive(Deserialize)]
struct NamedUser {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize)]
struct Cluster {
    #[serde(default, rename = "certificate-authority-data")]
    data: Option<String>,
    #[serde(default, rename = "certificate-authority")]
    file: Option<String>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default, rename = "client-certificate-data")]
    data: Option<String>,
    #[serde(default, rename = "client-certificate")]
    file: Option<String>,
}

/// Whether text looks like a kubeconfig: it names a cluster CA or a
/// client certificate, under `clusters:` or `users:`. Cheap, so any text
/// file can be asked.
pub(super) fn looks_like_kubeconfig(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    (has(b"clusters:") || has(b"users:"))
        && (has(b"certificate-authority") || has(b"client-certificate"))
}

/// Parses a kubeconfig. YAML that is not a kubeconfig is `DecodeFailed`;
/// a kubeconfig without certificates (tokens, exec plugins) is an empty
/// list.
pub fn parse_kubeconfig(bytes: &[u8]) -> Result<Kubeconfig, DecodeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::DecodeFailed(format!("a kubeconfig is UTF-8 text: {e}")))?;
    let doc: Doc = serde_norway::from_str(text)
        .map_err(|e| DecodeError::DecodeFailed(format!("not a kubeconfig: {e}")))?;
    let mut entries = Vec::new();
    for c in doc.clusters.unwrap_or_default() {
        let Some(cluster) = c.cluster else { continue };
        push(
            &mut entries,
            EmbeddedKind::Cluster,
            c.name,
            cluster.data,
            cluster.file,
        );
    }
    for u in doc.users.unwrap_or_default() {
        let Some(user) = u.user else { continue };
        push(
            &mut entries,
            EmbeddedKind::User,
            u.name,
            user.data,
            user.file,
        );
    }
    Ok(entries)
}

/// Adds one entry. As in client-go, embedded data wins over a file.
fn push(
    entries: &mut Kubeconfig,
    kind: EmbeddedKind,
    name: Option<String>,
    data: Option<String>,
    file: Option<String>,
) {
    let source = match (data.filter(|d| !d.trim().is_empty()), file) {
        (Some(data), _) => EntrySource::Inline(decode_data(&data)),
        (None, Some(file)) if !file.trim().is_empty() => EntrySource::File(file),
        _ => return,
    };
    let name = name.unwrap_or_default();
    entries.push(KubeconfigEntry {
        kind,
        name: crate::text::printable(&name).into_owned().into(),
        source,
    });
}

/// `*-data`: base64 of a PEM (or DER) certificate.
fn decode_data(data: &str) -> Bundle {
    let compact: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(compact) {
        Ok(bytes) => decode_bundle(&bytes),
        Err(e) => Bundle {
            error: Some(DecodeError::DecodeFailed(format!(
                "the embedded data is not base64: {e}"
            ))),
            ..Bundle::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(cn: &str) -> String {
        crate::cert::tests::named(cn).pem()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn clusters_then_users_with_their_names() {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: eA==\nclusters:\n- name: prod\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: {}\n- name: files\n  cluster:\n    certificate-authority: pki/ca.crt\ncontexts: []\n",
            b64(&pem("kube-admin")),
            b64(&pem("kube-ca")),
        );
        assert!(looks_like_kubeconfig(yaml.as_bytes()));
        let entries = parse_kubeconfig(yaml.as_bytes()).unwrap();
        let summary: Vec<_> = entries
            .iter()
            .map(|e| {
                let what = match &e.source {
                    EntrySource::Inline(b) => b.certs[0].subject.cn.to_string(),
                    EntrySource::File(f) => f.clone(),
                };
                (e.kind.as_str(), &*e.name, what)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("cluster", "prod", "kube-ca".to_owned()),
                ("cluster", "files", "pki/ca.crt".to_owned()),
                ("user", "admin", "kube-admin".to_owned()),
            ]
        );
    }

    #[test]
    fn bad_base64_is_decode_failed_in_its_entry_and_tokens_are_nothing() {
        let yaml = "users:\n- name: u\n  user:\n    client-certificate-data: '!!!'\n- name: t\n  user:\n    token: abc\n";
        let entries = parse_kubeconfig(yaml.as_bytes()).unwrap();
        assert_eq!(entries.len(), 1);
        let EntrySource::Inline(bundle) = &entries[0].source else {
            panic!()
        };
        assert!(matches!(bundle.error, Some(DecodeError::DecodeFailed(_))));
    }

    #[test]
    fn yaml_that_is_no_kubeconfig_is_decode_failed() {
        assert!(matches!(
            parse_kubeconfig(b"clusters: 5\n"),
            Err(DecodeError::DecodeFailed(_))
        ));
        assert!(matches!(
            parse_kubeconfig(b"\xff\xfe"),
            Err(DecodeError::DecodeFailed(_))
        ));
        assert!(!looks_like_kubeconfig(b"hello world\n"));
    }
}
