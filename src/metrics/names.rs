//! Every metric name and help text of the contract (README "Metrics"), in
//! one place.

pub(super) const NOT_AFTER: &str = "x509_cert_not_after";
pub(super) const NOT_AFTER_HELP: &str = "NotAfter of the certificate, Unix seconds.";
pub(super) const NOT_BEFORE: &str = "x509_cert_not_before";
pub(super) const NOT_BEFORE_HELP: &str = "NotBefore of the certificate, Unix seconds.";
pub(super) const EXPIRED: &str = "x509_cert_expired";
pub(super) const EXPIRED_HELP: &str = "1 if the certificate has expired (now > NotAfter), else 0.";
pub(super) const EXPIRES_IN: &str = "x509_cert_expires_in_seconds";
pub(super) const EXPIRES_IN_HELP: &str = "Seconds until NotAfter, computed at scrape time.";
pub(super) const VALID_SINCE: &str = "x509_cert_valid_since_seconds";
pub(super) const VALID_SINCE_HELP: &str = "Seconds since NotBefore, computed at scrape time.";

pub(super) const HANDSHAKE_ERROR: &str = "certinel_tls_handshake_error";
pub(super) const HANDSHAKE_ERROR_HELP: &str =
    "1 if the last probe of this address failed (transport or verification), 0 if it succeeded.";
pub(super) const HANDSHAKE_ERROR_INFO: &str = "certinel_tls_handshake_error_info";
pub(super) const HANDSHAKE_ERROR_INFO_HELP: &str =
    "Present while the last probe of this address failed; the reason label says why.";
pub(super) const HANDSHAKE_DURATION: &str = "certinel_tls_handshake_duration_seconds";
pub(super) const HANDSHAKE_DURATION_HELP: &str =
    "Duration of the last probe of this address: connect, STARTTLS and TLS handshake.";
pub(super) const TLS_INFO: &str = "certinel_tls_info";
pub(super) const TLS_INFO_HELP: &str = "TLS version and cipher suite negotiated by the last probe.";
pub(super) const LAST_PROBE: &str = "certinel_tls_last_probe_timestamp_seconds";
pub(super) const LAST_PROBE_HELP: &str = "When this address was last probed, Unix seconds.";
pub(super) const SERVED_STALE: &str = "certinel_served_cert_stale";
pub(super) const SERVED_STALE_HELP: &str =
    "1 when the server presents an older certificate than its expect_file holds (restart pending), 0 otherwise.";

pub(super) const CRL_THIS_UPDATE: &str = "x509_crl_this_update";
pub(super) const CRL_THIS_UPDATE_HELP: &str =
    "thisUpdate of the CRL (when it was issued), Unix seconds.";
pub(super) const CRL_NEXT_UPDATE: &str = "x509_crl_next_update";
pub(super) const CRL_NEXT_UPDATE_HELP: &str =
    "nextUpdate of the CRL (when the next one is due), Unix seconds.";
pub(super) const CRL_STALE: &str = "x509_crl_stale";
pub(super) const CRL_STALE_HELP: &str =
    "1 if the CRL is stale (now > nextUpdate), else 0 (evaluated at scrape time).";
pub(super) const CRL_NUMBER: &str = "x509_crl_number";
pub(super) const CRL_NUMBER_HELP: &str = "The CRL's cRLNumber extension; 0 if absent.";
pub(super) const KUBECONFIG_INFO: &str = "certinel_kubeconfig_cert_info";
pub(super) const KUBECONFIG_INFO_HELP: &str =
    "Role of a certificate found in a kubeconfig: embedded_kind cluster (CA) or user (client), embedded_key its name.";

pub(super) const FILE_ERROR_INFO: &str = "certinel_file_error_info";
pub(super) const FILE_ERROR_INFO_HELP: &str =
    "Present while a file cannot be used; the reason label says why.";
pub(super) const READ_ERRORS: &str = "x509_read_errors";
pub(super) const READ_ERRORS_HELP: &str = "Number of files currently in error across all sources.";

pub(super) const BUILD_INFO: &str = "certinel_build_info";
pub(super) const BUILD_INFO_HELP: &str = "certinel build: version, git revision, rustc version.";
pub(super) const SOURCE_UP: &str = "x509_source_up";
pub(super) const SOURCE_UP_HELP: &str =
    "1 when the source completed a pass within two intervals (plus one timeout), else 0.";
