//! Reading Envoy's `/stats/prometheus` text.

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (`llm_ab_requests`, `llm_ab_latency_ms_bucket` …).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses the text exposition format; `Err` names the first bad line.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: not a Prometheus sample: {:.60}", i + 1, line);
        let (head, value) = line.rsplit_once(' ').ok_or_else(bad)?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().map_err(|_| bad())?,
        };
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').ok_or_else(bad)?;
                (name.to_string(), parse_labels(body).ok_or_else(bad)?)
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(bad());
        }
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    Ok(out)
}

fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        labels.insert(key.trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',').trim();
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_with_labels() {
        let text = "# TYPE x counter\nllm_ab_requests{experiment=\"e\",variant=\"v\",reason=\"hashed\"} 12\nplain 3.5\nh_bucket{le=\"+Inf\"} 7\n";
        let s = parse(text).unwrap_or_default();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].labels.get("variant").map(String::as_str), Some("v"));
        assert_eq!(s[0].value, 12.0);
        assert_eq!(s[1].name, "plain");
        assert_eq!(s[2].labels.get("le").map(String::as_str), Some("+Inf"));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse("ok 1\nbroken{x=\"1\" 2\n").err(),
            Some("line 2: not a Prometheus sample: broken{x=\"1\" 2".to_string())
        );
        assert!(parse("x notanumber").is_err());
    }
}
