//! STARTTLS: the plain-text exchange that comes before the TLS handshake on
//! mail, directory, chat and database ports.
//!
//! Replies are read one byte at a time, or exactly as long as their length
//! field says: nothing after the server's "go ahead" may be consumed,
//! because the next byte on the wire belongs to TLS. Replies are bounded
//! in size, so a hostile server cannot make us buffer without end; the
//! caller's deadline bounds the time. The line protocols (SMTP, IMAP,
//! POP3, FTP) and PostgreSQL's one byte are here; LDAP and MySQL, which
//! speak binary packets, are in `binary`; XMPP's XML stream in `xmpp`.

mod binary;
mod xmpp;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::session::Wire;

use crate::config::Starttls;

/// STARTTLS did not end with the server ready for TLS.
#[derive(Debug, thiserror::Error)]
#[error("starttls ({protocol}): {detail}")]
pub(crate) struct StarttlsError {
    protocol: &'static str,
    detail: String,
}

/// Longest reply line we accept; RFC 5321 allows 512 bytes.
const MAX_LINE: usize = 2048;
/// Most lines in one (multi-line) reply.
const MAX_LINES: usize = 64;

/// Runs the protocol's STARTTLS exchange on a fresh connection;
/// `domain` is the name XMPP streams are addressed to (the server name).
pub(in crate::sources::endpoint) async fn upgrade(
    stream: &mut Wire,
    protocol: Starttls,
    domain: &str,
) -> Result<(), StarttlsError> {
    let name = protocol.as_str();
    let fail = |detail: String| StarttlsError {
        protocol: name,
        detail,
    };
    let mut conn = Conn { stream };
    match protocol {
        Starttls::Smtp => {
            conn.expect_code("220", "greeting").await.map_err(fail)?;
            conn.send(b"EHLO certinel\r\n").await.map_err(fail)?;
            conn.expect_code("250", "EHLO").await.map_err(fail)?;
            conn.send(b"STARTTLS\r\n").await.map_err(fail)?;
            conn.expect_code("220", "STARTTLS").await.map_err(fail)?;
        }
        Starttls::Ftp => {
            conn.expect_code("220", "greeting").await.map_err(fail)?;
            conn.send(b"AUTH TLS\r\n").await.map_err(fail)?;
            conn.expect_code("234", "AUTH TLS").await.map_err(fail)?;
        }
        Starttls::Imap => {
            conn.expect_prefix("* OK", "greeting").await.map_err(fail)?;
            conn.send(b"a1 STARTTLS\r\n").await.map_err(fail)?;
            let mut answered = false;
            for _ in 0..MAX_LINES {
                let line = conn.line().await.map_err(fail)?;
                if line.starts_with("a1 OK") {
                    answered = true;
                    break;
                }
                if line.starts_with("a1 ") {
                    return Err(fail(format!("STARTTLS refused: {line:?}")));
                }
            }
            if !answered {
                return Err(fail(format!("no tagged answer within {MAX_LINES} lines")));
            }
        }
        Starttls::Pop3 => {
            conn.expect_prefix("+OK", "greeting").await.map_err(fail)?;
            conn.send(b"STLS\r\n").await.map_err(fail)?;
            conn.expect_prefix("+OK", "STLS").await.map_err(fail)?;
        }
        Starttls::Postgres => {
            // SSLRequest: length 8, code 80877103.
            conn.send(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                .await
                .map_err(fail)?;
            match conn.byte().await.map_err(fail)? {
                b'S' => {}
                b'N' => return Err(fail("server does not accept SSL connections".to_owned())),
                other => return Err(fail(format!("unexpected answer byte 0x{other:02x}"))),
            }
        }
        Starttls::Ldap => binary::ldap(&mut conn).await.map_err(fail)?,
        Starttls::Mysql => binary::mysql(&mut conn).await.map_err(fail)?,
        Starttls::Xmpp => xmpp::upgrade(&mut conn, domain, false)
            .await
            .map_err(fail)?,
        Starttls::XmppServer => xmpp::upgrade(&mut conn, domain, true).await.map_err(fail)?,
    }
    Ok(())
}

struct Conn<'a> {
    stream: &'a mut Wire,
}

impl Conn<'_> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Exactly `n` bytes (the caller bounds `n`).
    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; n];
        match self.stream.read_exact(&mut buf).await {
            Ok(_) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err("connection closed by server".to_owned())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn byte(&mut self) -> Result<u8, String> {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b).await {
            Ok(0) => Err("connection closed by server".to_owned()),
            Ok(_) => Ok(b[0]),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        let mut buf = Vec::new();
        loop {
            let b = self.byte().await?;
            if b == b'\n' {
                break;
            }
            if buf.len() >= MAX_LINE {
                return Err(format!("reply line longer than {MAX_LINE} bytes"));
            }
            buf.push(b);
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads a (possibly multi-line, `250-…`/`250 …`) reply with `code`.
    async fn expect_code(&mut self, code: &str, step: &str) -> Result<(), String> {
        for _ in 0..MAX_LINES {
            let line = self.line().await?;
            if !line.starts_with(code) {
                return Err(format!("{step}: expected {code}, got {line:?}"));
            }
            match line.as_bytes().get(3) {
                Some(b'-') => continue,
                _ => return Ok(()),
            }
        }
        Err(format!("{step}: reply longer than {MAX_LINES} lines"))
    }

    async fn expect_prefix(&mut self, prefix: &str, step: &str) -> Result<(), String> {
        let line = self.line().await?;
        if line.starts_with(prefix) {
            Ok(())
        } else {
            Err(format!("{step}: expected {prefix:?}, got {line:?}"))
        }
    }
}
