//! Where certificates come from: files on disk and TLS endpoints.
//!
//! Each source kind lives in its own module behind one entry point —
//! [`files::scan`] and [`endpoint::probe`] — that turns configuration into
//! results and never touches the snapshot or the metrics: the scheduler
//! calls them and publishes what they return.

pub mod endpoint;
pub mod files;

/// The kind of a source, as exported in the `source_kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// A `files:` entry.
    File,
    /// An `endpoints:` entry.
    Endpoint,
    /// A target `/probe` was asked for, probed with a `modules:` entry.
    Probe,
}

impl SourceKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Endpoint => "endpoint",
            SourceKind::Probe => "probe",
        }
    }
}
