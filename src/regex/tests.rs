//! The engine against regex-lite 0.1.9, the reference it replaces.

use super::Regex;

/// xorshift64: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        crate::testing::xorshift(&mut self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const LITERALS: &[&str] = &[
    "a", "b", "c", "A", "B", "z", "Z", "_", "0", "7", " ", "-", "é", "É", "日", "😀", "k", "K",
    "\u{212A}", "ſ", "\n", "\r", ",", "#", "&", "~", "<", ">", "=", "@", "%", "\t", "\u{3000}",
    "\u{85}", "# c\n",
];

const ESCAPES: &[&str] = &[
    r"\.",
    r"\\",
    r"\n",
    r"\t",
    r"\r",
    r"\a",
    r"\f",
    r"\v",
    r"\x61",
    r"\x41",
    r"\x{e9}",
    r"\x{1F600}",
    r"\u0041",
    r"\u00E9",
    r"\U0001F600",
    r"\u{10FFFF}",
    r"\d",
    r"\w",
    r"\s",
    r"\D",
    r"\W",
    r"\S",
    r"\-",
    r"\&",
    r"\~",
    r"\#",
    r"\ ",
    r"\*",
    r"\{",
    r"\}",
    r"\[",
    r"\]",
    r"\(",
    r"\)",
    r"\|",
    r"\^",
    r"\$",
    r"\?",
    r"\+",
    r"\/",
    r"\%",
    r"\!",
    r"\=",
    r"\@",
    r"\'",
    "\\\"",
    r"\,",
    r"\:",
    r"\;",
    r"\_",
];

const LOOKS: &[&str] = &[
    "^",
    "$",
    r"\A",
    r"\z",
    r"\b",
    r"\B",
    r"\<",
    r"\>",
    r"\b{start}",
    r"\b{end}",
    r"\b{start-half}",
    r"\b{end-half}",
];

/// Things regex-lite refuses (or that only parse in some contexts).
const BAD: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\\",
    r"\p{L}",
    r"\pL",
    r"\P{L}",
    r"\1",
    r"\0",
    "(?=a)",
    "(?!a)",
    "(?<=a)",
    "(?<!a)",
    "(?",
    "(?)",
    "(?P<",
    "(?P<>a)",
    "(?<1a>b)",
    "(?P=n)",
    "(?q)",
    "(?i-)",
    "(?--i)",
    "(?ii)",
    "(?i-i)",
    r"\q",
    r"\x",
    r"\x{",
    r"\x{}",
    r"\x{110000}",
    r"\x{D800}",
    r"\xZZ",
    r"\u12",
    r"\U1234567",
    r"\b{",
    r"\b{foo}",
    r"\b{start",
    "[a-",
    "[z-a]",
    "[a&&b]",
    "[a--b]",
    "[a~~b]",
    "[[a]]",
    "[[:foo:]]",
    r"[\A]",
    r"[\d-z]",
    "[^",
    "[]",
    "[-",
    "a{",
    "a{1",
    "a{1,",
    "a{1,2",
    "a{x}",
    "a{2,1}",
    "a{4294967296}",
    "a{4294967295}",
    "*",
    "+a",
    "?",
    "{1}",
    "a**",
    "a+*",
    "(?P<n>a)(?P<n>b)",
    "\\k<n>",
    r"\b{3}",
    "a{300}",
    "(?:a|b){0,200}c",
    "[a-z]{2,100}?",
    "[:alpha:]",
    "(?x)",
    "(?u)",
    "(?-u:a)",
    "a{1}{2}",
    "(?i)[\\x61-z]",
    // Whitespace and comments, which only `(?x)` skips (and counts, always).
    r"\x{ 41 }",
    r"\x 4 1",
    r"\u 00 e9",
    "a{ 1 , 2 }",
    "a{1 }",
    "[ a - c ]",
    "[ ^ a]",
    r"\b { start }",
    r"\b{ end }",
    "# c\n",
    "(?x: a b )",
    "( ?i)",
    "(?P<n >a)",
    "[a -]",
    "[a - ]",
    "[a-#\n]",
    "[- a]",
    "[[:alpha:] ]",
    "a * ?",
    "a{2} ?",
    "\u{3000}*",
    "\\\n",
];

