//! `/status`: the status page — every certificate, most urgent first, in
//! colour bands with the words beside them; failing files and targets
//! with their reason; services that must be restarted to serve their
//! renewed certificate, at the top; per-source state at the bottom.
//!
//! Server-rendered HTML with inline CSS and no script or external asset,
//! so it works air-gapped, without JavaScript, and behind the same TLS and
//! basic auth as `/metrics`. Filters and search are query parameters
//! (`query`), applied to the rows of one snapshot; pages keep a large
//! install's page small. Like `/metrics`, it only reads the snapshot.

mod escape;
mod html;

use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::query::{self, Params};
use super::routes::AppState;
use crate::report::{self, Row, Summary, Thresholds};
use crate::snapshot::Snapshot;

/// The page's own Content-Security-Policy: nothing may load, run or be
/// framed; only its one inline stylesheet (by hash) applies and its form
/// submits to itself. An operator's `Content-Security-Policy` header
/// (`http_server_config.headers`) replaces it.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(&ring::digest::SHA256, html::STYLE.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
});

/// `GET /status`.
pub(super) async fn page(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let params = match query::parse(uri.query()) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let snapshot = state.store().load();
    // Ten thousand rows take milliseconds to build and filter: off the
    // threads that serve connections, as /metrics renders are.
    let rendered = tokio::task::spawn_blocking(move || {
        render(&snapshot, &params, Thresholds::default(), SystemTime::now())
    })
    .await;
    match rendered {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CONTENT_SECURITY_POLICY, CSP.as_str()),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering /status failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

/// The page for `params` over `snapshot`.
fn render(snapshot: &Snapshot, params: &Params, thresholds: Thresholds, now: SystemTime) -> String {
    let rows = report::rows(snapshot, thresholds, now);
    let sources = report::sources(snapshot, now);
    let matched: Vec<&Row<'_>> = rows.iter().filter(|r| params.filter.matches(r)).collect();
    let per_page = params.per_page.max(1);
    let pages = matched.len().div_ceil(per_page).max(1);
    // Past the end (the list shrank since the link was made): the last page.
    let page = params.page.clamp(1, pages);
    let first = (page - 1) * per_page;
    let shown = matched
        .get(first..matched.len().min(first + per_page))
        .unwrap_or_default();
    html::Page {
        params,
        thresholds,
        now,
        summary: Summary::of(&rows),
        restart: rows.iter().filter(|r| r.restart_pending()).collect(),
        shown,
        first,
        matched: matched.len(),
        page,
        pages,
        sources: &sources,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Status, Which};
    use crate::sources::files::{FileErrorReason, FileReport};

    fn store_with_files(files: &[(&str, FileReport)]) -> Snapshot {
        let store =
            crate::scheduler::test_store("files:\n  - name: f\n    paths: [/nonexistent/x.pem]\n");
        let scan = files
            .iter()
            .map(|(p, r)| (Arc::from(std::path::Path::new(p)), Arc::new(r.clone())))
            .collect();
        store.publish_files(0, scan, std::time::Duration::ZERO);
        Snapshot::clone(&store.load())
    }

    fn page(snapshot: &Snapshot, query: &str) -> String {
        let params = query::parse(Some(query)).unwrap();
        render(snapshot, &params, Thresholds::default(), SystemTime::now())
    }

    #[test]
    fn hostile_names_are_text_not_markup() {
        let hostile = "/certs/<script>alert(1)</script>\".pem";
        let snapshot = store_with_files(&[(
            hostile,
            FileReport::failed(FileErrorReason::BadPem, "<b>not bold</b>"),
        )]);
        let html = page(&snapshot, "q=%3Cscript%3E");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;.pem"));
        assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"));
        // The search box shows the search, escaped.
        assert!(html.contains("value=\"&lt;script&gt;\""), "{html}");
    }

    #[test]
    fn pages_hold_per_page_rows_and_link_onwards_with_the_filters() {
        let failing: Vec<(String, FileReport)> = (0..5)
            .map(|i| {
                let report = FileReport::failed(FileErrorReason::NotFound, "gone");
                (format!("/certs/{i}.pem"), report)
            })
            .collect();
        let refs: Vec<(&str, FileReport)> = failing
            .iter()
            .map(|(p, r)| (p.as_str(), r.clone()))
            .collect();
        let snapshot = store_with_files(&refs);
        let html = page(&snapshot, "status=error&source=f&per_page=2&page=2");
        assert_eq!(html.matches("<tr class=\"s-error").count(), 2, "{html}");
        assert!(html.contains("/certs/2.pem") && html.contains("/certs/3.pem"));
        assert!(!html.contains("/certs/1.pem"));
        assert!(html.contains("Page 2 of 3"), "{html}");
        assert!(
            html.contains("href=\"?status=error&amp;source=f&amp;per_page=2&amp;page=3\""),
            "{html}"
        );
        // A page past the end shows the last one.
        assert!(page(&snapshot, "per_page=2&page=99").contains("Page 3 of 3"));
        let params = Params {
            filter: report::Filter {
                which: Some(Which::Status(Status::Ok)),
                ..Default::default()
            },
            ..Params::default()
        };
        let none = render(&snapshot, &params, Thresholds::default(), SystemTime::now());
        assert!(none.contains("No certificate matches"), "{none}");
    }

    #[test]
    fn an_empty_snapshot_says_so_rather_than_blaming_the_filters() {
        let html = page(&store_with_files(&[]), "");
        assert!(html.contains("No certificates or failures yet"), "{html}");
        assert!(html.contains("<table id=\"sources\""), "{html}");
    }

    #[test]
    fn the_stylesheet_on_the_page_is_the_one_the_policy_allows() {
        let html = page(&store_with_files(&[]), "");
        let style = html
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(style, _)| style)
            .unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, style.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(
            CSP.contains(&format!("style-src 'sha256-{hash}';")),
            "{}",
            *CSP
        );
        assert_eq!(html.matches("<style").count(), 1);
        assert!(
            !html.contains("style=\""),
            "inline style attributes are blocked"
        );
        assert!(!html.contains("<script"), "the page needs no script");
    }
}
