//! Every query of every dashboard, run against a real Prometheus scraping
//! certinel with one of each kind of problem.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::*;

/// Every `targets[].expr` of every dashboard is valid PromQL for a real
/// Prometheus and returns data where the setup guarantees some: a good file
/// certificate, certificates 5 and 20 days from expiry and one expired, a
/// garbage file, a good endpoint, a refused endpoint, and a source whose
/// first pass never completes.
#[test]
fn every_dashboard_query_runs_against_real_prometheus() {
    let started = Instant::now();
    let fx = Fixture::start(false);

    // Exact values of single-number panels, which `or vector(0)` would
    // otherwise keep from ever being empty, whatever their query matches.
    let expected_values: BTreeMap<&str, f64> = [
        ("Expired", 1.0),
        ("Expiring < 7 days", 1.0),
        ("Expiring < 30 days", 2.0),
        ("Failing handshakes", 1.0),
        // garbage.pem, a stale CRL, a keystore with the wrong password.
        ("Files in error", 3.0),
        ("Sources down", 1.0),
    ]
    .into_iter()
    .collect();
    // Panels whose queries may return nothing with this setup, and why.
    // Everything else must return data: the fixture produces every metric the
    // dashboards chart (a refused probe, a file error, a source that never
    // completes a pass...), and `rate()` has samples because the fixture
    // waits for several 1 s scrapes while `$__rate_interval` is 1m. An entry
    // whose panel does return data fails the test, so the list cannot rot.
    let allowed_empty: &[(&str, &str)] = &[(
        "Restart pending",
        "certinel_served_cert_stale needs an expect_file target; this setup has none",
    )];

    let vars: BTreeMap<&str, String> = [
        ("job", JOB.to_owned()),
        ("instance", fx.certinel.addr.to_string()),
        ("datasource", "prometheus".to_owned()),
        ("__rate_interval", "1m".to_owned()),
        ("__interval", "15s".to_owned()),
        ("__interval_ms", "15000".to_owned()),
        ("__range", "1m".to_owned()),
        ("__range_s", "60".to_owned()),
        ("__range_ms", "60000".to_owned()),
    ]
    .into_iter()
    .collect();

    let mut failures = Vec::new();
    let mut seen_titles = Vec::new();
    let mut checked = 0;
    let dashboards = dashboard_files();
    assert!(!dashboards.is_empty(), "no dashboards/*.json");
    for path in &dashboards {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));

        // Template variables must find the certinel being scraped.
        for var in json["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] != "query" {
                continue;
            }
            let var_name = var["name"].as_str().unwrap_or("?");
            let query = var["query"]["query"].as_str().or(var["query"].as_str());
            let what = format!("{name}: variable {var_name}");
            match query.map(label_values_query) {
                Some(Ok(promql)) => match substitute(&promql, &vars) {
                    Ok(q) => match fx.prom.query(&q) {
                        Ok(r) if r.is_empty() => {
                            failures.push(format!("{what}: `{q}` finds no values"))
                        }
                        Ok(_) => checked += 1,
                        Err(e) => failures.push(format!("{what}: `{q}`: {e}")),
                    },
                    Err(e) => failures.push(format!("{what}: {e}")),
                },
                Some(Err(e)) => failures.push(format!("{what}: {e}")),
                None => failures.push(format!("{what}: no query")),
            }
        }

        let mut targets = Vec::new();
        collect_targets(&json, "(dashboard)", &mut targets);
        assert!(!targets.is_empty(), "{name}: no panel targets found");
        for t in targets {
            seen_titles.push(t.title.clone());
            let what = format!("{name}: panel {:?} query {}", t.title, t.ref_id);
            let q = match substitute(&t.expr, &vars) {
                Ok(q) => q,
                Err(e) => {
                    failures.push(format!("{what}: {e} in `{}`", t.expr));
                    continue;
                }
            };
            checked += 1;
            let may_be_empty = allowed_empty.iter().any(|(title, _)| *title == t.title);
            match fx.prom.query(&q) {
                Err(e) => failures.push(format!("{what}: invalid: {e}\n    {q}")),
                Ok(r) if r.is_empty() && !may_be_empty => {
                    failures.push(format!("{what}: returned nothing\n    {q}"))
                }
                Ok(r) if !r.is_empty() && may_be_empty => failures.push(format!(
                    "{what}: returns data now, remove {:?} from allowed_empty",
                    t.title
                )),
                Ok(r) => {
                    if let Some(want) = expected_values.get(t.title.as_str()) {
                        let got: Vec<f64> = r.iter().map(sample_value).collect();
                        if got != [*want] {
                            failures.push(format!(
                                "{what}: expected {want} with this setup, got {got:?}\n    {q}"
                            ));
                        }
                    }
                }
            }
            // `... or vector(0)` is never empty: the left-hand side alone must
            // still find data, or a typo in it would go unnoticed.
            if let Some(lhs) = strip_or_vector0(&q) {
                match fx.prom.query(lhs) {
                    Err(e) => failures.push(format!("{what}: invalid: {e}\n    {lhs}")),
                    Ok(r) if r.is_empty() && !may_be_empty => failures.push(format!(
                        "{what}: without `or vector(0)` it returns nothing\n    {lhs}"
                    )),
                    Ok(_) => {}
                }
            }
        }
    }
    for title in expected_values
        .keys()
        .chain(allowed_empty.iter().map(|(t, _)| t))
    {
        if !seen_titles.iter().any(|s| s == title) {
            failures.push(format!(
                "this test expects a panel titled {title:?}, which no dashboard has any more: update the test"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} dashboard problem(s):\n{}\n\nmetrics certinel exposed:\n{}",
        failures.len(),
        failures.join("\n"),
        fx.certinel.metrics().text
    );
    eprintln!(
        "dashboards: {checked} queries checked against Prometheus in {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Reading dashboards.

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// One PromQL query of a dashboard panel.
#[derive(Debug)]
struct Target {
    title: String,
    ref_id: String,
    expr: String,
}

/// Every `targets[].expr`, anywhere in the JSON (rows, collapsed rows'
/// `panels`, library panels inlined...), with the nearest enclosing title.
fn collect_targets(v: &Value, title: &str, out: &mut Vec<Target>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            if let Some(targets) = map.get("targets").and_then(Value::as_array) {
                for t in targets {
                    if let Some(expr) = t.get("expr").and_then(Value::as_str) {
                        out.push(Target {
                            title: title.to_owned(),
                            ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                            expr: expr.to_owned(),
                        });
                    }
                }
            }
            for (k, child) in map {
                if k != "targets" {
                    collect_targets(child, title, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_targets(item, title, out);
            }
        }
        _ => {}
    }
}

/// Replaces Grafana variables (`$name`, `${name}`, `${name:format}`,
/// `[[name]]`) with their values; an unknown variable is an error.
fn substitute(expr: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let lookup = |name: &str| {
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("unknown template variable `{name}`"))
    };
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(inner) = rest.strip_prefix("${") {
            let end = inner.find('}').ok_or("unterminated ${")?;
            let name = inner[..end].split(':').next().unwrap_or_default();
            out.push_str(&lookup(name)?);
            rest = &inner[end + 1..];
        } else if let Some(inner) = rest.strip_prefix("[[") {
            let end = inner.find("]]").ok_or("unterminated [[")?;
            let name = inner[..end].split(':').next().unwrap_or_default();
            out.push_str(&lookup(name)?);
            rest = &inner[end + 2..];
        } else if rest.starts_with('$') {
            let ident_len = rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - 1);
            if ident_len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&rest[1..=ident_len])?);
            }
            rest = &rest[1 + ident_len..];
        } else {
            out.push('[');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A Grafana Prometheus variable query as PromQL that returns one series
/// per value: `label_values(sel, label)` → `group by (label) (sel)`.
fn label_values_query(q: &str) -> Result<String, String> {
    let q = q.trim();
    if let Some(args) = q
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return match args.rsplit_once(',') {
            Some((sel, label)) => Ok(format!("group by ({}) ({})", label.trim(), sel.trim())),
            None => Ok(format!("group by ({args}) ({{{args}!=\"\"}})")),
        };
    }
    if let Some(expr) = q
        .strip_prefix("query_result(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return Ok(expr.to_owned());
    }
    Err(format!(
        "unsupported variable query `{q}` (teach this test about it)"
    ))
}

/// `X or vector(0)` → `X`.
fn strip_or_vector0(q: &str) -> Option<&str> {
    let t = q.trim_end();
    let t = t
        .strip_suffix(')')?
        .trim_end()
        .strip_suffix('0')?
        .trim_end();
    let t = t
        .strip_suffix('(')?
        .trim_end()
        .strip_suffix("vector")?
        .trim_end();
    Some(t.strip_suffix("or")?.trim_end())
}
