//! Scoring two answers to the same request: the text of an answer in any
//! API (chat, Messages, Responses; JSON or a stream), token-level ROUGE-L
//! F1, exact match after normalisation, and JSON equality.

use crate::json::Value;

/// Most tokens of each answer the similarity compares (the longest common
/// subsequence takes their product in steps: at most 4 M here).
pub const MAX_SCORED_TOKENS: usize = 2_000;

/// The text of a whole JSON answer: every answer text, and each tool call
/// as `name(arguments)`, in order (chat `choices[0]`, Messages `content`
/// blocks, Responses `output` items).
pub fn answer_text(doc: &Value) -> String {
    let mut out = String::new();
    let mut push = |s: &str| {
        if !out.is_empty() && !s.is_empty() {
            out.push('\n');
        }
        out.push_str(s);
    };
    if let Some(message) = doc["choices"]
        .as_array()
        .and_then(|a| a.first())
        .map(|c| &c["message"])
    {
        if let Some(t) = message["content"].as_str() {
            push(t);
        }
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            let f = &call["function"];
            push(&tool_call(
                f["name"].as_str(),
                f["arguments"].as_str().unwrap_or(""),
            ));
        }
    }
    for block in doc["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => push(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => push(&tool_call(
                block["name"].as_str(),
                &block["input"].to_json(),
            )),
            _ => {}
        }
    }
    for item in doc["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    if part["type"] == "output_text" {
                        push(part["text"].as_str().unwrap_or(""));
                    }
                }
            }
            Some("function_call") => push(&tool_call(
                item["name"].as_str(),
                item["arguments"].as_str().unwrap_or(""),
            )),
            _ => {}
        }
    }
    out
}

fn tool_call(name: Option<&str>, arguments: &str) -> String {
    format!("{}({arguments})", name.unwrap_or(""))
}

/// The text of the answer a client got: a JSON answer, or a stream's
/// deltas (chat `delta.content`, Messages `text_delta`, Responses
/// `response.output_text.delta`; a Responses stream's final
/// `response.completed` answer when it has one).
pub fn client_answer_text(bytes: &[u8], stream: bool) -> String {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return String::new();
    };
    if !stream {
        return crate::json::parse(text)
            .map(|doc| answer_text(&doc))
            .unwrap_or_default();
    }
    let mut out = String::new();
    let mut completed = None;
    let mut parser = crate::sse::SseParser::new();
    let mut events = parser.feed(text.as_bytes());
    if parser.pending_len() > 0 {
        // A last event the stream left unterminated still counts.
        events.extend(parser.feed(b"\n\n"));
    }
    for event in events {
        let Ok(v) = crate::json::parse(&event.data) else {
            continue;
        };
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            out.push_str(t);
        }
        match v["type"].as_str() {
            Some("content_block_delta") if v["delta"]["type"] == "text_delta" => {
                out.push_str(v["delta"]["text"].as_str().unwrap_or(""));
            }
            Some("response.output_text.delta") => {
                out.push_str(v["delta"].as_str().unwrap_or(""));
            }
            Some("response.completed") => completed = Some(answer_text(&v["response"])),
            _ => {}
        }
    }
    completed.filter(|t| !t.is_empty()).unwrap_or(out)
}

/// Words: runs of letters and digits, ASCII case folded (punctuation and
/// spacing are not compared; a non-ASCII character is part of a word, so
/// text in any script is compared word by word, case-sensitively), each
/// as a 64-bit hash (FNV-1a of its case-folded bytes: two words compare
/// equal when their hashes do, wrong with a chance of 2⁻⁶⁴ per pair).
pub fn words(text: &str) -> Vec<u64> {
    text.split(|c: char| c.is_ascii() && !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_SCORED_TOKENS)
        .map(|w| {
            w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
            })
        })
        .collect()
}

