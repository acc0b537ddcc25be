//! The Prometheus text format 0.0.4, for readers that do not speak
//! OpenMetrics.

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4, for readers
/// that only speak the older format (node_exporter's textfile collector,
/// plain `curl`). The formats differ only where certinel's output is
/// concerned in two ways: counter families are named with their `_total`
/// suffix in HELP/TYPE, and there is no `# EOF` line.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        match comment_family(line) {
            Some((kind, name, rest)) if counters.contains(&name) => {
                out.push_str("# ");
                out.push_str(kind);
                out.push(' ');
                out.push_str(name);
                out.push_str("_total");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Splits `# HELP name rest` / `# TYPE name rest` into its parts.
fn comment_family(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix("# ")?;
    let (kind, rest) = rest.split_once(' ')?;
    if kind != "HELP" && kind != "TYPE" {
        return None;
    }
    let name_len = rest.find(' ').unwrap_or(rest.len());
    Some((kind, &rest[..name_len], &rest[name_len..]))
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn counters_get_total_names_and_eof_is_dropped() {
        let om = "# HELP x509_source_errors Failed.\n# TYPE x509_source_errors counter\nx509_source_errors_total{reason=\"dns\"} 3\n# HELP up_ish Up.\n# TYPE up_ish gauge\nup_ish 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP x509_source_errors_total Failed.\n# TYPE x509_source_errors_total counter\nx509_source_errors_total{reason=\"dns\"} 3\n# HELP up_ish Up.\n# TYPE up_ish gauge\nup_ish 1\n"
        );
    }
}
