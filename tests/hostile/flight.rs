//! TLS records of hand-crafted server flights, written out byte by byte:
//! record headers, handshake headers, alerts, a TLS 1.2 ServerHello, a
//! Certificate message, a ServerKeyExchange with a made-up signature.

/// A TLS record: content type, record version 3.`minor`, payload.
pub fn record(content_type: u8, minor: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![content_type, 0x03, minor];
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A handshake message: type, 24-bit length, body.
pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() as u32).to_be_bytes();
    let mut out = vec![msg_type, len[1], len[2], len[3]];
    out.extend_from_slice(body);
    out
}

/// A fatal alert record.
pub fn alert(minor: u8, description: u8) -> Vec<u8> {
    record(0x15, minor, &[0x02, description])
}

/// A ServerHello record choosing protocol 3.`minor` and
/// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, no session id, no extensions.
pub fn server_hello(minor: u8) -> Vec<u8> {
    let mut body = vec![0x03, minor];
    // Server random: anything but the downgrade sentinels.
    body.extend((0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(1)));
    body.push(0x00); // session id length
    body.extend_from_slice(&[0xc0, 0x2b]); // cipher suite
    body.push(0x00); // compression: null
    record(0x16, minor, &handshake(0x02, &body))
}

/// A Certificate message (TLS 1.2) holding `certs`, in one record per
/// 16 KiB.
pub fn certificate_records(certs: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for c in certs {
        let len = (c.len() as u32).to_be_bytes();
        list.extend_from_slice(&len[1..]);
        list.extend_from_slice(c);
    }
    let len = (list.len() as u32).to_be_bytes();
    let mut body = len[1..].to_vec();
    body.extend_from_slice(&list);
    let msg = handshake(0x0b, &body);
    msg.chunks(16 * 1024)
        .flat_map(|chunk| record(0x16, 0x03, chunk))
        .collect()
}

/// ServerKeyExchange (x25519, a made-up point) signed with a made-up
/// ecdsa_secp256r1_sha256 signature, then ServerHelloDone.
pub fn key_exchange_and_done() -> Vec<u8> {
    let mut ske = vec![0x03, 0x00, 0x1d, 0x20];
    ske.extend([0x09u8; 32]);
    ske.extend_from_slice(&[0x04, 0x03, 0x00, 0x08]);
    ske.extend([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
    let mut out = record(0x16, 0x03, &handshake(0x0c, &ske));
    out.extend(record(0x16, 0x03, &handshake(0x0e, &[])));
    out
}
