//! The JSON API, versioned under `/api/v1/`: `certificates` is exactly
//! what `certinel check --output json` prints (the same [`report::Row`]s,
//! optionally filtered like the status page), `sources` the per-source
//! state. Documented in `docs/api.md`; like `/metrics`, it only reads the
//! snapshot.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::query;
use super::routes::AppState;
use crate::report::{self, Thresholds};

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// A query parameter with a value it cannot have.
    #[error(transparent)]
    Query(#[from] query::QueryError),
    /// The blocking task that builds the answer failed.
    #[error("building the answer failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// serde_json refused the rows (it cannot: they are strings and numbers).
    #[error("encoding JSON failed: {0}")]
    Encode(#[from] serde_json::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Query(_) => StatusCode::BAD_REQUEST,
            ApiError::Task(_) | ApiError::Encode(_) => {
                tracing::error!(error = %self, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// `GET /api/v1/certificates[?status=…&source=…&q=…]`: the rows, most
/// urgent first.
pub(super) async fn certificates(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let answer = async {
        let filter = query::parse(uri.query())?.filter;
        let snapshot = state.store().load();
        json(move || {
            let mut rows = report::rows(&snapshot, Thresholds::default(), SystemTime::now());
            rows.retain(|r| filter.matches(r));
            serde_json::to_vec(&rows)
        })
        .await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/sources`: every source's state, in configuration order.
pub(super) async fn sources(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.store().load();
    json(move || serde_json::to_vec(&report::sources(&snapshot, SystemTime::now())))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Builds and encodes the answer off the threads that serve connections:
/// ten thousand rows are megabytes of JSON.
async fn json(
    encode: impl FnOnce() -> serde_json::Result<Vec<u8>> + Send + 'static,
) -> Result<Response, ApiError> {
    let body = tokio::task::spawn_blocking(encode).await??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
