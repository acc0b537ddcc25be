//! The families of what a probe learnt about the served chain beyond its
//! certificates: chain problems, the verified path's expiry, and the
//! stapled OCSP response. All carry the probe label set (`source_name`,
//! `target`, `server_name`, `address`), like `certinel_tls_info`.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue};
use prometheus_client::metrics::MetricType;

use super::labels::{for_each_probe, Probe, ProbeLabels};
use super::names::*;
use super::series::{Family, Series, Twins};
use crate::snapshot::SourceState;
use crate::sources::endpoint::{ChainReport, OcspReport, OcspStatus};

/// The sink a family's `series` function writes to: extra labels beyond
/// the probe's, and the value.
pub(super) type Sink<'s, V> = dyn FnMut(&[(&str, &str)], V) -> fmt::Result + 's;

/// Writes a gauge family with any number of series per probed address:
/// `series` calls its sink once per series of a probe, with the labels to
/// add to the probe's and the value. Every series passes the guard.
pub(super) fn probe_family<'a, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    sources: &'a [Arc<SourceState>],
    series: impl Fn(&Probe<'a>, &mut Sink<'_, V>) -> fmt::Result,
) -> fmt::Result {
    let each = |f: &mut dyn FnMut(&dyn Series) -> fmt::Result| {
        for_each_probe(sources, |p| {
            series(p, &mut |extra, _| f(&ProbeLabels { extra, ..p.labels }))
        })
    };
    let twins = Twins::find(each);
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    let mut family = Family::new(&twins);
    for_each_probe(sources, |p| {
        series(p, &mut |extra, v| {
            family.gauge(&mut m, &ProbeLabels { extra, ..p.labels }, v)
        })
    })
}

fn chain<'a>(p: &Probe<'a>) -> Option<&'a ChainReport> {
    p.report.chain_report.as_ref()
}

fn staple<'a>(p: &Probe<'a>) -> Option<&'a OcspReport> {
    p.report.ocsp.as_ref().and_then(Option::as_ref)
}

/// The `certinel_tls_chain_*` and `certinel_tls_ocsp_*` families.
pub(super) fn encode(enc: &mut DescriptorEncoder<'_>, sources: &[Arc<SourceState>]) -> fmt::Result {
    probe_family(
        enc,
        CHAIN_PROBLEMS,
        CHAIN_PROBLEMS_HELP,
        sources,
        |p, f| match chain(p) {
            Some(c) => f(&[], c.problems.len() as i64),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        CHAIN_PROBLEM_INFO,
        CHAIN_PROBLEM_INFO_HELP,
        sources,
        |p, f| {
            for problem in chain(p).iter().flat_map(|c| &c.problems) {
                let index = problem.chain_index.to_string();
                f(
                    &[("problem", problem.kind.as_str()), ("chain_index", &index)],
                    1i64,
                )?;
            }
            Ok(())
        },
    )?;
    probe_family(
        enc,
        CHAIN_VERIFIED_NOT_AFTER,
        CHAIN_VERIFIED_NOT_AFTER_HELP,
        sources,
        |p, f| match chain(p).and_then(|c| c.verified.as_ref()) {
            Some(path) => f(&[], path.not_after),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        CHAIN_UNUSED,
        CHAIN_UNUSED_HELP,
        sources,
        |p, f| match chain(p).and_then(|c| c.verified.as_ref()) {
            Some(path) => f(&[], path.unused.len() as i64),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        OCSP_STAPLED,
        OCSP_STAPLED_HELP,
        sources,
        |p, f| match &p.report.ocsp {
            Some(staple) => f(&[], i64::from(staple.is_some())),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        OCSP_REVOKED,
        OCSP_REVOKED_HELP,
        sources,
        |p, f| match staple(p) {
            Some(s) => f(&[], i64::from(s.status == OcspStatus::Revoked)),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        OCSP_STATUS_INFO,
        OCSP_STATUS_INFO_HELP,
        sources,
        |p, f| match staple(p) {
            Some(s) => f(
                &[
                    ("status", s.status.as_str()),
                    ("verified", if s.verified { "true" } else { "false" }),
                ],
                1i64,
            ),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        OCSP_THIS_UPDATE,
        OCSP_THIS_UPDATE_HELP,
        sources,
        |p, f| match staple(p).and_then(|s| s.this_update) {
            Some(t) => f(&[], t),
            None => Ok(()),
        },
    )?;
    probe_family(
        enc,
        OCSP_NEXT_UPDATE,
        OCSP_NEXT_UPDATE_HELP,
        sources,
        |p, f| match staple(p).and_then(|s| s.next_update) {
            Some(t) => f(&[], t),
            None => Ok(()),
        },
    )
}
