//! The landing page at `/`: what this is, and links to the endpoints.

use axum::response::Html;

/// The page, with the version.
pub(super) async fn page() -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html><head><title>certinel</title></head><body>\n\
         <h1>certinel {}</h1>\n\
         <p>Prometheus exporter for X.509 certificate expiry.</p>\n\
         <ul>\n<li><a href=\"metrics\">Metrics</a></li>\n\
         <li><a href=\"-/healthy\">Health</a></li>\n\
         <li><a href=\"-/ready\">Readiness</a></li>\n</ul>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    ))
}
