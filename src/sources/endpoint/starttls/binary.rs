//! The binary STARTTLS exchanges: LDAP's StartTLS extended operation
//! (RFC 4511 section 4.14) and the MySQL/MariaDB SSL request packet.
//!
//! Both read a length field first and then exactly that many bytes, so
//! nothing of the TLS handshake that follows is consumed; both lengths are
//! capped far below what the protocols allow, since the answers we wait
//! for are a few dozen bytes.

use super::Conn;

/// The most we read of one LDAP message or MySQL packet.
const MAX_MESSAGE: usize = 16 * 1024;

/// `ExtendedRequest` for StartTLS, message 1: `LDAPMessage { messageID 1,
/// [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } }`.
const LDAP_STARTTLS: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

/// `extendedResp` is `[APPLICATION 24]`, constructed.
const LDAP_EXTENDED_RESPONSE: u8 = 0x78;

pub(super) async fn ldap(conn: &mut Conn<'_>) -> Result<(), String> {
    conn.send(LDAP_STARTTLS).await?;
    let tag = conn.byte().await?;
    if tag != 0x30 {
        return Err(format!("answer is not an LDAP message (tag 0x{tag:02x})"));
    }
    let len = ber_length(conn).await?;
    let message = conn.exact(len).await?;
    let mut fields = Tlv::new(&message);
    let (_, id) = fields.next().ok_or("LDAP message without a message ID")?;
    let (op, body) = fields.next().ok_or("LDAP message without an operation")?;
    if op != LDAP_EXTENDED_RESPONSE {
        return Err(format!("unexpected LDAP operation 0x{op:02x}"));
    }
    let mut body = Tlv::new(body);
    let code = match body.next() {
        Some((0x0a, code)) => code.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)),
        _ => return Err("extended response without a result code".to_owned()),
    };
    let _matched_dn = body.next();
    let diagnostic = match body.next() {
        Some((0x04, text)) => crate::text::printable(&String::from_utf8_lossy(text)).into_owned(),
        _ => String::new(),
    };
    // Message ID 0 is an unsolicited notification (RFC 4511 4.4): the
    // server is closing (noticeOfDisconnection), not answering us.
    if id != [1] {
        return Err(format!(
            "unsolicited LDAP notification (result {code}): {diagnostic}"
        ));
    }
    match code {
        0 => Ok(()),
        _ => Err(format!(
            "StartTLS refused: result {code} ({}){}",
            ldap_result(code),
            if diagnostic.is_empty() {
                String::new()
            } else {
                format!(": {diagnostic}")
            }
        )),
    }
}

/// The LDAP result codes a StartTLS request meets in practice.
fn ldap_result(code: u64) -> &'static str {
    match code {
        1 => "operationsError",
        2 => "protocolError: StartTLS not supported",
        13 => "confidentialityRequired",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "refused",
    }
}

/// A BER definite length, read byte by byte, capped at [`MAX_MESSAGE`].
async fn ber_length(conn: &mut Conn<'_>) -> Result<usize, String> {
    let first = conn.byte().await?;
    let len = match first {
        0..=0x7f => usize::from(first),
        0x81..=0x84 => {
            let mut len = 0usize;
            for _ in 0..(first & 0x7f) {
                len = (len << 8) | usize::from(conn.byte().await?);
            }
            len
        }
        _ => return Err(format!("unsupported BER length byte 0x{first:02x}")),
    };
    if len > MAX_MESSAGE {
        return Err(format!(
            "LDAP message of {len} bytes, more than {MAX_MESSAGE}"
        ));
    }
    Ok(len)
}

/// The (tag, contents) elements of a BER buffer, stopping at the first
/// that does not fit.
struct Tlv<'a> {
    rest: &'a [u8],
}

impl<'a> Tlv<'a> {
    fn new(bytes: &'a [u8]) -> Tlv<'a> {
        Tlv { rest: bytes }
    }
}

impl<'a> Iterator for Tlv<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let (bytes, rest) = (rest.get(..n)?, rest.get(n..)?);
                (
                    bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)),
                    rest,
                )
            }
            _ => return None,
        };
        let contents = rest.get(..len)?;
        self.rest = rest.get(len..)?;
        Some((tag, contents))
    }
}

/// `CLIENT_SSL` in the capability flags of a MySQL handshake.
const CLIENT_SSL: u32 = 0x0800;
/// `CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION`: the least
/// an SSL request must announce.
const SSL_REQUEST_FLAGS: u32 = 0x0200 | CLIENT_SSL | 0x8000;

