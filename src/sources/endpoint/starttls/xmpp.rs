//! XMPP STARTTLS (RFC 6120 section 5): open a stream to the domain, read
//! the stream features, ask for `<starttls/>`, and wait for `<proceed/>`.
//!
//! Not an XML parser: the server's stream is read byte by byte up to the
//! end of the features and then of the one element that answers, bounded
//! in size, and searched for the few names the exchange turns on. That is
//! all the client side of the exchange needs, and it never consumes a
//! byte past the `<proceed/>`.

use super::Conn;

/// The most we read before the features end, or before the answer does.
const MAX_STREAM: usize = 64 * 1024;

const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

/// Opens a client (`jabber:client`) or server (`jabber:server`) stream to
/// `domain` and negotiates TLS.
pub(super) async fn upgrade(conn: &mut Conn<'_>, domain: &str, server: bool) -> Result<(), String> {
    let ns = if server {
        "jabber:server"
    } else {
        "jabber:client"
    };
    let open = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{ns}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
        escape(domain)
    );
    conn.send(open.as_bytes()).await?;
    let features = read_until(
        conn,
        &[
            "</stream:features>",
            "<stream:features/>",
            "</stream:error>",
        ],
    )
    .await?;
    if stream_error(&features) {
        return Err(format!("stream error: {}", error_name(&features)));
    }
    if !features.contains(TLS_NS) {
        return Err("the server does not offer STARTTLS in its stream features".to_owned());
    }
    conn.send(format!("<starttls xmlns='{TLS_NS}'/>").as_bytes())
        .await?;
    // The answer's opening tag, then (unless it closes itself) up to its
    // end tag.
    let mut answer = read_until(conn, &[">"]).await?;
    let name = first_element(&answer);
    if name.is_empty() {
        return Err(format!("unexpected answer {answer:?} to <starttls/>"));
    }
    if !answer.ends_with("/>") {
        let end = format!("</{name}>");
        answer += &read_until(conn, &[end.as_str(), "</stream:error>"]).await?;
    }
    match name.rsplit(':').next() {
        Some("proceed") => Ok(()),
        Some("failure") => Err("the server answered <failure/> to <starttls/>".to_owned()),
        _ if stream_error(&answer) => Err(format!("stream error: {}", error_name(&answer))),
        _ => Err(format!("unexpected answer <{name}> to <starttls/>")),
    }
}

/// Reads byte by byte until what was read ends with one of `ends`, at
/// most [`MAX_STREAM`] bytes. Only the tail is compared, so a stream of
/// `>` costs no more than any other.
async fn read_until(conn: &mut Conn<'_>, ends: &[&str]) -> Result<String, String> {
    let mut buf = Vec::new();
    loop {
        if buf.len() >= MAX_STREAM {
            return Err(format!("no answer within {MAX_STREAM} bytes"));
        }
        buf.push(conn.byte().await?);
        if buf.last() == Some(&b'>') && ends.iter().any(|e| buf.ends_with(e.as_bytes())) {
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
    }
}

fn stream_error(s: &str) -> bool {
    s.contains("<stream:error") && (s.contains("</stream:error>") || s.contains("</stream:stream>"))
}

/// The name of the condition inside a stream error (e.g. `host-unknown`).
fn error_name(s: &str) -> String {
    let inner = s.split("<stream:error").nth(1).unwrap_or_default();
    let name = first_element(inner.split_once('>').map_or("", |(_, rest)| rest));
    crate::text::printable(&name).into_owned()
}

/// The name of the first element that opens in `s` (skipping whitespace
/// and any `<?…?>` declaration).
fn first_element(s: &str) -> String {
    s.split('<')
        .skip(1)
        .find(|part| !part.starts_with('?') && !part.starts_with('/'))
        .map(|part| {
            part.chars()
                .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
                .collect()
        })
        .unwrap_or_default()
}

/// The domain goes into an attribute in single quotes.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_named_past_declarations_and_prefixes() {
        assert_eq!(first_element("<?xml version='1.0'?><proceed/>"), "proceed");
        assert_eq!(first_element("<tls:proceed xmlns:tls='x'/>"), "tls:proceed");
    }

    #[test]
    fn stream_errors_name_their_condition() {
        let e = "<stream:stream><stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
        assert!(stream_error(e));
        assert_eq!(error_name(e), "host-unknown");
    }

    #[test]
    fn the_domain_cannot_break_out_of_its_attribute() {
        assert_eq!(escape("a'b<c&"), "a&apos;b&lt;c&amp;");
    }
}
