//! Log set-up: level and format from flag, environment or config file.
//!
//! `logfmt` is what Prometheus and its exporters print, so certinel's logs
//! read the same in a terminal and parse the same in Loki; `json` is there
//! for pipelines that want it.

use std::fmt;

use serde::Deserialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings (a target turning bad is a warning).
    Warn,
    /// The default: start-up, reloads, state changes.
    Info,
    /// Every probe and every file read.
    Debug,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `ts=… level=info msg="…" key=value`, as Prometheus writes.
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl LogLevel {
    fn as_tracing(self) -> Level {
        match self {
            LogLevel::Error => Level::ERROR,
            LogLevel::Warn => Level::WARN,
            LogLevel::Info => Level::INFO,
            LogLevel::Debug => Level::DEBUG,
        }
    }
}

/// Installs the global subscriber, writing to stderr.
///
/// Only certinel's own events pass at `debug`: the TLS and HTTP crates are
/// capped at `warn` so a debug session stays readable.
pub fn init(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = Targets::new()
        .with_default(level.as_tracing().min(Level::WARN))
        .with_target("certinel", level.as_tracing());
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests run many daemons in one process) is harmless.
    let _ = match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .event_format(Logfmt),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
    };
}

/// logfmt event formatter: `ts=<RFC 3339> level=<lvl> msg="<message>" k=v…`.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(writer, "ts={ts} level={level}")?;
        let mut visitor = LogfmtVisitor {
            message: None,
            fields: String::new(),
        };
        event.record(&mut visitor);
        if let Some(message) = visitor.message {
            write!(writer, " msg=")?;
            write_value(&mut writer, &message)?;
        }
        writer.write_str(&visitor.fields)?;
        writeln!(writer)
    }
}

struct LogfmtVisitor {
    message: Option<String>,
    fields: String,
}

impl LogfmtVisitor {
    fn push(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
            return;
        }
        self.fields.push(' ');
        self.fields.push_str(field.name());
        self.fields.push('=');
        // Writing into a String cannot fail.
        let _ = write_value(&mut self.fields, &value);
    }
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // Errors print their whole source chain: "context: cause: root cause".
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let cause = cause.to_string();
            if !text.ends_with(&cause) {
                text.push_str(": ");
                text.push_str(&cause);
            }
            source = cause_source(source);
        }
        self.push(field, text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, format!("{value:?}"));
    }
}

fn cause_source<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(|e| e.source())
}

/// Quotes a logfmt value when it needs it.
fn write_value(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        return w.write_str(value);
    }
    w.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            c if c.is_control() => write!(w, "\\u{{{:x}}}", u32::from(c))?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::write_value;

    fn quoted(v: &str) -> String {
        let mut s = String::new();
        write_value(&mut s, v).unwrap();
        s
    }

    #[test]
    fn logfmt_values_are_quoted_only_when_needed() {
        assert_eq!(quoted("10.0.0.1:443"), "10.0.0.1:443");
        assert_eq!(quoted("two words"), "\"two words\"");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("a\"b\nc"), "\"a\\\"b\\nc\"");
    }
}
