//! The README's Python snippet for recomputing a user's variant must agree
//! with the filter's own assignment code, bucket for bucket.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use llm_ab::assign::{bucket, Layout};
use std::process::Command;

fn snippet() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let marker = readme
        .find("<!-- bucket-snippet")
        .expect("snippet marker in README");
    let rest = &readme[marker..];
    let start = rest.find("```python\n").expect("python block") + "```python\n".len();
    let end = rest[start..].find("```").expect("end of block");
    rest[start..start + end].to_string()
}

#[test]
fn readme_python_snippet_matches_the_filter() {
    let python = std::env::var("LLM_AB_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_string());
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run `make test`, which creates .venv with mmh3"
    );
    // (variants with weights in config order, control index)
    let layouts: [(&[(&str, f64)], usize); 4] = [
        (&[("control", 90.0), ("candidate", 10.0)], 0),
        (&[("a", 12.5), ("control", 50.0), ("b", 37.5)], 1),
        (
            &[("control", 70.0), ("t1", 10.0), ("t2", 10.0), ("t3", 10.0)],
            0,
        ),
        (&[("control", 0.0), ("only", 100.0)], 0),
    ];
    let keys: Vec<String> = (0..2000)
        .map(|i| format!("user-{i}@example.com"))
        .chain(["日本語".to_string(), "org:42".to_string()])
        .collect();
    let mut program = snippet();
    program.push_str("\nimport json, sys\ncases = json.load(sys.stdin)\n");
    program.push_str(
        "print(json.dumps([[variant(c['salt'], k, c['variants'], c['control']) for k in c['keys']] for c in cases]))\n",
    );
    let cases: Vec<serde_json::Value> = layouts
        .iter()
        .map(|(vs, control)| {
            serde_json::json!({
                "salt": "chat-q4",
                "variants": vs.iter().map(|(n, w)| serde_json::json!([n, w])).collect::<Vec<_>>(),
                "control": vs[*control].0,
                "keys": keys,
            })
        })
        .collect();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(&program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).expect("python json");
    for ((vs, control), got) in layouts.iter().zip(answers) {
        let buckets: Vec<u32> = vs.iter().map(|(_, w)| (w * 100.0).round() as u32).collect();
        let layout = Layout::new(&buckets, *control);
        for (key, python_says) in keys.iter().zip(got) {
            let rust_says = vs[layout.variant_of(bucket("chat-q4", key))].0;
            assert_eq!(python_says, rust_says, "key {key} layout {vs:?}");
        }
    }
}
