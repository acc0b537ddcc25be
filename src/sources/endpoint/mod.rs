//! The endpoint source: resolve, connect, optionally STARTTLS, handshake,
//! and report the chain the server presented and what was wrong with it.
//!
//! Every resolved address is probed, concurrently, under one deadline for
//! the whole target. Certificate verification never aborts the handshake:
//! the recording verifier in `danger` keeps the chain and the verdict of
//! the real WebPKI verification, so an expired or mis-issued certificate is
//! exported *and* flagged. Failures are classified in `reason`; one
//! connection is `session`; the plain-text prelude is `starttls`; what
//! is wrong with the served chain beyond the verdict is `chain`; the
//! stapled OCSP response is read in `ocsp`; and whether the server still
//! serves an older certificate than its file is decided in [`restart`].
//!
//! Every address a name resolves to is put to an [`AddressPolicy`] before
//! anything connects to it, and only the addresses it passed are connected
//! to: configured targets pass [`AllowAll`], `/probe` its allowlist. The
//! name is resolved once, here, so a resolver that answers differently the
//! second time (DNS rebinding) never gets a second time.

mod activity;
mod chain;
mod danger;
mod ocsp;
mod reason;
pub mod restart;
mod session;
mod starttls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::time::timeout_at;

use crate::cert::{self, CertFacts};
use crate::config::{EndpointTarget, Starttls, TlsSettings};

pub use activity::Activity;
pub use chain::{ChainProblem, ChainProblemKind, ChainReport, VerifiedPath};
pub use ocsp::{OcspReport, OcspStatus};
pub use reason::{ProbeError, TlsErrorReason};
use session::Session;

/// Negotiated parameters of a completed handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLS1.2` or `TLS1.3`.
    pub version: &'static str,
    /// IANA cipher suite name.
    pub cipher_suite: String,
}

/// The outcome of probing one address of a target.
#[derive(Debug, Clone)]
pub struct AddressReport {
    /// `ip:port` connected to; `""` when the name did not resolve.
    pub address: String,
    /// The chain as presented, leaf first (empty if none was seen).
    pub chain: Vec<Arc<CertFacts>>,
    /// Set when the probe failed, in transport or verification.
    pub error: Option<ProbeError>,
    /// Set when the TLS handshake completed (even if verification failed).
    pub negotiated: Option<Negotiated>,
    /// What is wrong with the served chain, and the path that verified;
    /// set whenever the server presented a chain.
    pub chain_report: Option<ChainReport>,
    /// Whether the server stapled an OCSP response (`None`: no chain was
    /// presented, so there was nothing to staple to), and what it says.
    pub ocsp: Option<Option<OcspReport>>,
    /// Connect + STARTTLS + handshake.
    pub duration: Duration,
    /// When the probe of this address started.
    pub probed_at: SystemTime,
}

/// Decides, after the name is resolved and before anything connects,
/// whether a probe may reach the addresses a target resolved to.
pub trait AddressPolicy {
    /// Why a target was refused.
    type Refusal;
    /// `Err` refuses the whole target: nothing is connected to.
    fn check(&self, addresses: &[SocketAddr]) -> Result<(), Self::Refusal>;
}

/// The policy of configured targets and `certinel check`: the operator
/// wrote the target, so every address it resolves to is probed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AddressPolicy for AllowAll {
    type Refusal = Infallible;

    fn check(&self, _: &[SocketAddr]) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Probes one target: resolves it and probes every address it resolves
/// to, concurrently, all within `timeout`. Never returns an empty list.
/// [`probe_with`] under [`AllowAll`].
pub async fn probe(
    target: &EndpointTarget,
    tls: &TlsSettings,
    starttls: Option<Starttls>,
    timeout: Duration,
) -> Vec<AddressReport> {
    let activity = Arc::new(Activity::new());
    let Ok(reports) = probe_with(target, tls, starttls, timeout, &AllowAll, &activity).await;
    reports
}

