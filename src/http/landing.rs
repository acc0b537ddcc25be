//! The landing page at `/`: what this is, and links to everything else.

use axum::response::Html;

/// The page, with the version.
pub(super) async fn page() -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>certinel</title></head><body>\n\
         <h1>certinel {}</h1>\n\
         <p>Prometheus exporter for X.509 certificate expiry.</p>\n\
         <ul>\n<li><a href=\"status\">Status</a>: every certificate, most urgent first</li>\n\
         <li><a href=\"api/v1/certificates\">Certificates as JSON</a> and \
         <a href=\"api/v1/sources\">sources as JSON</a></li>\n\
         <li><a href=\"metrics\">Metrics</a></li>\n\
         <li><a href=\"-/healthy\">Health</a></li>\n\
         <li><a href=\"-/ready\">Readiness</a></li>\n</ul>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    ))
}