/// Token-level ROUGE-L F1 of two texts: with `l` the longest common
/// subsequence of their words, `P = l / |b|`, `R = l / |a|`,
/// `F1 = 2PR / (P + R)`; 1 for two empty texts, 0 when one is empty.
pub fn rouge_l_f1(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let l = lcs(&a, &b) as f64;
    if l == 0.0 {
        return 0.0;
    }
    let p = l / b.len() as f64;
    let r = l / a.len() as f64;
    2.0 * p * r / (p + r)
}

/// Length of the longest common subsequence, bit-parallel (Hyyrö 2004):
/// one bit per word of `b`, 64 at a time, so `n × ⌈m / 64⌉` word
/// operations instead of the table's `n × m` cells. With `M[x]` the
/// positions of `x` in `b` and `V` all ones, each `x` of `a` makes
/// `V = (V + (V & M[x])) | (V & !M[x])`; the LCS is the number of zero bits.
fn lcs(a: &[u64], b: &[u64]) -> usize {
    let blocks = b.len().div_ceil(64);
    // The distinct words of `b`, sorted, each with its position mask.
    let mut keys: Vec<u64> = b.to_vec();
    crate::sort::sort(&mut keys);
    keys.dedup();
    let mut masks = vec![0u64; keys.len() * blocks];
    for (j, w) in b.iter().enumerate() {
        if let Ok(k) = keys.binary_search(w) {
            masks[k * blocks + j / 64] |= 1 << (j % 64);
        }
    }
    let mut v = vec![u64::MAX; blocks];
    for x in a {
        let Ok(k) = keys.binary_search(x) else {
            continue; // no match anywhere: V is unchanged
        };
        let m = &masks[k * blocks..(k + 1) * blocks];
        let mut carry = false;
        for (vi, mi) in v.iter_mut().zip(m) {
            let u = *vi & mi;
            let (sum, c1) = vi.overflowing_add(u);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            carry = c1 || c2;
            *vi = sum | (*vi & !mi);
        }
    }
    let zeros: u32 = v.iter().map(|x| x.count_zeros()).sum();
    // Bits past the end of `b` stay ones.
    zeros as usize
}

/// ASCII case folded, with every run of ASCII whitespace one space and
/// none at the ends.
pub fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_ascii_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.make_ascii_lowercase();
    out
}

