//! `/api/v1/certificates` and `/api/v1/sources` as scripts read them, and
//! `/status` as raw HTML: one schema with `certinel check --output json`,
//! filters, escaping, and the same basic auth as `/metrics`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::{Fixture, HOSTILE_CN, SUBJECTS_BY_URGENCY};
use crate::common::*;

/// Every field of a row, as docs/api.md lists them.
const ROW_FIELDS: [&str; 25] = [
    "status",
    "days_left",
    "not_after",
    "subject_cn",
    "issuer_cn",
    "serial_number",
    "source_kind",
    "source_name",
    "filepath",
    "target",
    "server_name",
    "address",
    "chain_index",
    "reason",
    "detail",
    "restart",
    "expect_file",
    "object",
    "this_update",
    "embedded_kind",
    "embedded_key",
    "ocsp_status",
    "ocsp_next_update",
    "chain_problems",
    "verified_chain_not_after",
];

fn rows(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn strs<'a>(rows: &'a [Value], key: &str) -> Vec<&'a str> {
    rows.iter().map(|r| r[key].as_str().unwrap_or("")).collect()
}

#[test]
fn api_certificates_are_the_rows_certinel_check_prints() {
    let f = Fixture::start().ready();
    let api = f.json("/api/v1/certificates");
    let out = run_bounded(
        certinel_command()
            .args([
                "check",
                "--config.file",
                "certinel.yaml",
                "--output",
                "json",
            ])
            .current_dir(f.dir.path()),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let check: Value = serde_json::from_str(&out.stdout).unwrap();
    let expected: BTreeSet<&str> = ROW_FIELDS.into_iter().collect();
    for row in rows(&api).iter().chain(rows(&check)) {
        let keys: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, expected, "{row}");
    }
    // The same rows in the same order; only days_left moves with the clock.
    let without_days = |v: &Value| -> Vec<Value> {
        rows(v)
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("days_left");
                r
            })
            .collect()
    };
    assert_eq!(without_days(&api), without_days(&check));
    for (a, c) in rows(&api).iter().zip(rows(&check)) {
        let (a, c) = (a["days_left"].as_f64(), c["days_left"].as_f64());
        assert!(
            a.zip(c).is_none_or(|(a, c)| (a - c).abs() < 0.01),
            "{a:?} {c:?}"
        );
    }
}

#[test]
fn api_rows_are_most_urgent_first_with_reasons_and_the_restart_verdict() {
    let f = Fixture::start().ready();
    let api = f.json("/api/v1/certificates");
    let rows = rows(&api);
    assert_eq!(
        strs(rows, "status"),
        ["error", "error", "error", "expired", "crit", "warn", "warn", "ok", "ok"]
    );
    assert_eq!(
        strs(rows, "reason")[..3],
        ["no_certificate_found", "not_found", "refused"]
    );
    assert_eq!(strs(&rows[3..], "subject_cn"), SUBJECTS_BY_URGENCY);
    assert_eq!(rows[2]["target"], f.refused.to_string());
    assert!(
        rows[2]["detail"].as_str().unwrap().contains("refused"),
        "{}",
        rows[2]
    );

    let stale = &rows[6];
    assert_eq!(stale["restart"], "restart_pending", "{stale}");
    assert_eq!(stale["target"], f.stale_target);
    assert_eq!(stale["address"], f.stale_target);
    assert_eq!(stale["server_name"], "localhost");
    assert_eq!(stale["chain_index"], 0);
    assert!(stale["expect_file"]
        .as_str()
        .unwrap()
        .ends_with("/deploy/tls.crt"));
    let restart: Vec<&Value> = rows.iter().filter(|r| !r["restart"].is_null()).collect();
    assert_eq!(restart.len(), 1, "only the served leaf has a verdict");
    let days = rows[4]["days_left"].as_f64().unwrap();
    assert!((2.9..3.1).contains(&days), "{days}");
}

