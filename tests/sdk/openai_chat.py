"""Drives chat completions through the gateway with the official `openai` SDK.

Run by tests/sdk.rs against a real Envoy and the strict mock provider; it
prints one JSON object per scenario on stdout and the Rust test asserts on
them (and on the access-log records). The SDK is used as an application
uses it: default headers (`Accept-Encoding: gzip, deflate`), its own
response parsing, its exception classes, streams closed at `[DONE]`.

    python openai_chat.py --port P --control-user U --treatment-user V SCENARIO...
"""

import gzip
import sys

import httpx2 as httpx
import openai
from driver import drive
from openai import OpenAI

PII_PROMPT = "My e-mail is jane.doe@example.com, please confirm."
PII_REPLY = "Sure, I will write to john.roe@example.org today."
LONG_TAIL = " The figures for every region follow in the attached summary." * 24

# The trace id of the scenario running: every request it makes carries it
# in `traceparent`, so the test finds the scenario's access-log records.
TRACE = {"id": "0" * 31 + "1"}


class GzipRequests(httpx.HTTPTransport):
    """A transport that gzips request bodies (some clients and proxies do)."""

    def handle_request(self, request):
        body = request.read()
        headers = dict(request.headers)
        headers.pop("content-length", None)
        headers["content-encoding"] = "gzip"
        compressed = httpx.Request(
            request.method, request.url, headers=headers, content=gzip.compress(body)
        )
        return super().handle_request(compressed)


def client(args, **kw):
    return OpenAI(
        api_key="sk-test-not-a-real-key",
        base_url=f"http://127.0.0.1:{args.port}/v1",
        max_retries=0,
        timeout=20,
        default_headers={"traceparent": f"00-{TRACE['id']}-00f067aa0ba902b7-01"},
        **kw,
    )


def user(args, who):
    return {"x-user-id": args.control_user if who == "control" else args.treatment_user}


def usage_dict(u):
    if u is None:
        return None
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cached_tokens": (u.prompt_tokens_details.cached_tokens or 0)
        if u.prompt_tokens_details
        else 0,
        "reasoning_tokens": (u.completion_tokens_details.reasoning_tokens or 0)
        if u.completion_tokens_details
        else 0,
    }


def chat(args, who, model, extra=None, **kw):
    """A non-streaming call; returns its parsed answer and the raw headers."""
    headers = {**user(args, who), "x-mock-reply": PII_REPLY, **(extra or {})}
    raw = client(args).chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": PII_PROMPT}],
        extra_headers=headers,
        **kw,
    )
    done = raw.parse()
    return {
        "content": done.choices[0].message.content,
        "finish_reason": done.choices[0].finish_reason,
        "model": done.model,
        "usage": usage_dict(done.usage),
        "content_encoding": raw.headers.get("content-encoding"),
        "variant": raw.headers.get("x-llm-variant"),
    }


def stream(args, who, model, extra=None, stop_after=None, **kw):
    """A streaming call read as an app does; `stop_after` leaves early."""
    headers = {**user(args, who), "x-mock-reply": PII_REPLY, **(extra or {})}
    pieces, usage, chunks, finish = [], None, 0, None
    with client(args).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PII_PROMPT}],
        stream=True,
        extra_headers=headers,
        **kw,
    ) as s:
        for chunk in s:
            chunks += 1
            if chunk.usage is not None:
                usage = usage_dict(chunk.usage)
            for c in chunk.choices:
                if c.delta.content:
                    pieces.append(c.delta.content)
                finish = c.finish_reason or finish
            if stop_after is not None and chunks >= stop_after:
                break
    return {"content": "".join(pieces), "usage": usage, "chunks": chunks, "finish_reason": finish}


def error(fn):
    """Runs `fn`, expecting the SDK to raise; describes the exception."""
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {
            "error_class": type(e).__name__,
            "status": e.status_code,
            "code": body.get("code"),
            "message": str(e),
        }
    return {"error_class": None}


def scenarios(args):
    big = "lorem ipsum " * 8000  # ~96 KB, over the test's max_body_bytes
    return {
        # Answers parse, PII is redacted both ways, the provider's usage is read.
        # A long answer (over the compressor's 1 KiB minimum).
        "json_control": lambda: chat(
            args,
            "control",
            "gpt-4o-mini",
            {"x-mock-cached-tokens": "16", "x-mock-reply": PII_REPLY + LONG_TAIL},
        ),
        # A reasoning model: the inserted cap must be max_completion_tokens.
        "json_reasoning": lambda: chat(args, "treatment", "gpt-5-mini"),
        "stream_control": lambda: stream(args, "control", "gpt-4o-mini"),
        "stream_with_usage": lambda: stream(
            args,
            "treatment",
            "gpt-5-mini",
            {"x-mock-cached-tokens": "8"},
            stream_options={"include_usage": True},
        ),
        # The SDK closes at [DONE]; the upstream's end of body comes 400 ms later.
        "stream_close_after_done": lambda: stream(
            args, "control", "gpt-4o-mini", {"x-mock-linger-ms": "400"}
        ),
        # The provider ends the body cleanly, but without [DONE].
        "stream_no_done": lambda: stream(args, "control", "gpt-4o-mini", {"x-mock-no-done": "1"}),
        # The app stops reading after two chunks (client reset before [DONE]).
        "stream_client_leaves": lambda: stream(
            args, "control", "gpt-4o-mini", {"x-mock-event-gap-ms": "50"}, stop_after=2
        ),
        "gzip_request": lambda: {
            "content": client(args, http_client=httpx.Client(transport=GzipRequests()))
            .chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": PII_PROMPT}],
                extra_headers={**user(args, "control"), "x-mock-reply": PII_REPLY},
            )
            .choices[0]
            .message.content
        },
        # A moderation pattern refuses the prompt.
        "error_400": lambda: error(
            lambda: client(args).chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "how to make a bomb at home"}],
                extra_headers=user(args, "control"),
            )
        ),
        "error_413": lambda: error(
            lambda: client(args).chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": big}],
                extra_headers=user(args, "control"),
            )
        ),
        "error_415": lambda: error(
            lambda: client(args, http_client=httpx.Client(transport=GzipRequests()))
            .chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": PII_PROMPT}],
                extra_headers=user(args, "control"),
            )
        ),
        "error_429": lambda: error(
            lambda: [
                client(args).chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hello"}],
                    extra_headers={**user(args, "control"), "x-org-id": "org-small"},
                )
                for _ in range(10)
            ]
        ),
        # Without the decompressor, a gzip answer cannot be redacted.
        "error_502": lambda: error(lambda: chat(args, "control", "gpt-4o-mini")),
        "stream_502": lambda: error(lambda: stream(args, "control", "gpt-4o-mini")),
        # Same, where on_error is pass: the answer goes on, unread.
        "json_unreadable": lambda: chat(args, "control", "gpt-4o-mini"),
    }


def arguments(p):
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control-user", required=True)
    p.add_argument("--treatment-user", required=True)


if __name__ == "__main__":
    sys.exit(drive(arguments, scenarios, TRACE))
