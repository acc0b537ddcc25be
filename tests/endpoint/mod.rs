//! What a probe learns beyond the handshake's verdict, each against a real
//! server: the chain problems and the verified path (`chain`), the stapled
//! OCSP response (`ocsp`), both served by `openssl s_server`; and the
//! STARTTLS exchanges' failure cases, which real servers do not produce on
//! demand, against hand-written servers (`starttls`).

mod chain;
mod ocsp;
mod starttls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use certinel::config::EndpointSourceConfig;

use crate::common::*;

/// A root, an intermediate it signs, and a leaf for `localhost` the
/// intermediate signs, as PEM files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub root: Ca,
    pub inter: Ca,
    pub leaf: Minted,
}

impl Pki {
    /// The leaf valid for `leaf_days` more days, the intermediate for
    /// `inter_days`; the root for ten years.
    pub fn new(leaf_days: i64, inter_days: i64) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = Ca::new("certinel test root");
        let inter = root.intermediate("certinel test intermediate", inter_days);
        let leaf = inter.issue(&Leaf::server("localhost", leaf_days));
        let d = dir.path();
        write(d, "root.crt", &root.cert.cert_pem);
        write(d, "inter.crt", &inter.cert.cert_pem);
        write(d, "inter.key", &inter.cert.key_pem);
        write(d, "leaf.crt", &leaf.cert_pem);
        write(d, "leaf.key", &leaf.key_pem);
        Pki {
            dir,
            root,
            inter,
            leaf,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Writes `pems` one after the other into `name`.
    pub fn bundle(&self, name: &str, pems: &[&str]) -> PathBuf {
        write(self.path(), name, pems.concat())
    }

    /// `openssl s_server` serving the leaf (or `cert`/`key` files of the
    /// directory) with the chain file `chain`, plus `extra` arguments.
    pub fn s_server(
        &self,
        cert: &str,
        key: &str,
        chain: Option<&Path>,
        extra: &[&str],
    ) -> OpensslServer {
        let (cert, key) = (self.file(cert), self.file(key));
        let mut args = vec![
            "-cert".to_owned(),
            cert.display().to_string(),
            "-key".to_owned(),
            key.display().to_string(),
        ];
        if let Some(chain) = chain {
            args.push("-cert_chain".to_owned());
            args.push(chain.display().to_string());
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        OpensslServer::start(self.path(), &args)
    }

    /// The endpoint source for `localhost:port` trusting the root.
    pub fn source(&self, addr: SocketAddr, extra: &str) -> EndpointSourceConfig {
        endpoint(
            self.path(),
            &format!(
                "targets: [\"localhost:{}\"]\nca_file: root.crt\ntimeout: 5s\n{extra}",
                addr.port()
            ),
        )
    }
}