const FLAGS: &[&str] = &[
    "i", "m", "s", "U", "x", "R", "u", "-i", "i-s", "ims", "-m", "sR", "mR", "iU", "x-i",
];

const POSIX: &[&str] = &[
    "[:alpha:]",
    "[:^digit:]",
    "[:alnum:]",
    "[:space:]",
    "[:upper:]",
    "[:lower:]",
    "[:punct:]",
    "[:word:]",
    "[:xdigit:]",
    "[:ascii:]",
    "[:^ascii:]",
    "[:blank:]",
    "[:cntrl:]",
    "[:graph:]",
    "[:print:]",
];

/// A random class, sometimes malformed.
fn class(r: &mut Rng, out: &mut String) {
    out.push('[');
    if r.chance(30) {
        out.push('^');
    }
    if r.chance(10) {
        out.push(']');
    }
    if r.chance(10) {
        out.push('-');
    }
    for _ in 0..1 + r.below(4) {
        match r.below(9) {
            0 => out.push_str(r.pick(&["a-c", "A-Z", "0-9", "a-z", "é-日", "\\x00-\\x{10FFFF}"])),
            1 => out.push_str(r.pick(POSIX)),
            2 => out.push_str(r.pick(&[r"\d", r"\w", r"\s", r"\D", r"\W", r"\S"])),
            3 => out.push_str(r.pick(ESCAPES)),
            4 => {
                out.push_str(r.pick(&["&&", "--", "~~", "[a]", "[", "&", "~", " ", "#x\n", "Z-a"]))
            }
            5 => out.push_str(r.pick(&[r"\x{D7FF}\x{E000}", r"\x{D7FF}-\x{E000}", "-"])),
            _ => out.push_str(r.pick(LITERALS)),
        }
    }
    if r.chance(10) {
        out.push('-');
    }
    if r.chance(95) {
        out.push(']');
    }
}

/// A random pattern of about `depth` levels.
fn pattern(r: &mut Rng, depth: usize, out: &mut String) {
    let items = 1 + r.below(4);
    for _ in 0..items {
        match r.below(20) {
            0..=5 => out.push_str(r.pick(LITERALS)),
            6 | 7 => out.push_str(r.pick(ESCAPES)),
            8 => out.push_str(r.pick(LOOKS)),
            9 => out.push('.'),
            10 | 11 => class(r, out),
            12..=14 if depth > 0 => {
                out.push_str(r.pick(&["(", "(?:", "(?P<g", "(?<h", "(?i:", "(?-i:", "(?s:"]));
                if out.ends_with("(?P<g") || out.ends_with("(?<h") {
                    let n = r.below(1000).to_string();
                    out.push_str(&n);
                    out.push('>');
                }
                if out.ends_with("(?i:") && r.chance(30) {
                    out.truncate(out.len() - 4);
                    out.push_str("(?");
                    out.push_str(r.pick(FLAGS));
                    out.push(':');
                }
                pattern(r, depth - 1, out);
                if r.chance(97) {
                    out.push(')');
                }
            }
            15 => {
                out.push_str("(?");
                out.push_str(r.pick(FLAGS));
                out.push(')');
            }
            16 if depth > 0 => {
                pattern(r, depth - 1, out);
                out.push('|');
            }
            17 => out.push_str(r.pick(BAD)),
            _ => out.push_str(r.pick(LITERALS)),
        }
        if r.chance(30) {
            let rep = match r.below(12) {
                0 => "*".to_string(),
                1 => "+".to_string(),
                2 => "?".to_string(),
                3 => "*?".to_string(),
                4 => "+?".to_string(),
                5 => "??".to_string(),
                6 => format!("{{{}}}", r.below(4)),
                7 => format!("{{{},}}", r.below(3)),
                8 => {
                    let a = r.below(3);
                    format!("{{{},{}}}", a, a + r.below(3))
                }
                9 => format!("{{{},{}}}?", r.below(2), 1 + r.below(3)),
                10 => r
                    .pick(&["{ 2 }", "{,3}", "{3,2}", "{0}", "{1}", "{1,1}", "{0,0}"])
                    .into(),
                _ => r.pick(&["{2}?", "{0,}?", "{1,}", "*+", "{2}{2}"]).into(),
            };
            out.push_str(&rep);
        }
    }
}

