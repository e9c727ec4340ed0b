//! The two exposition formats and the choice between them by `Accept`.

use std::collections::HashSet;

use prometheus_client::encoding::text;
use prometheus_client::registry::Registry;

/// An exposition format of a scrape.
///
/// ```
/// use fluxgate::metrics::Format;
///
/// let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
/// assert_eq!(Format::from_accept(Some("text/plain")), Format::Text);
/// assert_eq!(Format::from_accept(None), Format::Text);
/// assert!(Format::OpenMetrics.content_type().starts_with("application/openmetrics-text"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    #[default]
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`), ending in `# EOF`.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header prefers it (by `q`) to `text/plain`, else text 0.0.4.
    #[must_use]
    pub fn from_accept(accept: Option<&str>) -> Self {
        let (mut open, mut plain) = (0.0_f64, 0.0_f64);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f64>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= plain {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }

    /// The `Content-Type` of an answer in this format.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Every metric of `registry` in `format` (prometheus-client's own, or any registry).
///
/// prometheus-client writes OpenMetrics only; the text format 0.0.4 differs in three points,
/// made here: a counter's `# HELP` and `# TYPE` name the samples' `_total` name, there is no
/// `# UNIT` line and no `# EOF`.
#[must_use]
pub fn encode(registry: &Registry, format: Format) -> String {
    let mut open = String::new();
    // Writing to a String fails only when a collector fails; the answer is then what was written.
    let _ = text::encode(&mut open, registry);
    match format {
        Format::OpenMetrics => open,
        Format::Text => to_text(&open),
    }
}

fn to_text(open: &str) -> String {
    let counters: HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?.split_once(' ')?)));
        match meta {
            Some((prefix, (name, rest))) if counters.contains(name) => {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_counters_by_their_samples() {
        let open = "# HELP a_x Xs.\n# TYPE a_x counter\na_x_total 1\n# HELP b B.\n# TYPE b gauge\n# UNIT b seconds\nb 2.0\n# EOF\n";
        assert_eq!(
            to_text(open),
            "# HELP a_x_total Xs.\n# TYPE a_x_total counter\na_x_total 1\n# HELP b B.\n# TYPE b gauge\nb 2.0\n"
        );
    }

    #[test]
    fn accept_weights_decide() {
        let text_first = "application/openmetrics-text;q=0.3,text/plain;q=0.9";
        assert_eq!(Format::from_accept(Some(text_first)), Format::Text);
        let refused = "application/openmetrics-text;q=0";
        assert_eq!(Format::from_accept(Some(refused)), Format::Text);
        let open = "Application/OpenMetrics-Text; version=0.0.1";
        assert_eq!(Format::from_accept(Some(open)), Format::OpenMetrics);
    }
}