pub(super) const SOURCE_ERRORS: &str = "x509_source_errors";
pub(super) const SOURCE_ERRORS_HELP: &str = "Failed file reads and probes since start, by reason.";
pub(super) const SOURCE_LAST_RUN: &str = "certinel_source_last_run_timestamp_seconds";
pub(super) const SOURCE_LAST_RUN_HELP: &str =
    "When the source last completed a pass, Unix seconds.";
pub(super) const SOURCE_DURATION: &str = "certinel_source_duration_seconds";
pub(super) const SOURCE_DURATION_HELP: &str = "Duration of the source's last completed pass.";
pub(super) const CERTIFICATES: &str = "certinel_certificates";
pub(super) const CERTIFICATES_HELP: &str = "Certificates currently tracked, by source kind.";
pub(super) const RELOAD_OK: &str = "certinel_config_last_reload_successful";
pub(super) const RELOAD_OK_HELP: &str =
    "Whether the last configuration reload attempt was successful.";
pub(super) const RELOAD_TIME: &str = "certinel_config_last_reload_success_timestamp_seconds";
pub(super) const RELOAD_TIME_HELP: &str = "Timestamp of the last successful configuration reload.";

pub(super) const CHAIN_PROBLEMS: &str = "certinel_tls_chain_problems";
pub(super) const CHAIN_PROBLEMS_HELP: &str =
    "Number of problems with the chain this address served (0 = none found).";
pub(super) const CHAIN_PROBLEM_INFO: &str = "certinel_tls_chain_problem_info";
pub(super) const CHAIN_PROBLEM_INFO_HELP: &str =
    "Present while the served chain has this problem, at this position (0 = leaf).";
pub(super) const CHAIN_VERIFIED_NOT_AFTER: &str = "certinel_tls_chain_verified_not_after";
pub(super) const CHAIN_VERIFIED_NOT_AFTER_HELP: &str =
    "Earliest NotAfter along the verified path (leaf, intermediates used, trust anchor), Unix seconds.";
pub(super) const CHAIN_UNUSED: &str = "certinel_tls_chain_unused_certificates";
pub(super) const CHAIN_UNUSED_HELP: &str = "Served certificates that are not on the verified path.";
pub(super) const OCSP_STAPLED: &str = "certinel_tls_ocsp_stapled";
pub(super) const OCSP_STAPLED_HELP: &str =
    "1 if the server stapled an OCSP response to its certificate, else 0.";
pub(super) const OCSP_REVOKED: &str = "certinel_tls_ocsp_revoked";
pub(super) const OCSP_REVOKED_HELP: &str =
    "1 if the stapled OCSP response says the certificate is revoked, else 0.";
pub(super) const OCSP_STATUS_INFO: &str = "certinel_tls_ocsp_status_info";
pub(super) const OCSP_STATUS_INFO_HELP: &str =
    "The stapled OCSP response: status (good, revoked, unknown, unusable) and whether it verified.";
pub(super) const OCSP_THIS_UPDATE: &str = "certinel_tls_ocsp_this_update_timestamp_seconds";
pub(super) const OCSP_THIS_UPDATE_HELP: &str =
    "thisUpdate of the stapled OCSP response, Unix seconds.";
pub(super) const OCSP_NEXT_UPDATE: &str = "certinel_tls_ocsp_next_update_timestamp_seconds";
pub(super) const OCSP_NEXT_UPDATE_HELP: &str =
    "nextUpdate of the stapled OCSP response, Unix seconds: after it the staple is stale.";
pub(super) const PROBE_SUCCESS: &str = "probe_success";
pub(super) const PROBE_SUCCESS_HELP: &str =
    "1 if every address of the target answered a verified TLS handshake, else 0.";
pub(super) const PROBE_DURATION: &str = "probe_duration_seconds";
pub(super) const PROBE_DURATION_HELP: &str =
    "How long the probe took: resolution, every address, the expect_file comparison.";
pub(super) const PROBE_REQUESTS: &str = "certinel_probe_requests";
pub(super) const PROBE_REQUESTS_HELP: &str = "/probe requests by outcome.";
pub(super) const PROBE_REFUSED: &str = "certinel_probe_refused";
pub(super) const PROBE_REFUSED_HELP: &str =
    "/probe requests the allowlist refused, by reason (host, network, link_local, not_unicast).";
