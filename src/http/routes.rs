//! The routes: `/metrics`, `/status` and `/api/v1/...`, `/-/healthy`,
//! `/-/ready`, `POST /-/reload`, `/probe` (in `probe`) and the landing
//! page, over the state the handlers share.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, oneshot};

use super::{api, landing, probe, status};
use crate::metrics::{Encoding, Exposition, Format};
use crate::reload::ReloadRequest;
use crate::scheduler::OnDemand;
use crate::snapshot::Store;

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    store: Arc<Store>,
    /// Where `POST /-/reload` sends its request; `None` (without
    /// `--web.enable-lifecycle`) refuses it.
    reload: Option<mpsc::Sender<ReloadRequest>>,
    exposition: Arc<Exposition>,
    /// What `/probe` runs its probes with; `None`: `/probe` answers 404.
    on_demand: Option<OnDemand>,
}

impl AppState {
    /// State for [`router`].
    pub(crate) fn new(store: Arc<Store>) -> AppState {
        AppState {
            exposition: Arc::new(Exposition::new(store.clone())),
            store,
            reload: None,
            on_demand: None,
        }
    }

    /// Serves `/probe` with `prober` (it decides, from the configuration,
    /// whether `/probe` is on).
    pub(crate) fn with_probe(mut self, prober: OnDemand) -> AppState {
        self.on_demand = Some(prober);
        self
    }

    pub(super) fn on_demand(&self) -> Option<&OnDemand> {
        self.on_demand.as_ref()
    }

    pub(super) fn exposition(&self) -> &Exposition {
        &self.exposition
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Enables `POST /-/reload` (`--web.enable-lifecycle`).
    pub(crate) fn with_reload(mut self, reload: mpsc::Sender<ReloadRequest>) -> AppState {
        self.reload = Some(reload);
        self
    }
}

/// All routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing::page))
        .route("/metrics", get(metrics))
        .route("/status", get(status::page))
        .route("/api/v1/certificates", get(api::certificates))
        .route("/api/v1/sources", get(api::sources))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/probe", get(probe::probe))
        .with_state(state)
}

/// Only `/-/healthy` and `/-/ready`, for `--web.health-address`: a plain
/// HTTP port for Kubernetes probes when the main port demands client
/// certificates (an `httpGet` probe cannot present one).
pub(crate) fn health_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .with_state(state)
}

/// Serves OpenMetrics to clients that ask for it (Prometheus does), and
/// Prometheus text format 0.0.4 to everyone else (curl, older scrapers),
/// gzipped when the client accepts it (Prometheus does). The body comes
/// from the shared render cache ([`Exposition`]).
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = requested_format(&headers);
    let encoding = if accepts_gzip(&headers) {
        Encoding::Gzip
    } else {
        Encoding::Identity
    };
    let body = match state.exposition.current().await {
        Ok(rendered) => rendered
            .body(format, encoding)
            .await
            .map(|chunks| (rendered, chunks)),
        Err(e) => Err(e),
    };
    match body {
        Ok((rendered, chunks)) => {
            // The parts go out one after the other, as they are cached:
            // joining them would copy (and hold twice) a body of megabytes.
            let length: usize = chunks.iter().map(|c| c.len()).sum();
            let stream = futures_util::stream::iter(chunks).map(move |chunk| {
                // The body holds its render until it is sent (or the
                // connection dropped), so that the render cache can find a
                // body still in flight again rather than render a copy.
                let _sending = &rendered;
                Ok::<_, std::convert::Infallible>(chunk)
            });
            let mut response = (
                [
                    (header::CONTENT_TYPE, format.content_type().to_owned()),
                    (header::CONTENT_LENGTH, length.to_string()),
                    // The body depends on the header, whichever was chosen.
                    (header::VARY, "Accept-Encoding".to_owned()),
                ],
                Body::from_stream(stream),
            )
                .into_response();
            if encoding == Encoding::Gzip {
                response.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

/// OpenMetrics when the client asks for it (Prometheus does), the
/// Prometheus text format 0.0.4 otherwise.
pub(super) fn requested_format(headers: &HeaderMap) -> Format {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 12.5.3): `gzip` (or
/// `x-gzip`) with a non-zero weight, or `*` with one when gzip is not
/// named. No header, or `gzip;q=0`, means the body as it is.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = None;
    let codings = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in codings {
        let mut params = item.split(';');
        let coding = params.next().unwrap_or_default().trim();
        // A weight that does not parse is ignored, as if absent.
        let weight = params
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            named = Some(named.unwrap_or(false) || weight > 0.0);
        } else if coding == "*" {
            any = Some(weight > 0.0);
        }
    }
    named.or(any).unwrap_or(false)
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let pending = state.store.pending_sources();
    if pending.is_empty() {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Not ready: waiting for the first pass of {}\n",
                pending.join(", ")
            ),
        )
            .into_response()
    }
}

