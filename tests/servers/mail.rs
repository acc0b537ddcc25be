//! Mail and file transfer: Exim (SMTP), Dovecot (IMAP, POP3), vsftpd (FTP).

use std::path::Path;

use super::{config, probe_checked, server, shared, Running};
use crate::common::*;

fn exim() -> &'static Running {
    server("exim", |dir| {
        let addr = free_port();
        let s = shared();
        let d = dir.display();
        // The exim user may run the daemon; make it the servers' user.
        let (user, group, _, _) = server_user_names();
        std::fs::create_dir_all(dir.join("spool")).unwrap();
        give_to_server_user(dir);
        let conf = config(
            dir,
            "exim.conf",
            &format!(
                "primary_hostname = localhost\n\
                 daemon_smtp_ports = {port}\n\
                 local_interfaces = 127.0.0.1\n\
                 keep_environment =\n\
                 tls_advertise_hosts = *\n\
                 tls_certificate = {chain}\n\
                 tls_privatekey = {key}\n\
                 spool_directory = {d}/spool\n\
                 exim_user = {user}\n\
                 exim_group = {group}\n\
                 log_file_path = {d}/exim-%slog\n\
                 pid_file_path = {d}/exim.pid\n",
                port = addr.port(),
                chain = s.dir.join("chain.crt").display(),
                key = s.dir.join("leaf.key").display(),
            ),
        );
        let conf = conf.display().to_string();
        let port = addr.port().to_string();
        // -bdf: the daemon, in the foreground. With -C the setuid exim
        // drops to the calling user, as the tests want.
        let process = Background::start(
            "exim",
            "exim4",
            &["-C", &conf, "-bdf", "-oX", &port],
            &dir.join("log"),
        );
        (process, addr)
    })
}

/// Dovecot serves both: one process, one configuration.
fn dovecot() -> (&'static Running, u16) {
    static POP3: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let imap = server("dovecot", |dir| {
        let (imap, pop3) = (free_port(), free_port());
        let _ = POP3.set(pop3.port());
        let process = start_dovecot(dir, imap.port(), pop3.port());
        (process, imap)
    });
    let pop3 = *POP3.get().expect("set when dovecot started");
    (imap, pop3)
}

fn start_dovecot(dir: &Path, imap: u16, pop3: u16) -> Background {
    let s = shared();
    let (user, group, uid, gid) = server_user_names();
    let d = dir.display();
    let conf = config(
        dir,
        "dovecot.conf",
        &format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = /dev/stderr\n\
             protocols = imap pop3\n\
             listen = 127.0.0.1\n\
             default_internal_user = {user}\n\
             default_internal_group = {group}\n\
             default_login_user = {user}\n\
             ssl = yes\n\
             ssl_cert = <{chain}\n\
             ssl_key = <{key}\n\
             passdb {{\n  driver = static\n  args = password=unused\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/home\n}}\n\
             service anvil {{\n  chroot =\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service pop3-login {{\n  chroot =\n  inet_listener pop3 {{\n    address = 127.0.0.1\n    port = {pop3}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
            chain = s.dir.join("chain.crt").display(),
            key = s.dir.join("leaf.key").display(),
        ),
    );
    let conf = conf.display().to_string();
    Background::start("dovecot", "dovecot", &["-F", "-c", &conf], &dir.join("log"))
}

fn vsftpd() -> &'static Running {
    server("vsftpd", |dir| {
        let addr = free_port();
        let s = shared();
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let conf = config(
            dir,
            "vsftpd.conf",
            &format!(
                "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
                 run_as_launching_user=YES\nbackground=NO\n\
                 anonymous_enable=YES\nlocal_enable=NO\nwrite_enable=NO\n\
                 ssl_enable=YES\nallow_anon_ssl=YES\n\
                 rsa_cert_file={chain}\nrsa_private_key_file={key}\n\
                 secure_chroot_dir={empty}\nseccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
                 vsftpd_log_file={d}/vsftpd.log\n",
                port = addr.port(),
                chain = s.dir.join("chain.crt").display(),
                key = s.dir.join("leaf.key").display(),
                empty = empty.display(),
                d = dir.display(),
            ),
        );
        give_to_server_user(dir);
        let conf = conf.display().to_string();
        let process = Background::start("vsftpd", "vsftpd", &[&conf], &dir.join("log"));
        (process, addr)
    })
}

#[tokio::test]
async fn exim_smtp() {
    probe_checked(exim().addr, "smtp").await;
}

#[tokio::test]
async fn dovecot_imap_and_pop3() {
    let (imap, pop3) = dovecot();
    probe_checked(imap.addr, "imap").await;
    let pop3 = std::net::SocketAddr::from(([127, 0, 0, 1], pop3));
    probe_checked(pop3, "pop3").await;
}

#[tokio::test]
async fn vsftpd_ftp() {
    probe_checked(vsftpd().addr, "ftp").await;
}
