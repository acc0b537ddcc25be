//! Text into HTML and into URLs. Everything on the status page that came
//! from a certificate, a file name, a configuration or a query string goes
//! through one of these: a subject CN may well be `<script>`.

use std::fmt::{self, Display, Write as _};

/// Displays text as HTML text or attribute value (inside double quotes).
pub(super) struct Html<'a>(pub(super) &'a str);

impl Display for Html<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            let (special, tail) = rest[i..].split_at(1);
            f.write_str(match special {
                "&" => "&amp;",
                "<" => "&lt;",
                ">" => "&gt;",
                "\"" => "&quot;",
                _ => "&#39;",
            })?;
            rest = tail;
        }
        f.write_str(rest)
    }
}

/// Displays text as a query parameter value: everything but RFC 3986's
/// unreserved characters percent-encoded (so the result is also safe in
/// an HTML attribute).
pub(super) struct Query<'a>(pub(super) &'a str);

impl Display for Query<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        let s = Html("<script>alert('x')</script> & \"q\"").to_string();
        assert_eq!(
            s,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(Html("plain é").to_string(), "plain é");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(Query("a b&c=d/é").to_string(), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(Query("x-y_z.~1").to_string(), "x-y_z.~1");
    }
}
