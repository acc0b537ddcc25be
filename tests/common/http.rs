//! The tests' one HTTP/1.1 client, over a std `TcpStream`: each request on
//! a fresh connection with `Connection: close`, every step bounded by a
//! timeout, a chunked body decoded. The `try_` forms never panic, for
//! polling a server that may not be up yet.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// The text of a request without a body; `headers` come after `Host`.
pub fn request_text(method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> String {
    request_head(method, path, host, headers, 0)
}

/// The head of a request whose body is `length` bytes.
fn request_head(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    length: usize,
) -> String {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// Parses a whole HTTP/1.x response, as read until the server closed.
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked body ends without the last chunk")?;
        let size = String::from_utf8_lossy(&body[..line_end]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let n = usize::from_str_radix(size, 16).map_err(|e| format!("chunk size {size:?}: {e}"))?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = body
            .get(line_end + 2..line_end + 2 + n)
            .ok_or("chunk cut short")?;
        out.extend_from_slice(chunk);
        body = body.get(line_end + 4 + n..).ok_or("chunk cut short")?;
    }
}

/// One request on a fresh connection; `Err` if nothing answers or the
/// answer is not HTTP.
pub fn try_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    try_exchange_body(addr, method, path, headers, b"", Duration::from_secs(10))
}

/// One request with a body on a fresh connection, waiting at most
/// `timeout` for each read; `Err` if nothing answers or the answer is not
/// HTTP.
pub fn try_exchange_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let head = request_head(method, path, &addr.to_string(), headers, body.len());
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("write: {e}"))?;
    parse_response(&read_response(&mut s)?)
}

/// Reads a response until its body is complete (by `Content-Length`, or
/// the last chunk) or the server closes: some servers (chromedriver) keep
/// the connection open despite `Connection: close`.
fn read_response(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !is_complete(&raw) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(raw)
}

fn is_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        return raw.len() >= split + 4 + length;
    }
    header("transfer-encoding").is_some_and(|v| v.contains("chunked"))
        && raw.ends_with(b"0\r\n\r\n")
}

/// An HTTP/1.1 request with extra request headers; returns the status, the
/// response headers (lower-cased names) and the de-chunked body.
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HashMap<String, String>, String) {
    let r = try_exchange(addr, method, path, headers)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    (r.status, r.headers, r.body)
}

/// Minimal HTTP/1.1 request without a body over a fresh connection.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_exchange(addr, method, path, &[]);
    (status, body)
}

/// Minimal HTTP/1.1 GET over a fresh connection.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path)
}

/// A GET that never panics: `None` when nothing answers in HTTP.
pub fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    try_exchange(addr, "GET", path, &[])
        .ok()
        .map(|r| (r.status, r.body))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