#[test]
fn api_filters_like_the_page_and_refuses_unknown_values() {
    let f = Fixture::start().ready();
    let subjects = |query: &str| -> Vec<String> {
        let v = f.json(&format!("/api/v1/certificates?{query}"));
        rows(&v)
            .iter()
            .map(|r| {
                format!(
                    "{}{}",
                    r["subject_cn"].as_str().unwrap(),
                    r["reason"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert_eq!(subjects("status=expired"), ["gone.example"]);
    assert_eq!(subjects("status=restart_pending"), ["api.example"]);
    assert_eq!(subjects("source=web"), ["refused", "api.example"]);
    assert_eq!(subjects("q=URGENT"), ["urgent.example"]);
    assert_eq!(subjects("status=error&source=disk").len(), 2);
    assert_eq!(
        subjects(&format!("q={}", urlencode("<script>"))),
        [HOSTILE_CN]
    );
    assert_eq!(subjects("status=&source=&q=").len(), 9);

    let (status, headers, body) = http_exchange(
        f.daemon.addr,
        "GET",
        "/api/v1/certificates?status=soon",
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown status \"soon\""),
        "{body}"
    );
}

#[test]
fn api_sources_say_what_each_source_tracks_and_how_it_fails() {
    let f = Fixture::start().ready();
    let v = f.json("/api/v1/sources");
    let sources = rows(&v);
    assert_eq!(strs(sources, "source_name"), ["disk", "web"]);
    let (disk, web) = (&sources[0], &sources[1]);
    assert_eq!(disk["source_kind"], "file");
    assert_eq!(disk["up"], true);
    assert!(disk["last_pass"].as_i64().unwrap() > 0, "{disk}");
    assert_eq!(
        (disk["places"].as_u64(), disk["failing"].as_u64()),
        (Some(7), Some(2))
    );
    assert_eq!(disk["certificates"], 5);
    assert_eq!(disk["errors_total"]["no_certificate_found"], 1, "{disk}");
    assert_eq!(disk["errors_total"]["not_found"], 1, "{disk}");
    assert!(disk["targets"].is_null());
    assert_eq!(web["source_kind"], "endpoint");
    assert_eq!(
        (web["targets"].as_u64(), web["targets_probed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (web["places"].as_u64(), web["failing"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(web["restart_pending"], 1);
    assert_eq!(web["errors_total"]["refused"], 1, "{web}");
}

#[test]
fn status_page_is_html_with_markup_in_names_escaped_and_linked_from_the_landing_page() {
    let f = Fixture::start().ready();
    let (status, headers, body) = http_exchange(f.daemon.addr, "GET", "/status", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"].starts_with("default-src 'none';"),
        "{headers:?}"
    );
    assert!(
        !body.contains("<script") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;&lt;script&gt;"),
        "{body}"
    );
    assert_eq!(f.daemon.get("/status?page=0").0, 400);
    assert_eq!(f.daemon.get("/status?status=soon").0, 400);
    let (_, landing) = f.daemon.get("/");
    for link in ["status", "api/v1/certificates", "api/v1/sources", "metrics"] {
        assert!(landing.contains(&format!("href=\"{link}\"")), "{landing}");
    }
}

#[test]
fn status_page_and_api_sit_behind_the_same_basic_auth_as_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let config = "files:\n  - name: f\n    paths: [/nonexistent/tls.crt]\n";
    let (d, authorization) = Daemon::start_with_basic_auth(dir.path(), config, "oncall", "s3cret");
    for path in [
        "/metrics",
        "/status",
        "/api/v1/certificates",
        "/api/v1/sources",
    ] {
        let (status, _, _) = http_exchange(d.addr, "GET", path, &[]);
        assert_eq!(status, 401, "{path} without credentials");
        let (status, _, body) =
            http_exchange(d.addr, "GET", path, &[("Authorization", &authorization)]);
        assert_eq!(status, 200, "{path}: {body}");
    }
}