/// Whether two answers are equal as JSON: `None` when neither is JSON,
/// `Some(false)` when only one is.
pub fn json_equal(a: &str, b: &str) -> Option<bool> {
    let parse = |t: &str| crate::json::parse(t.trim()).ok();
    match (parse(a), parse(b)) {
        (None, None) => None,
        (Some(x), Some(y)) => Some(x == y),
        _ => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_value as json;

    #[test]
    fn rouge_l_matches_hand_worked_values() {
        // "the cat sat on the mat" vs "the cat is on the mat": LCS "the cat
        // on the mat" = 5 of 6 words each: P = R = F1 = 5/6.
        let f = rouge_l_f1("The cat sat on the mat.", "the cat is on the mat");
        assert!((f - 5.0 / 6.0).abs() < 1e-12, "{f}");
        // a b c d vs b d e: LCS "b d" = 2, P = 2/3, R = 2/4, F1 = 4/7.
        let f = rouge_l_f1("a b c d", "b d e");
        assert!((f - 4.0 / 7.0).abs() < 1e-12, "{f}");
        assert_eq!(rouge_l_f1("", ""), 1.0);
        assert_eq!(rouge_l_f1("x", ""), 0.0);
        assert_eq!(rouge_l_f1("x y", "z"), 0.0);
        assert_eq!(rouge_l_f1("Same, words!", "same words"), 1.0);
    }

    /// The table's LCS (two rows), the reference of the bit-parallel one.
    fn lcs_table(a: &[u64], b: &[u64]) -> usize {
        let mut prev = vec![0usize; b.len() + 1];
        let mut row = vec![0usize; b.len() + 1];
        for x in a {
            for (j, y) in b.iter().enumerate() {
                row[j + 1] = if x == y {
                    prev[j] + 1
                } else {
                    row[j].max(prev[j + 1])
                };
            }
            std::mem::swap(&mut prev, &mut row);
        }
        prev[b.len()]
    }

    #[test]
    fn lcs_equals_a_brute_force_count() {
        // Every subsequence of a short sequence, checked against the other.
        fn is_subsequence(s: &[u64], of: &[u64]) -> bool {
            let mut it = of.iter();
            s.iter().all(|x| it.any(|y| y == x))
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            let a: Vec<u64> = (0..7)
                .map(|_| crate::testing::xorshift(&mut seed) % 3)
                .collect();
            let b: Vec<u64> = (0..6)
                .map(|_| crate::testing::xorshift(&mut seed) % 3)
                .collect();
            let best = (0u32..1 << a.len())
                .map(|mask| {
                    let s: Vec<u64> = (0..a.len())
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| a[i])
                        .collect();
                    if is_subsequence(&s, &b) {
                        s.len()
                    } else {
                        0
                    }
                })
                .max()
                .unwrap_or(0);
            assert_eq!(lcs(&a, &b), best, "{a:?} {b:?}");
        }
    }

    #[test]
    fn the_bit_parallel_lcs_equals_the_table_across_word_boundaries() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..400 {
            let n = (crate::testing::xorshift(&mut seed) % 300) as usize;
            let m = (crate::testing::xorshift(&mut seed) % 300) as usize;
            let alphabet =
                1 + crate::testing::xorshift(&mut seed) % if round % 2 == 0 { 4 } else { 40 };
            let a: Vec<u64> = (0..n)
                .map(|_| crate::testing::xorshift(&mut seed) % alphabet)
                .collect();
            let b: Vec<u64> = (0..m)
                .map(|_| crate::testing::xorshift(&mut seed) % alphabet)
                .collect();
            assert_eq!(
                lcs(&a, &b),
                lcs_table(&a, &b),
                "n {n} m {m} alphabet {alphabet}"
            );
        }
        // Exactly 64 and 128 words, all equal.
        for len in [63, 64, 65, 128] {
            let a = vec![7u64; len];
            assert_eq!(lcs(&a, &a), len);
        }
    }

    #[test]
    fn exact_match_and_json_equality() {
        assert_eq!(normalized("  Hello \n  World "), "hello world");
        assert_eq!(
            json_equal(r#"{"a": 1, "b": [2]}"#, r#" {"b":[2],"a":1}"#),
            Some(true)
        );
        assert_eq!(json_equal(r#"{"a": 1}"#, r#"{"a": 2}"#), Some(false));
        assert_eq!(json_equal(r#"{"a": 1}"#, "not json"), Some(false));
        assert_eq!(json_equal("hello", "world"), None);
    }

    #[test]
    fn the_text_of_every_api() {
        let chat = json!({"choices": [{"message": {"content": "hi there",
            "tool_calls": [{"function": {"name": "f", "arguments": "{\"x\":1}"}}]}}]});
        assert_eq!(answer_text(&chat), "hi there\nf({\"x\":1})");
        let messages = json!({"type": "message", "content": [{"type": "text", "text": "a"},
            {"type": "tool_use", "name": "g", "input": {"q": 2}}]});
        assert_eq!(answer_text(&messages), "a\ng({\"q\":2})");
        let responses = json!({"output": [{"type": "reasoning"}, {"type": "message",
            "content": [{"type": "output_text", "text": "b"}]}]});
        assert_eq!(answer_text(&responses), "b");

        let chat_stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(client_answer_text(chat_stream.as_bytes(), true), "Hello");
        let messages_stream = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert_eq!(client_answer_text(messages_stream.as_bytes(), true), "Hi");
        let responses_stream = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Yo\"}\n\n";
        assert_eq!(client_answer_text(responses_stream.as_bytes(), true), "Yo");
        assert_eq!(client_answer_text(b"\xff", false), "");
    }
}