/// A text built from the pattern's own characters and some others.
fn text(r: &mut Rng, pattern: &str) -> String {
    let own: Vec<char> = pattern
        .chars()
        .filter(|c| !"\\()[]{}?*+|^$".contains(*c))
        .collect();
    let mut t = String::new();
    for _ in 0..r.below(14) {
        if !own.is_empty() && r.chance(60) {
            t.push(own[r.below(own.len())]);
        } else {
            t.push_str(r.pick(LITERALS));
        }
    }
    t
}

/// Compares acceptance, messages and every match of one pattern on texts.
fn compare(p: &str, texts: &[String]) -> (bool, usize) {
    let ours = Regex::new(p);
    let theirs = regex_lite::Regex::new(p);
    let (ours, theirs) = match (ours, theirs) {
        (Ok(o), Ok(t)) => (o, t),
        (Err(o), Err(t)) => {
            assert_eq!(o.to_string(), t.to_string(), "message for {p:?}");
            return (false, 0);
        }
        (o, t) => panic!("acceptance differs for {p:?}: ours {o:?}, regex-lite {t:?}"),
    };
    let mut matches = 0;
    for t in texts {
        assert_eq!(
            ours.is_match(t),
            theirs.is_match(t),
            "is_match {p:?} on {t:?}"
        );
        let f = |m: Option<regex_lite::Match>| m.map(|m| (m.start(), m.end()));
        let o = ours.find(t).map(|m| (m.start(), m.end()));
        assert_eq!(o, f(theirs.find(t)), "find {p:?} on {t:?}");
        let o: Vec<_> = ours.find_iter(t).map(|m| (m.start(), m.end())).collect();
        let th: Vec<_> = theirs.find_iter(t).map(|m| (m.start(), m.end())).collect();
        assert_eq!(o, th, "find_iter {p:?} on {t:?}");
        matches += o.len();
    }
    (true, matches)
}

/// Random patterns (well-formed and not) and texts made to match them: same
/// acceptance, same messages, same `is_match`, `find` and `find_iter`.
/// Checked once with a planted bug (`+` compiled lazy): it fails at once.
#[test]
fn differential_against_regex_lite() {
    // A longer or different run: REGEX_DIFF=patterns,seed.
    let env = std::env::var("REGEX_DIFF").unwrap_or_default();
    let mut env = env.split(',').map(|v| v.parse::<u64>().ok());
    let n = env.next().flatten().unwrap_or(24_000);
    let mut r = Rng(env.next().flatten().unwrap_or(0x2545_f491_4f6c_dd1d));
    let (mut accepted, mut refused, mut pairs, mut matches) = (0, 0, 0, 0);
    for i in 0..n as usize {
        let mut p = String::new();
        if r.chance(15) {
            p.push_str("(?");
            p.push_str(r.pick(FLAGS));
            p.push(')');
        }
        pattern(&mut r, 1 + i % 4, &mut p);
        if r.chance(5) {
            // A random cut: unfinished syntax of every kind.
            let cut = r.below(p.len() + 1);
            while !p.is_char_boundary(cut.min(p.len())) {
                p.pop();
            }
            p.truncate(cut.min(p.len()));
        }
        let mut texts: Vec<String> = (0..8).map(|_| text(&mut r, &p)).collect();
        if i % 40 == 0 {
            // A long one: many overlapping threads and matches.
            texts.push((0..30).map(|_| text(&mut r, &p)).collect());
        }
        let (ok, m) = compare(&p, &texts);
        if ok {
            accepted += 1;
            pairs += texts.len();
            matches += m;
        } else {
            refused += 1;
        }
    }
    eprintln!("{accepted} accepted, {refused} refused, {pairs} pairs, {matches} matches");
    assert!(accepted * 3 > n && refused * 10 > n, "{accepted} {refused}");
    assert!(matches > pairs, "the texts match ({matches} in {pairs})");
}