/// [`probe`], with the resolved addresses put to `policy` first: when it
/// refuses them, nothing is connected to and its refusal is returned. A
/// name that does not resolve is a probe result (`dns`), not a refusal.
/// Its connections tell `activity` when they wait on the network.
pub async fn probe_with<P: AddressPolicy>(
    target: &EndpointTarget,
    tls: &TlsSettings,
    starttls: Option<Starttls>,
    timeout: Duration,
    policy: &P,
    activity: &Arc<Activity>,
) -> Result<Vec<AddressReport>, P::Refusal> {
    let deadline = deadline_after(timeout);
    let started = Instant::now();
    let probed_at = SystemTime::now();
    let dns_failure = |detail: String| {
        Ok(vec![AddressReport {
            address: String::new(),
            chain: Vec::new(),
            error: Some(ProbeError::new(TlsErrorReason::Dns, detail)),
            negotiated: None,
            chain_report: None,
            ocsp: None,
            duration: started.elapsed(),
            probed_at,
        }])
    };
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let mut addrs: Vec<SocketAddr> = match timeout_at(deadline, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => return dns_failure(format!("cannot resolve {}: {e}", target.host)),
        Err(_) => {
            return dns_failure(format!(
                "resolving {} did not finish within {timeout:?}",
                target.host
            ))
        }
    };
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return dns_failure(format!("{} resolves to no address", target.host));
    }
    policy.check(&addrs)?;
    let probes = addrs
        .into_iter()
        .map(|addr| probe_address(addr, target, tls, starttls, deadline, activity));
    Ok(futures_util::future::join_all(probes).await)
}

async fn probe_address(
    addr: SocketAddr,
    target: &EndpointTarget,
    tls: &TlsSettings,
    starttls: Option<Starttls>,
    deadline: tokio::time::Instant,
    activity: &Arc<Activity>,
) -> AddressReport {
    let started = Instant::now();
    let probed_at = SystemTime::now();
    let session = Session::new(tls);
    let outcome = timeout_at(
        deadline,
        session::handshake(addr, target, starttls, &session, activity),
    )
    .await;
    let duration = started.elapsed();
    let seen = session.recorder.take();
    let chain: Vec<Arc<CertFacts>> = seen
        .as_ref()
        .map(|s| {
            s.chain
                .iter()
                .filter_map(|der| cert::parse_der(der).ok())
                .collect()
        })
        .unwrap_or_default();
    let (chain_report, ocsp) = match &seen {
        Some(s) if !s.chain.is_empty() => {
            let (report, staple) = inspect(s, tls);
            (Some(report), Some(staple))
        }
        _ => (None, None),
    };
    let verdict = seen.and_then(|s| s.verdict.err());
    let (error, negotiated) = match outcome {
        Err(_) => (
            Some(ProbeError::new(
                TlsErrorReason::Timeout,
                "no complete handshake before the deadline",
            )),
            None,
        ),
        Ok(Err(failure)) => (
            Some(failure.classify(
                session.missing_client_cert(),
                session.peer_spoke_tls(),
                chain_report.as_ref(),
            )),
            None,
        ),
        Ok(Ok(negotiated)) => (
            verdict.map(|e| reason::verdict_error(&e, chain_report.as_ref())),
            Some(negotiated),
        ),
    };
    AddressReport {
        address: addr.to_string(),
        chain,
        error,
        negotiated,
        chain_report,
        ocsp,
        duration,
        probed_at,
    }
}

/// The chain diagnostics and the staple of a presented chain, logged at
/// debug (the probe's failure, if any, is logged where it is published).
fn inspect(seen: &danger::Seen, tls: &TlsSettings) -> (ChainReport, Option<OcspReport>) {
    let report = chain::inspect(&seen.chain, seen.path.as_ref(), &tls.anchors);
    for p in &report.problems {
        tracing::debug!(problem = %p.kind, detail = %p.detail, "served chain");
    }
    let staple = match (seen.ocsp.is_empty(), seen.chain.first()) {
        (false, Some(leaf)) => {
            let staple = ocsp::inspect(
                &seen.ocsp,
                leaf,
                report.issuer_spki.as_deref(),
                &tls.provider,
            );
            if !staple.detail.is_empty() {
                tracing::debug!(status = %staple.status, detail = %staple.detail, "stapled OCSP response");
            }
            Some(staple)
        }
        _ => None,
    };
    (report, staple)
}

/// `timeout` from now, saturating: a deadline is never a reason to panic.
fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}
