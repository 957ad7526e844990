#!/usr/bin/env python3
"""Generates the labelled redaction corpus (deterministic: seeded).

    python3 tests/corpus/gen_redaction_corpus.py

writes tests/corpus/redaction_positives.jsonl ({"kind", "value", "text"}:
`value` occurs in `text` and must be found as `kind`) and
tests/corpus/redaction_negatives.jsonl ({"text", "about"}: look-alikes that
no detector may match). tests/redaction_corpus.rs measures recall and false
positives on them.
"""

import json
import os
import random
import string

R = random.Random(20261127)
HERE = os.path.dirname(os.path.abspath(__file__))

TEMPLATES = [
    "Please contact {} about the renewal.",
    "my details: {}",
    "{}",
    "Customer wrote: \"reach me at {} asap\"",
    "Log line 17: value={} status=ok",
    "Ticket #48213 — {} was attached by the user.",
    "我的信息是 {} 谢谢",
    "(see {})",
    "Forwarding {}, thanks!",
    "- item: {}\n- next",
]

FIRST = ["john", "maria", "li", "ahmed", "olga", "sam", "priya", "lucas", "emma", "noah", "zoe", "kenji"]
LAST = ["doe", "garcia", "wang", "hassan", "ivanova", "smith", "patel", "martin", "brown", "tanaka"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.co.uk", "example.io", "uni.example.edu", "example.de"]


def ctx(value):
    return R.choice(TEMPLATES).format(value)


def email():
    local = R.choice([
        f"{R.choice(FIRST)}.{R.choice(LAST)}",
        f"{R.choice(FIRST)}{R.randint(1, 999)}",
        f"{R.choice(FIRST)}+{R.choice(['news', 'ab', 'x1'])}",
        f"{R.choice(FIRST)}_{R.choice(LAST)}",
        f"{R.choice(FIRST).upper()}.{R.choice(LAST)}",
    ])
    return f"{local}@{R.choice(DOMAINS)}"


def phone():
    a, b, c = R.randint(201, 989), R.randint(200, 999), R.randint(0, 9999)
    return R.choice([
        f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+1 {a} {b} {c:04d}",
        f"1-{a}-{b}-{c:04d}", f"+1-{a}-{b}-{c:04d}",
        f"+44 20 {R.randint(7000, 7999)} {R.randint(1000, 9999)}",
        f"+49 30 {R.randint(100000, 999999)}",
        f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
        f"+91 {R.randint(90000, 99999)} {R.randint(10000, 99999)}",
        f"+{R.choice(['49', '44', '81', '61'])}{R.randint(1000000000, 9999999999)}",
    ])


def luhn_complete(prefix, length):
    digits = [int(d) for d in prefix]
    while len(digits) < length - 1:
        digits.append(R.randint(0, 9))
    for check in range(10):
        cand = digits + [check]
        s = 0
        for i, d in enumerate(reversed(cand)):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            s += d
        if s % 10 == 0:
            return "".join(map(str, cand))


def card():
    kind = R.choice(["visa", "mc", "mc2", "amex", "disc", "jcb"])
    if kind == "visa":
        n = luhn_complete("4", 16)
    elif kind == "mc":
        n = luhn_complete(str(R.randint(51, 55)), 16)
    elif kind == "mc2":
        n = luhn_complete(str(R.randint(2221, 2720)), 16)
    elif kind == "amex":
        n = luhn_complete(R.choice(["34", "37"]), 15)
        return R.choice([n, f"{n[:4]} {n[4:10]} {n[10:]}", f"{n[:4]}-{n[4:10]}-{n[10:]}"])
    elif kind == "disc":
        n = luhn_complete("6011", 16)
    else:
        n = luhn_complete(str(R.randint(3528, 3589)), 16)
    sep = R.choice(["", " ", "-"])
    return sep.join(n[i:i + 4] for i in range(0, 16, 4)) if sep else n


def ssn():
    area = R.choice([R.randint(1, 665), R.randint(667, 899)])
    sep = R.choice(["-", "-", " "])
    return f"{area:03d}{sep}{R.randint(1, 99):02d}{sep}{R.randint(1, 9999):04d}"


def ipv4():
    ip = ".".join(str(R.randint(0, 255)) for _ in range(4))
    return ip


def ipv6():
    groups = [f"{R.randint(0, 65535):x}" for _ in range(8)]
    form = R.choice(["full", "compressed", "link", "mapped", "doc"])
    if form == "full":
        return ":".join(groups)
    if form == "compressed":
        return ":".join(groups[:3]) + "::" + ":".join(groups[6:])
    if form == "link":
        return f"fe80::{groups[0]}:{groups[1]}"
    if form == "mapped":
        return f"::ffff:{ipv4()}"
    return f"2001:db8::{groups[2]}:{groups[3]}"


IBAN_LEN = {"GB": 22, "DE": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "CH": 21, "BE": 16, "PL": 28, "SE": 24}


def iban():
    country = R.choice(list(IBAN_LEN))
    n = IBAN_LEN[country]
    if country in ("GB", "NL"):
        bban = "".join(R.choice(string.ascii_uppercase) for _ in range(4)) + "".join(R.choice(string.digits) for _ in range(n - 8))
    elif country == "IT":
        bban = R.choice(string.ascii_uppercase) + "".join(R.choice(string.digits) for _ in range(n - 5))
    else:
        bban = "".join(R.choice(string.digits) for _ in range(n - 4))
    rearranged = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - num % 97
    value = f"{country}{check:02d}{bban}"
    if R.random() < 0.5:
        value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def rand(chars, n):
    return "".join(R.choice(chars) for _ in range(n))


B64URL = string.ascii_letters + string.digits + "-_"
ALNUM = string.ascii_letters + string.digits


def secret():
    kind = R.choice(["openai", "aws_id", "aws_secret", "ghp", "ghpat", "slack", "google", "jwt", "pem", "bearer"])
    if kind == "openai":
        return R.choice(["sk-", "sk-proj-"]) + rand(B64URL, R.randint(32, 48)), None
    if kind == "aws_id":
        return R.choice(["AKIA", "ASIA"]) + rand(string.ascii_uppercase + string.digits, 16), None
    if kind == "aws_secret":
        value = rand(ALNUM + "/+", 40)
        return value, R.choice([f"aws_secret_access_key = {value}", f"AWS_SECRET_ACCESS_KEY={value}", f'"SecretAccessKey": "{value}"'])
    if kind == "ghp":
        return R.choice(["ghp_", "gho_", "ghs_"]) + rand(ALNUM, 36), None
    if kind == "ghpat":
        return "github_pat_" + rand(ALNUM, 22) + "_" + rand(ALNUM, 59), None
    if kind == "slack":
        return R.choice(["xoxb-", "xoxp-"]) + f"{R.randint(10**11, 10**12)}-{R.randint(10**11, 10**12)}-" + rand(ALNUM, 24), None
    if kind == "google":
        return "AIza" + rand(B64URL, 35), None
    if kind == "jwt":
        import base64
        def enc(o):
            return base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
        return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': str(R.randint(1, 10**9)), 'name': R.choice(FIRST)})}.{rand(B64URL, 43)}", None
    if kind == "pem":
        body = "\n".join(rand(string.ascii_letters + string.digits + "+/", 64) for _ in range(R.randint(2, 5)))
        label = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----", None
    value = rand(ALNUM + "-._", R.randint(24, 60))
    return value, f"Authorization: Bearer {value}"


def positives():
    out = []
    makers = {"email": email, "phone": phone, "credit_card": card, "us_ssn": ssn, "ipv4": ipv4,
              "ipv6": ipv6, "iban": iban}
    for kind, make in makers.items():
        for _ in range(80):
            v = make()
            out.append({"kind": kind, "value": v, "text": ctx(v)})
    for _ in range(120):
        v, text = secret()
        out.append({"kind": "secret", "value": v, "text": text if text else ctx(v)})
    return out


def negatives():
    out = []

    def add(about, text):
        out.append({"about": about, "text": text})

    for _ in range(40):
        add("order number", f"Order #{R.randint(10**7, 10**12)} shipped on time.")
        add("uuid", f"request id {R.choice(['', 'req-'])}{'-'.join(rand('0123456789abcdef', n) for n in (8, 4, 4, 4, 12))}")
        add("timestamp", f"at {R.randint(2000, 2030)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}Z")
        add("price", f"total ${R.randint(1, 99)},{R.randint(100, 999)}.{R.randint(0, 99):02d} incl. tax")
        add("version", f"upgrade to v{R.randint(0, 9)}.{R.randint(0, 30)}.{R.randint(0, 99)} or {R.randint(1, 20)}.{R.randint(0, 9)}.{R.randint(0, 9)}")
        add("code", R.choice(["use std::collections::HashMap;", "fn main() { let x = a.b.c(); }", "git@github.com:org/repo.git is a remote",
                              "SELECT * FROM users WHERE id = 42;", "arr[3:5] and ratio 16:9", "x = 0x7ffd_1234;", "@Override public void run()"]))
        valid = luhn_complete("4", 16)
        add("non-luhn 16 digits", f"reference {valid[:-1]}{(int(valid[-1]) + 1) % 10} (not a card)")
        add("git sha", f"commit {rand('0123456789abcdef', 40)}")
        add("invalid ssn", f"code {R.choice(['000', '666', str(R.randint(900, 999))])}-{R.randint(10, 99)}-{R.randint(1000, 9999)}")
        add("invalid ip", f"value {R.randint(256, 999)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(0, 255)}")
        add("time", f"meeting at {R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d} in room {R.randint(100, 999)}")
        add("mac", ":".join(f"{R.randint(0, 255):02X}" for _ in range(6)))
        add("short prefix", R.choice(["task-force meeting", "risk-assessment", "AKIA123", "ghp_short", "xoxb", "sk-1", "eyJ.not.jwt"]))
        add("bad iban", f"IBAN {R.choice(list(IBAN_LEN))}00{rand(string.digits, 16)}")
        add("mention", f"@{R.choice(FIRST)} please review, cc user@localhost")
        add("isbn", f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}")
        add("base64", rand(string.ascii_letters + string.digits + "+/", 44))
        add("numbers", f"{R.randint(1000, 9999)}-{R.randint(1000, 9999)} and {R.randint(10, 99)} {R.randint(100, 999)} {R.randint(1000, 9999)} units")
    return out


def main():
    for name, rows in (("redaction_positives.jsonl", positives()), ("redaction_negatives.jsonl", negatives())):
        with open(os.path.join(HERE, name), "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