/// Every refusal regex-lite has, by a pattern that meets it, with the same
/// message (the random patterns above reach most of them too).
#[test]
fn every_refusal_has_regex_lite_message() {
    let patterns = [
        "a(?P<n>b)(?P<n>c)",
        "(a",
        "(?",
        "a)",
        "(?=a)",
        "(?<!a)",
        "(?)",
        "(?P<",
        "(?P<1>a)",
        "(?P<a",
        "(?P<>a)",
        "(?q)",
        "(?--i)",
        "(?ii)",
        "(?i",
        "(?i-)",
        "a{,2}",
        "a{99999999999}",
        r"\x{g}",
        r"\x{10",
        r"\x{}",
        r"\x{110000}",
        r"\u12",
        r"\xg1",
        r"\U0011FFFF",
        r"\x",
        "\\",
        r"\1",
        r"\pL",
        r"\q",
        "[[:foo:]]",
        "*",
        "{2}",
        "a{",
        "a{2",
        "a{2,",
        "a{2,3",
        "a{2x}",
        "a{3,2}",
        "[a",
        r"[\b]",
        "[a-",
        "[^",
        "[]",
        "[z-a]",
        "[",
        "[[a]]",
        "[a&&b]",
        "[a--b]",
        "[a~~b]",
        r"[\d-z]",
        r"\b{start",
        r"\b{what}",
        r"\b{",
        r"\b{start]",
        "(?x)[a #\n",
        "(?x)a{ 2 # c\n }",
        &"(".repeat(60),
        &"a*".repeat(3).replace('a', "(?:a)"),
        &format!("{}a", "(?:".repeat(51)),
        "a{1000}{1000}",
        r"\w{100000}",
        "(?P<é>a)(?P<a.b[1]>b)",
    ];
    let mut refused = 0;
    for p in patterns {
        match (Regex::new(p), regex_lite::Regex::new(p)) {
            (Err(o), Err(t)) => {
                assert_eq!(o.to_string(), t.to_string(), "{p:?}");
                refused += 1;
            }
            (Ok(_), Ok(_)) => {}
            (o, t) => panic!("acceptance differs for {p:?}: {o:?} vs {t:?}"),
        }
    }
    assert!(refused >= 55, "{refused}");
}

/// The nesting limit, on groups and on the simplified tree: the same depth
/// passes and the next one fails in both engines; no depth blows the stack.
#[test]
fn the_nest_limit_is_regex_lite_s() {
    for depth in 45..56 {
        let groups = format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        let plain = format!("{}a{}", "(?:".repeat(depth), ")".repeat(depth));
        let stars = format!("a{}", "*".repeat(depth));
        let mixed = format!("{}a{}", "(?:b|".repeat(depth), ")+".repeat(depth));
        for p in [groups, plain, stars, mixed] {
            let ours = Regex::new(&p).map_err(|e| e.to_string());
            let theirs = regex_lite::Regex::new(&p).map_err(|e| e.to_string());
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{p}");
            assert_eq!(ours.err(), theirs.err(), "{p}");
        }
    }
    // Far past the limit: refused, without recursion to that depth.
    for p in [
        "(".repeat(100_000),
        format!("a{}", "*".repeat(200_000)),
        format!("a{}", "{1}".repeat(100_000)),
        "[a]?".repeat(50_000),
    ] {
        let ours = Regex::new(&p).map(|_| ()).map_err(|e| e.to_string());
        let theirs = regex_lite::Regex::new(&p)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{}…", &p[..20]);
    }
}

/// The 10 MiB size limit: the largest count regex-lite accepts for each
/// shape is the largest we accept.
#[test]
fn the_size_limit_is_regex_lite_s() {
    for shape in [
        "a{N}",
        "[a-z]{N}",
        r"\w{N}",
        "(?:a|b){N}",
        "(a){N}",
        "(?P<name>a)(b){N}",
        "a{0,N}",
        "(?:a*){N}",
        "(?:){N}",
    ] {
        let accepts = |n: u32| Regex::new(&shape.replace('N', &n.to_string())).is_ok();
        // The largest accepted count, by bisection on our engine.
        let (mut lo, mut hi) = (1u32, 2_000_000u32);
        assert!(accepts(lo) && !accepts(hi), "{shape}");
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if accepts(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let at = |n: u32| regex_lite::Regex::new(&shape.replace('N', &n.to_string()));
        assert!(at(lo).is_ok(), "{shape}: regex-lite refuses {lo}");
        let e = at(hi).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("compiled regex exceeded size limit"),
            "{shape} at {hi}"
        );
    }
}

