//! `GET /probe?target=host:port&module=NAME&server_name=NAME`: one target
//! probed on request, answered with its exposition (Prometheus' multi-target
//! exporter pattern, as blackbox_exporter and ssl_exporter serve it).
//!
//! The request is parsed strictly — only those three parameters, each at
//! most once, and Prometheus' `X-Prometheus-Scrape-Timeout-Seconds` — and
//! handed to the scheduler's [`OnDemand`], which decides what may be
//! reached. Statuses: 200 with `probe_success` for every probe made,
//! whatever it found; 400 for a request that is not one (with the reason);
//! 403 for a target the allowlist refuses; 404 while `/probe` is off; 503
//! with `Retry-After` when `probe.max_concurrent` probes are in flight.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::routes::{requested_format, AppState};
use crate::metrics::render_probe;
use crate::scheduler::{NotProbed, ProbeRequest};

/// The header Prometheus sends with every scrape: its scrape timeout.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";
/// The longest query string read; a target is at most a few hundred bytes.
const MAX_QUERY: usize = 2048;

/// The handler.
pub(super) async fn probe(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result = match parse(uri.query().unwrap_or_default(), &headers) {
        Ok(request) => {
            let outcome = match state.on_demand() {
                Some(prober) => prober.probe(&request).await,
                None => Err(NotProbed::Disabled),
            };
            tracing::debug!(
                target = %request.target,
                module = request.module.as_deref().unwrap_or_default(),
                outcome = match &outcome {
                    Ok(r) if r.success() => "success",
                    Ok(_) => "failure",
                    Err(_) => "refused",
                },
                "probe request"
            );
            outcome
        }
        Err(reason) => Err(NotProbed::BadRequest(reason)),
    };
    state.exposition().probe_counters().count(&result);
    let format = requested_format(&headers);
    match result {
        Ok(report) => match render_probe(&report, &state.store().load().metrics, format) {
            Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "rendering /probe failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding metrics failed\n",
                )
                    .into_response()
            }
        },
        Err(e) => {
            let status = match &e {
                NotProbed::Disabled => StatusCode::NOT_FOUND,
                NotProbed::BadRequest(_) | NotProbed::UnknownModule(_) => StatusCode::BAD_REQUEST,
                NotProbed::NotAllowed(_) => StatusCode::FORBIDDEN,
                NotProbed::Saturated(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            let mut response = (status, format!("{e}\n")).into_response();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // A probe takes at most its timeout; a second is a fair
                // first guess for a client that honours the header.
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            response
        }
    }
}

/// The request in `query` and `headers`, or why it is none.
fn parse(query: &str, headers: &HeaderMap) -> Result<ProbeRequest, String> {
    if query.len() > MAX_QUERY {
        return Err(format!("query longer than {MAX_QUERY} bytes"));
    }
    let mut request = ProbeRequest::default();
    let (mut target, mut module, mut server_name) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode(key)?, decode(value)?);
        let slot = match key.as_str() {
            "target" => &mut target,
            "module" => &mut module,
            "server_name" => &mut server_name,
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (expected target, module, server_name)"
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("parameter {key:?} given more than once"));
        }
    }
    request.target = target.unwrap_or_default();
    request.module = module;
    request.server_name = server_name;
    if let Some(value) = headers.get(SCRAPE_TIMEOUT_HEADER) {
        let seconds = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("invalid {SCRAPE_TIMEOUT_HEADER} header: {value:?}"))?;
        request.scrape_timeout = Some(seconds);
    }
    Ok(request)
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("parameter {raw:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Result<ProbeRequest, String> {
        parse(query, &HeaderMap::new())
    }

    #[test]
    fn the_three_parameters_are_read_once_each() {
        let r = parsed("target=db.example.com%3A5432&module=mail&server_name=a.example").unwrap();
        assert_eq!(r.target, "db.example.com:5432");
        assert_eq!(r.module.as_deref(), Some("mail"));
        assert_eq!(r.server_name.as_deref(), Some("a.example"));
        assert!(parsed("target=a:1&target=b:1")
            .unwrap_err()
            .contains("more than once"));
        assert!(parsed("target=a:1&ca_file=/etc/shadow")
            .unwrap_err()
            .contains("unknown parameter \"ca_file\""));
        assert!(parsed("target=%ff:1").unwrap_err().contains("not UTF-8"));
        assert_eq!(parsed("").unwrap().target, "");
    }

    #[test]
    fn the_scrape_timeout_header_is_read_strictly() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(SCRAPE_TIMEOUT_HEADER, v.parse().unwrap());
            parse("target=a:1", &h)
        };
        assert_eq!(
            with("2.5").unwrap().scrape_timeout,
            Some(Duration::from_millis(2500))
        );
        for bad in ["-1", "NaN", "inf", "soon", "1e300"] {
            assert!(with(bad).unwrap_err().contains("invalid"), "{bad}");
        }
    }
}
