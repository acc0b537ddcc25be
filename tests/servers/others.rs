//! Directory, chat and databases: OpenLDAP (`slapd`), Prosody (XMPP client
//! and server streams), PostgreSQL and MariaDB.

use super::{config, probe_checked, server, shared, Running};
use crate::common::*;

fn slapd() -> &'static Running {
    server("slapd", |dir| {
        let addr = free_port();
        let s = shared();
        let d = dir.display();
        let conf = config(
            dir,
            "slapd.conf",
            &format!(
                "include /etc/ldap/schema/core.schema\n\
                 pidfile {d}/slapd.pid\n\
                 argsfile {d}/slapd.args\n\
                 TLSCertificateFile {chain}\n\
                 TLSCertificateKeyFile {key}\n",
                chain = s.dir.join("chain.crt").display(),
                key = s.dir.join("leaf.key").display(),
            ),
        );
        let url = format!("ldap://{addr}/");
        let conf = conf.display().to_string();
        let process = Background::start(
            "slapd",
            "/usr/sbin/slapd",
            &["-d", "0", "-h", &url, "-f", &conf],
            &dir.join("log"),
        );
        (process, addr)
    })
}

/// Prosody, with its client and server ports; returns the server port.
fn prosody() -> (&'static Running, u16) {
    static S2S: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let c2s = server("prosody", |dir| {
        let (c2s, s2s) = (free_port(), free_port());
        let _ = S2S.set(s2s.port());
        let s = shared();
        let d = dir.display();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        give_to_server_user(dir);
        let conf = config(
            dir,
            "prosody.cfg.lua",
            &format!(
                "pidfile = \"{d}/prosody.pid\"\n\
                 data_path = \"{d}/data\"\n\
                 certificates = \"{d}/certs\"\n\
                 daemonize = false\n\
                 log = {{ {{ levels = {{ min = \"warn\" }}, to = \"console\" }} }}\n\
                 interfaces = {{ \"127.0.0.1\" }}\n\
                 local_interfaces = {{ \"127.0.0.1\" }}\n\
                 c2s_ports = {{ {c2s} }}\n\
                 s2s_ports = {{ {s2s} }}\n\
                 c2s_direct_tls_ports = {{ }}\n\
                 s2s_direct_tls_ports = {{ }}\n\
                 component_ports = {{ }}\n\
                 http_ports = {{ }}\n\
                 https_ports = {{ }}\n\
                 modules_enabled = {{ \"tls\", \"saslauth\", \"dialback\", \"disco\" }}\n\
                 modules_disabled = {{ \"posix\" }}\n\
                 VirtualHost \"localhost\"\n\
                 \x20 ssl = {{ certificate = \"{chain}\", key = \"{key}\" }}\n",
                c2s = c2s.port(),
                s2s = s2s.port(),
                chain = s.dir.join("chain.crt").display(),
                key = s.dir.join("leaf.key").display(),
            ),
        );
        let conf = conf.display().to_string();
        let process = Background::start(
            "prosody",
            "prosody",
            &["--config", &conf, "-F"],
            &dir.join("log"),
        );
        (process, c2s)
    });
    let s2s = *S2S.get().expect("set when prosody started");
    (c2s, s2s)
}

/// The newest PostgreSQL server on the machine.
fn postgres_bin() -> std::path::PathBuf {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server binary")
}

fn postgres() -> &'static Running {
    server("postgres", |dir| {
        let addr = free_port();
        let s = shared();
        let bin = postgres_bin();
        // initdb, then the server in the foreground: one process group
        // under the watchdog.
        let script = format!(
            "{initdb} -D {d}/data -U postgres --auth=trust -N >/dev/null && \
             exec {postgres} -D {d}/data -k {d} -h 127.0.0.1 -p {port} -c fsync=off \
             -c ssl=on -c ssl_cert_file={chain} -c ssl_key_file={key}",
            initdb = bin.join("initdb").display(),
            postgres = bin.join("postgres").display(),
            d = dir.display(),
            port = addr.port(),
            chain = s.dir.join("chain.crt").display(),
            key = s.dir.join("leaf.key").display(),
        );
        let process = Background::start("postgres", "sh", &["-c", &script], &dir.join("log"));
        (process, addr)
    })
}

fn mariadb() -> &'static Running {
    server("mariadb", |dir| {
        let addr = free_port();
        let s = shared();
        let d = dir.display();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        give_to_server_user(dir);
        let args = [
            "--no-defaults".to_owned(),
            format!("--datadir={d}/data"),
            format!("--port={}", addr.port()),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={d}/mysqld.sock"),
            format!("--pid-file={d}/mysqld.pid"),
            // No system tables needed to reach TLS: no install-db step.
            "--skip-grant-tables".to_owned(),
            "--innodb-buffer-pool-size=8M".to_owned(),
            "--innodb-log-file-size=4M".to_owned(),
            format!("--ssl-cert={}", s.dir.join("chain.crt").display()),
            format!("--ssl-key={}", s.dir.join("leaf.key").display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Background::start("mariadb", "mariadbd", &args, &dir.join("log"));
        (process, addr)
    })
}

#[tokio::test]
async fn openldap_starttls() {
    probe_checked(slapd().addr, "ldap").await;
}

#[tokio::test]
async fn prosody_xmpp_client_and_server() {
    let (c2s, s2s) = prosody();
    probe_checked(c2s.addr, "xmpp").await;
    let s2s = std::net::SocketAddr::from(([127, 0, 0, 1], s2s));
    probe_checked(s2s, "xmpp-server").await;
}

#[tokio::test]
async fn postgresql_ssl_request() {
    probe_checked(postgres().addr, "postgres").await;
}

#[tokio::test]
async fn mariadb_ssl_request() {
    probe_checked(mariadb().addr, "mysql").await;
}