fn spans(re: &str, text: &str) -> Vec<(usize, usize)> {
    let ours: Vec<_> = Regex::new(re)
        .unwrap()
        .find_iter(text)
        .map(|m| (m.start(), m.end()))
        .collect();
    let theirs: Vec<_> = regex_lite::Regex::new(re)
        .unwrap()
        .find_iter(text)
        .map(|m| (m.start(), m.end()))
        .collect();
    assert_eq!(ours, theirs, "{re} on {text:?}");
    ours
}

#[test]
fn empty_matches_in_find_iter_step_one_character() {
    assert_eq!(spans("", "aé"), [(0, 0), (1, 1), (3, 3)]);
    assert_eq!(spans("a*", "baaé"), [(0, 0), (1, 3), (5, 5)]);
    assert_eq!(spans("a*?", "aa"), [(0, 0), (1, 1), (2, 2)]);
    assert_eq!(spans(r"\b", "ab cd"), [(0, 0), (2, 2), (3, 3), (5, 5)]);
    // The empty match at 3 touches the match before it: skipped.
    assert_eq!(spans("x*|a", "aax"), [(0, 0), (1, 1), (2, 3)]);
}

#[test]
fn word_boundaries_at_the_text_edges() {
    assert_eq!(spans(r"\b", ""), []);
    assert_eq!(spans(r"\B", ""), [(0, 0)]);
    assert_eq!(spans(r"\bab\b", "ab"), [(0, 2)]);
    assert_eq!(spans(r"\<a", "a a"), [(0, 1), (2, 3)]);
    assert_eq!(spans(r"a\>", "aa a"), [(1, 2), (3, 4)]);
    assert_eq!(spans(r"\b{start-half}x", "x-x"), [(0, 1), (2, 3)]);
    assert_eq!(spans(r"\b{end-half}", "é"), [(0, 0), (2, 2)]);
    // ASCII word characters only: é is no word character.
    assert_eq!(spans(r"\bé\b", "é"), []);
    assert_eq!(spans(r"\w+", "aéb"), [(0, 1), (3, 4)]);
}

#[test]
fn matches_are_whole_characters() {
    assert_eq!(spans(".", "é日😀"), [(0, 2), (2, 5), (5, 9)]);
    assert_eq!(spans("[^a]", "a😀"), [(1, 5)]);
    assert_eq!(spans(r"\W", "é"), [(0, 2)]);
    assert_eq!(spans("日+", "日日本"), [(0, 6)]);
    assert_eq!(spans(r"\x{1F600}|\u00e9", "é😀"), [(0, 2), (2, 6)]);
}

#[test]
fn ignore_case_folds_ascii_only() {
    assert_eq!(spans("(?i)é", "éÉ"), [(0, 2)]);
    assert_eq!(spans("(?i)k", "kK\u{212A}"), [(0, 1), (1, 2)]);
    assert_eq!(spans("(?i)[a-c]", "aBÀ"), [(0, 1), (1, 2)]);
    assert_eq!(spans("(?i)[^a]", "Ab"), [(1, 2)]);
    assert_eq!(spans("(?i)s", "sSſ"), [(0, 1), (1, 2)]);
    // regex-lite folds the lower-case part of a range, else the upper.
    assert_eq!(spans("(?i)[Z-a]", "zZA"), [(1, 2), (2, 3)]);
}

/// Patterns that make a backtracker exponential run in linear time (the
/// test only runs them; a backtracker would not finish).
#[test]
fn pathological_patterns_are_linear() {
    let text = "a".repeat(10_000);
    for p in [
        "(a*)*b",
        "(a|a)*b",
        "(a?){50}a{50}c",
        "(?:a+)+$x",
        "(.*)*(.*)*z",
    ] {
        let re = Regex::new(p).unwrap();
        assert!(!re.is_match(&text), "{p}");
        assert_eq!(re.find_iter(&text).count(), 0, "{p}");
    }
    let re = Regex::new("(a|aa)*").unwrap();
    assert_eq!(re.find(&text).map(|m| m.end()), Some(10_000));
}
