//! The configuration file as written: serde types that mirror the YAML,
//! with unknown keys refused and values kept as text until
//! `validate`(super::validate) checks them with their key and line.
//!
//! `certinel check` builds these directly from its arguments, so the one
//! validation path serves both.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::values::{NameAttribute, RawSize, Starttls};
use crate::logging::{LogFormat, LogLevel};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) global: RawGlobal,
    #[serde(default)]
    pub(crate) log: RawLog,
    #[serde(default)]
    pub(crate) metrics: RawMetrics,
    pub(crate) files: Option<Vec<RawFileSource>>,
    pub(crate) endpoints: Option<Vec<RawEndpointSource>>,
    #[serde(default)]
    pub(crate) probe: RawProbe,
    pub(crate) modules: Option<BTreeMap<String, RawModule>>,
}

/// `probe:`, the `/probe` endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub(crate) enabled: Option<bool>,
    #[serde(default)]
    pub(crate) allow: RawAllow,
    pub(crate) allow_link_local: Option<bool>,
    pub(crate) max_concurrent: Option<u64>,
}

/// `probe.allow:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) networks: Option<Vec<String>>,
}

/// One `modules:` entry: how `/probe` probes a target that names it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModule {
    pub(crate) server_name: Option<String>,
    pub(crate) ca_file: Option<String>,
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
    pub(crate) starttls: Option<Starttls>,
    pub(crate) expect_file: Option<String>,
    pub(crate) timeout: Option<String>,
}

/// `global:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    pub(crate) interval: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) concurrency: Option<u64>,
    pub(crate) max_file_size: Option<RawSize>,
}

/// `log:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) level: Option<LogLevel>,
    pub(crate) format: Option<LogFormat>,
}

/// `metrics:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) expose_not_before: Option<bool>,
    pub(crate) expose_relative: Option<bool>,
    pub(crate) subject_labels: Option<Vec<NameAttribute>>,
    pub(crate) issuer_labels: Option<Vec<NameAttribute>>,
}

/// One `files:` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSource {
    pub(crate) name: String,
    pub(crate) paths: Vec<String>,
    pub(crate) exclude: Option<Vec<String>>,
    pub(crate) interval: Option<String>,
    pub(crate) max_file_size: Option<RawSize>,
}

/// One `endpoints:` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpointSource {
    pub(crate) name: String,
    pub(crate) targets: Vec<RawTarget>,
    pub(crate) server_name: Option<String>,
    pub(crate) ca_file: Option<String>,
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
    pub(crate) starttls: Option<Starttls>,
    pub(crate) expect_file: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) interval: Option<String>,
}

/// A target: `"host:port"` or
/// `{ target: "host:port", server_name: …, expect_file: … }`.
#[derive(Debug, Default)]
pub(crate) struct RawTarget {
    pub(crate) target: String,
    pub(crate) server_name: Option<String>,
    pub(crate) expect_file: Option<String>,
    /// Written as a mapping: errors about `target` name the `target` key.
    pub(crate) long_form: bool,
}

impl RawTarget {
    /// The short form, `"host:port"`.
    pub(crate) fn short(target: impl Into<String>) -> RawTarget {
        RawTarget {
            target: target.into(),
            ..RawTarget::default()
        }
    }
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            target: String,
            server_name: Option<String>,
            expect_file: Option<String>,
        }
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\" or { target: \"host:port\", server_name: \"…\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::short(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawTarget, A::Error> {
                let long = Long::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawTarget {
                    target: long.target,
                    server_name: long.server_name,
                    expect_file: long.expect_file,
                    long_form: true,
                })
            }
        }
        d.deserialize_any(V)
    }
}
