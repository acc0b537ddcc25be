//! `http_server_config.headers`: the response headers exporter-toolkit
//! lets an operator add (HSTS, CSP and the like), checked against its
//! rules and added to every response of the main listener.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::http::header::{HeaderName, HeaderValue};
use axum::response::Response;

use super::web_config::WebConfigError;

/// Only the headers exporter-toolkit allows, with its allowed values.
pub(super) fn check(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    const ALLOWED: [(&str, &[&str]); 5] = [
        ("Content-Security-Policy", &[]),
        ("Strict-Transport-Security", &[]),
        ("X-Content-Type-Options", &["nosniff"]),
        ("X-Frame-Options", &["deny", "sameorigin"]),
        ("X-XSS-Protection", &[]),
    ];
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, values)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
            return Err(WebConfigError::invalid(
                key,
                format!("this header cannot be set; allowed: {}", names.join(", ")),
            ));
        };
        if !values.is_empty() && !values.contains(&value.as_str()) {
            return Err(WebConfigError::invalid(
                key,
                format!("{value:?} is not one of {values:?}"),
            ));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|e| WebConfigError::invalid(&key, e.to_string()))?;
        let header_name = HeaderName::from_str(&name)
            .map_err(|e| WebConfigError::invalid(&key, e.to_string()))?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

/// Adds `headers` to `response`, replacing any of the same name.
pub(super) fn apply(response: &mut Response, headers: &[(HeaderName, HeaderValue)]) {
    for (name, value) in headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_yaml(yaml: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        check(serde_norway::from_str(yaml).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn headers_follow_exporter_toolkit_rules() {
        let ok = check_yaml("X-Frame-Options: deny\nStrict-Transport-Security: max-age=31536000\n");
        assert_eq!(ok.unwrap().len(), 2);
        let e = check_yaml("X-Frame-Options: allow\n").unwrap_err();
        assert!(
            e.starts_with("http_server_config.headers.X-Frame-Options:"),
            "{e}"
        );
        let e = check_yaml("Server: certinel\n").unwrap_err();
        assert!(e.starts_with("http_server_config.headers.Server:"), "{e}");
    }
}
