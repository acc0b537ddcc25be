//! certinel's HTTP side, one module per concern (the split of
//! exporter-toolkit's `web/`):
//!
//! * `routes`: `/metrics`, `/-/healthy`, `/-/ready`,
//!   `POST /-/reload` and the landing page, over `AppState`;
//! * `probe`: `/probe`, one target probed on request;
//! * `status`: the status page at `/status`; `api`: the JSON API under
//!   `/api/v1/`; `query`: the filters and page both read from the query
//!   string;
//! * `listener`: the accept loop, one task per connection, timeouts, the
//!   graceful drain; `limits`: the connection cap and the descriptors it
//!   leaves the sources; `write_timeout`: the write timeout hyper lacks;
//! * `web_config`: the `--web.config.file` (exporter-toolkit format), its
//!   validation and live reload;
//! * `tls`: certinel's own TLS and client-certificate modes;
//! * `auth`: basic auth, in front of every route of the main listener;
//! * `headers`: the configured response headers;
//! * `shutdown`: the signal and the grace period.

mod api;
mod auth;
mod headers;
mod landing;
mod limits;
mod listener;
mod probe;
mod query;
mod routes;
mod shutdown;
mod status;
mod tls;
mod web_config;
mod write_timeout;

pub(crate) use limits::{parking_room, reserve};
pub use limits::{ConnectionLimit, DEFAULT_MAX_CONNECTIONS};
pub use listener::{bind, serve, serve_health};
pub(crate) use routes::{health_router, router, AppState};
pub use shutdown::shutdown_signal;
pub(crate) use shutdown::SHUTDOWN_GRACE;
pub use web_config::{WebConfig, WebConfigError};