/// Reads the server's initial handshake and answers with the SSL request
/// packet, after which the server expects a ClientHello.
pub(super) async fn mysql(conn: &mut Conn<'_>) -> Result<(), String> {
    let header = conn.exact(4).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let sequence = header[3];
    if len == 0 || len > MAX_MESSAGE {
        return Err(format!("handshake packet of {len} bytes"));
    }
    let payload = conn.exact(len).await?;
    let flags = mysql_handshake(&payload)?;
    if flags & CLIENT_SSL == 0 {
        return Err("server does not offer SSL (no CLIENT_SSL capability)".to_owned());
    }
    let mut request = vec![32, 0, 0, sequence.wrapping_add(1)];
    request.extend_from_slice(&SSL_REQUEST_FLAGS.to_le_bytes());
    request.extend_from_slice(&(16u32 << 20).to_le_bytes());
    // utf8mb4_general_ci, then 23 reserved bytes.
    request.push(45);
    request.extend_from_slice(&[0; 23]);
    conn.send(&request).await
}

/// The capability flags of an initial handshake packet (protocol 10), or
/// the server's error.
fn mysql_handshake(payload: &[u8]) -> Result<u32, String> {
    match payload.first() {
        Some(10) => {}
        Some(0xff) => {
            // ERR packet: 0xff, code (2 bytes), the message.
            let code = payload
                .get(1..3)
                .map_or(0, |c| u16::from_le_bytes([c[0], c[1]]));
            let message = payload.get(3..).unwrap_or_default();
            let message = String::from_utf8_lossy(message);
            return Err(format!(
                "server error {code}: {}",
                crate::text::printable(&message)
            ));
        }
        Some(v) => return Err(format!("handshake protocol {v}, expected 10")),
        None => return Err("empty handshake packet".to_owned()),
    }
    // Server version (NUL-terminated), connection id (4), auth data (8),
    // filler (1), then the lower two bytes of the capability flags.
    let version_end = payload
        .iter()
        .skip(1)
        .position(|b| *b == 0)
        .ok_or("handshake without a server version")?;
    let at = 1 + version_end + 1 + 4 + 8 + 1;
    let lower = payload
        .get(at..at + 2)
        .ok_or("handshake without capability flags")?;
    let upper = payload.get(at + 5..at + 7).unwrap_or(&[0, 0]);
    Ok(u32::from(u16::from_le_bytes([lower[0], lower[1]]))
        | u32::from(u16::from_le_bytes([upper[0], upper[1]])) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starttls_request_is_well_formed() {
        let mut outer = Tlv::new(LDAP_STARTTLS);
        let (tag, message) = outer.next().unwrap();
        assert_eq!((tag, outer.next()), (0x30, None));
        let mut fields = Tlv::new(message);
        assert_eq!(fields.next(), Some((0x02, &[1u8][..])));
        let (op, body) = fields.next().unwrap();
        assert_eq!(op, 0x77);
        assert_eq!(
            Tlv::new(body).next(),
            Some((0x80, &b"1.3.6.1.4.1.1466.20037"[..]))
        );
    }

    #[test]
    fn truncated_elements_end_the_walk() {
        assert_eq!(Tlv::new(&[0x02, 0x05, 1]).next(), None);
        assert_eq!(Tlv::new(&[0x02, 0x84, 0xff]).next(), None);
        assert_eq!(Tlv::new(&[0x02]).next(), None);
    }

    #[test]
    fn handshake_flags_and_errors() {
        let mut hello = vec![10];
        hello.extend_from_slice(b"10.11.6-MariaDB\0");
        hello.extend_from_slice(&[1, 0, 0, 0]);
        hello.extend_from_slice(&[b'x'; 8]);
        hello.push(0);
        hello.extend_from_slice(&0xf7feu16.to_le_bytes());
        hello.extend_from_slice(&[45, 2, 0]);
        hello.extend_from_slice(&0x81bfu16.to_le_bytes());
        assert_eq!(mysql_handshake(&hello), Ok(0x81bf_f7fe));
        assert_eq!(mysql_handshake(&hello[..20]).map_err(|_| ()), Err(()));
        let err = b"\xff\x6a\x04Host '10.0.0.1' is not allowed to connect";
        let e = mysql_handshake(err).unwrap_err();
        assert!(e.contains("1130") && e.contains("not allowed"), "{e}");
        assert!(mysql_handshake(&[9]).is_err());
        assert!(mysql_handshake(&[]).is_err());
    }
}
