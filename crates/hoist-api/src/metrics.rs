//! `/metrics` in the format the scraper asks for. The exposition is encoded once, as
//! OpenMetrics (prometheus-client's format); the Prometheus text format 0.0.4 differs from it
//! only in a few lines, rewritten here.

pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics to the Prometheus text format 0.0.4: a counter family `x` is named by its
/// samples' name `x_total` (0.0.4 has no suffix rule, so the HELP and TYPE lines must name
/// the samples), and `# UNIT` and `# EOF` lines, which 0.0.4 does not know, are left out.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let lines: Vec<&str> = openmetrics.lines().collect();
    // Counter family names, from their TYPE lines.
    let counters: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    for line in lines {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_samples_and_openmetrics_only_lines_go() {
        let om = "# HELP hoist_requests Requests answered.\n# TYPE hoist_requests counter\n\
                  hoist_requests_total{service=\"a\"} 3\n# HELP hoist_up Up.\n# TYPE hoist_up gauge\n\
                  # UNIT hoist_up seconds\nhoist_up 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP hoist_requests_total Requests answered.\n# TYPE hoist_requests_total counter\n\
             hoist_requests_total{service=\"a\"} 3\n# HELP hoist_up Up.\n# TYPE hoist_up gauge\n\
             hoist_up 1\n"
        );
    }
}