/// Reloads the configuration file; 200 when applied, 500 (with the
/// reason) when the new file is invalid and the old one keeps running.
/// Unauthenticated on a plain port, so off unless asked for, as in
/// Prometheus: 403 without `--web.enable-lifecycle`.
async fn reload(State(state): State<Arc<AppState>>) -> Response {
    let Some(sender) = &state.reload else {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled. Start certinel with --web.enable-lifecycle \
             to reload with POST /-/reload; SIGHUP always reloads.\n",
        )
            .into_response();
    };
    let (reply, answer) = oneshot::channel();
    if sender.send(ReloadRequest { reply }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match answer.await {
        Ok(Ok(s)) => (
            StatusCode::OK,
            format!(
                "configuration reloaded: {} kept, {} started, {} stopped\n",
                s.kept, s.started, s.stopped
            ),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn app() -> Router {
        app_with_store().0
    }

    fn app_with_store() -> (Router, Arc<Store>) {
        let store =
            crate::scheduler::test_store("files:\n  - name: f\n    paths: [/nonexistent/x.pem]\n");
        let app = router(Arc::new(AppState::new(store.clone())));
        (app, store)
    }

    #[tokio::test]
    async fn a_publish_is_visible_to_the_next_scrape_despite_the_render_cache() {
        let (app, store) = app_with_store();
        let (_, first) = get(app.clone(), "/metrics").await;
        assert!(!first.contains("certinel_source_last_run_timestamp_seconds{"));
        store.publish_files(0, Default::default(), std::time::Duration::ZERO);
        let (_, after) = get(app, "/metrics").await;
        assert!(
            after.contains("certinel_source_last_run_timestamp_seconds{source_kind=\"file\""),
            "{after}"
        );
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        get_accepting(app, path, "*/*").await
    }

    async fn get_accepting(app: Router, path: &str, accept: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(request).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn reload_over_http_is_refused_without_the_lifecycle_flag() {
        let request = Request::post("/-/reload").body(Body::empty()).unwrap();
        let resp = app().oneshot(request).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 10)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.starts_with("Lifecycle API is not enabled.")
                && body.contains("--web.enable-lifecycle"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn not_ready_before_first_pass_names_the_source() {
        let (status, body) = get(app(), "/-/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("f"), "{body}");
    }

    #[tokio::test]
    async fn healthy_and_landing_page_answer() {
        assert_eq!(get(app(), "/-/healthy").await.0, StatusCode::OK);
        let (status, body) = get(app(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("href=\"metrics\""));
    }

    #[tokio::test]
    async fn prometheus_gets_openmetrics_with_eof() {
        let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        let (status, body) = get_accepting(app(), "/metrics", accept).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("# TYPE x509_cert_not_after gauge"), "{body}");
        assert!(body.contains("certinel_build_info{version="), "{body}");
        assert!(body.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn plain_clients_get_prometheus_text() {
        let (status, body) = get(app(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("# TYPE process_cpu_seconds_total counter"),
            "{body}"
        );
        assert!(!body.contains("# EOF"));
    }

    #[test]
    fn gzip_is_accepted_as_rfc_9110_weighs_it() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
            accepts_gzip(&headers)
        };
        assert!(!accepts_gzip(&HeaderMap::new()));
        for yes in [
            "gzip",
            "GZIP",
            "identity, gzip",
            "x-gzip",
            "gzip;q=0.5",
            "*",
            "br, *;q=0.1",
            "gzip;q=bad",
        ] {
            assert!(accepts(yes), "{yes}");
        }
        for no in [
            "identity",
            "br",
            "gzip;q=0",
            "gzip; q=0.0, *",
            "*;q=0",
            "deflate, *;q=0",
        ] {
            assert!(!accepts(no), "{no}");
        }
    }

    #[tokio::test]
    async fn prometheus_gets_gzip_and_curl_the_plain_body() {
        let request = |encoding: Option<&str>| {
            let mut request = Request::get("/metrics");
            if let Some(encoding) = encoding {
                request = request.header(header::ACCEPT_ENCODING, encoding);
            }
            request.body(Body::empty()).unwrap()
        };
        let plain = app().oneshot(request(None)).await.unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::VARY], "Accept-Encoding");
        let plain = axum::body::to_bytes(plain.into_body(), 1 << 20)
            .await
            .unwrap();
        let zipped = app().oneshot(request(Some("gzip"))).await.unwrap();
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::VARY], "Accept-Encoding");
        let length: usize = zipped.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let zipped = axum::body::to_bytes(zipped.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(zipped.len(), length);
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&zipped[..]),
            &mut unzipped,
        )
        .unwrap();
        // The same families (process_* values move between the two scrapes).
        let names = |body: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(body)
                .lines()
                .filter(|l| l.starts_with("# TYPE"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(names(&unzipped), names(&plain));
        let refused = app().oneshot(request(Some("gzip;q=0"))).await.unwrap();
        assert!(refused.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
