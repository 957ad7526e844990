//! Detector quality on the labelled corpus in `tests/corpus/`: recall per
//! type on positives, false positives on look-alikes. Prints the table.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use llm_ab::redact::detect::{scan, Kind};
use serde_json::Value;
use std::collections::BTreeMap;

fn rows(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn recall_and_false_positives_meet_the_bar() {
    let positives = rows("redaction_positives.jsonl");
    let negatives = rows("redaction_negatives.jsonl");
    assert!(positives.len() >= 500 && negatives.len() >= 500);

    let mut recall: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for row in &positives {
        let kind = Kind::parse(row["kind"].as_str().unwrap()).unwrap();
        let (text, value) = (
            row["text"].as_str().unwrap(),
            row["value"].as_str().unwrap(),
        );
        let at = text.find(value).expect("value in text");
        let found = scan(text, &Kind::ALL);
        let hit = found
            .iter()
            .any(|f| f.kind == kind && f.start <= at && f.end >= at + value.len());
        let e = recall.entry(kind.as_str()).or_default();
        e.1 += 1;
        if hit {
            e.0 += 1;
        } else {
            misses.push(format!("{}: {text:?}", kind.as_str()));
        }
    }
    let mut false_pos: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fps = Vec::new();
    for row in &negatives {
        let text = row["text"].as_str().unwrap();
        for f in scan(text, &Kind::ALL) {
            *false_pos.entry(f.kind.as_str()).or_default() += 1;
            fps.push(format!(
                "{}: {:?} in {text:?}",
                f.kind.as_str(),
                &text[f.start..f.end]
            ));
        }
    }
    println!(
        "\n| type | positives | recall | false positives on {} look-alikes |",
        negatives.len()
    );
    println!("|---|---|---|---|");
    for kind in Kind::ALL {
        let (hit, n) = recall.get(kind.as_str()).copied().unwrap_or((0, 0));
        let fp = false_pos.get(kind.as_str()).copied().unwrap_or(0);
        println!(
            "| {} | {n} | {:.3} | {fp} ({:.2} %) |",
            kind.as_str(),
            hit as f64 / n.max(1) as f64,
            100.0 * fp as f64 / negatives.len() as f64
        );
    }
    for m in misses.iter().take(20) {
        println!("missed {m}");
    }
    for f in fps.iter().take(20) {
        println!("false positive {f}");
    }
    for kind in Kind::ALL {
        let (hit, n) = recall.get(kind.as_str()).copied().unwrap_or((0, 0));
        assert!(n >= 50, "{}: only {n} positives", kind.as_str());
        assert!(
            hit as f64 / n as f64 >= 0.99,
            "{} recall {hit}/{n}",
            kind.as_str()
        );
        let fp = false_pos.get(kind.as_str()).copied().unwrap_or(0);
        assert!(
            fp as f64 / negatives.len() as f64 <= 0.01,
            "{} false positives {fp}",
            kind.as_str()
        );
    }
}
