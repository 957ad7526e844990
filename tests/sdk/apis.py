"""Drives the Responses, Messages and Embeddings APIs through the gateway
with the official `openai` and `anthropic` SDKs, streaming and not.

Run by tests/apis.rs against a real Envoy and the strict mock provider; it
prints one JSON object per scenario on stdout, with the trace id its
requests carried, and the Rust test asserts on them and on the records.

    python apis.py --port P --user U SCENARIO...
"""

import sys

import anthropic
import openai
from driver import drive

PII_PROMPT = "My e-mail is jane.doe@example.com, please confirm."
TRACE = {"id": "0" * 31 + "1"}


def headers(args, **extra):
    return {
        "traceparent": f"00-{TRACE['id']}-00f067aa0ba902b7-01",
        "x-user-id": args.user,
        **extra,
    }


def oa(args):
    return openai.OpenAI(
        api_key="sk-test-not-a-real-key",
        base_url=f"http://127.0.0.1:{args.port}/v1",
        max_retries=0,
        timeout=20,
    )


def an(args):
    return anthropic.Anthropic(
        api_key="sk-ant-test-not-a-real-key",
        base_url=f"http://127.0.0.1:{args.port}",
        max_retries=0,
        timeout=20,
    )


def responses_json(args):
    r = oa(args).responses.create(
        model="app-model",
        input=PII_PROMPT,
        max_output_tokens=5000,
        extra_headers=headers(args),
    )
    u = r.usage
    return {
        "text": r.output_text,
        "model": r.model,
        "usage": {
            "input_tokens": u.input_tokens,
            "cached_tokens": u.input_tokens_details.cached_tokens,
            "output_tokens": u.output_tokens,
        },
    }


def messages_json(args):
    m = an(args).messages.create(
        model="app-model",
        max_tokens=4096,
        messages=[{"role": "user", "content": PII_PROMPT}],
        extra_headers=headers(
            args, **{"x-mock-cached-tokens": "5", "x-mock-cache-write-tokens": "7"}
        ),
    )
    u = m.usage
    return {
        "text": m.content[0].text,
        "model": m.model,
        "stop_reason": m.stop_reason,
        "usage": {
            "input_tokens": u.input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "output_tokens": u.output_tokens,
        },
    }


def messages_stream(args, **extra):
    """A streamed Messages call as apps make it: the SDK's stream helper,
    its text stream and its final message."""
    with an(args).messages.stream(
        model="app-model",
        max_tokens=4096,
        messages=[{"role": "user", "content": "hello"}],
        extra_headers=headers(
            args,
            **{
                "x-mock-split": "1",
                "x-mock-cached-tokens": "3",
                "x-mock-cache-write-tokens": "2",
                **extra,
            },
        ),
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    u = final.usage
    return {
        "text": text,
        "stop_reason": final.stop_reason,
        "usage": {
            "input_tokens": u.input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
            "output_tokens": u.output_tokens,
        },
    }


def responses_stream(args, **extra):
    """A streamed Responses call: the text the deltas add up to, and the
    final response the SDK hands over at `response.completed`."""
    stream = oa(args).responses.create(
        model="app-model",
        input="hello",
        stream=True,
        extra_headers=headers(args, **{"x-mock-split": "1", **extra}),
    )
    deltas, final = [], None
    for event in stream:
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            final = event.response
    return {
        "text": "".join(deltas),
        "final_text": final.output_text,
        "usage": {"input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens},
    }


SEARCH_TOOL = {
    "name": "search_docs",
    "description": "Search the docs.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}
RM_TOOL = {**SEARCH_TOOL, "name": "rm_rf"}


def messages_stream_checked(args, **extra):
    """A streamed Messages call with tools offered, as an agent makes it:
    the text, the stop reason and the tool calls of the final message, or
    the exception the SDK raises on an `error` event."""
    try:
        with an(args).messages.stream(
            model="app-model",
            max_tokens=4096,
            messages=[{"role": "user", "content": "hello"}],
            tools=[SEARCH_TOOL, RM_TOOL],
            extra_headers=headers(args, **{"x-mock-split": "1", **extra}),
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
    except anthropic.APIStatusError as e:
        error = e.body.get("error", {}) if isinstance(e.body, dict) else {}
        return {
            "exception": type(e).__name__,
            "error_type": error.get("type"),
            "message": error.get("message"),
        }
    return {
        "text": text,
        "stop_reason": final.stop_reason,
        "tools": [b.name for b in final.content if b.type == "tool_use"],
    }


def responses_stream_checked(args, **extra):
    """A streamed Responses call with function tools: every event type in
    order, the text of the deltas, the error event's code and number."""
    stream = oa(args).responses.create(
        model="app-model",
        input="hello",
        stream=True,
        tools=[
            {"type": "function", "name": t["name"], "parameters": t["input_schema"]}
            for t in (SEARCH_TOOL, RM_TOOL)
        ],
        extra_headers=headers(args, **{"x-mock-split": "1", **extra}),
    )
    kinds, deltas, error = [], [], None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "error":
            error = {"code": event.code, "sequence_number": event.sequence_number}
    return {"types": kinds, "text": "".join(deltas), "error": error}


def responses_schema(args, reply):
    """A Responses call asking for structured output (`text.format`)."""
    r = oa(args).responses.create(
        model="app-model",
        input="give me JSON",
        text={
            "format": {
                "type": "json_schema",
                "name": "answer",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}},
                    "required": ["a"],
                    "additionalProperties": False,
                },
            }
        },
        extra_headers=headers(args, **{"x-mock-reply": reply}),
    )
    return {"text": r.output_text}


def anthropic_error(args, prompt, extra, **kw):
    """The exception the Anthropic SDK raises for the filter's refusal."""
    try:
        an(args).messages.create(
            model="app-model",
            # Capped to the budget's 256: two reservations exceed the quota.
            max_tokens=4096,
            messages=[{"role": "user", "content": prompt}],
            extra_headers=headers(args, **extra),
            **kw,
        )
    except anthropic.APIStatusError as e:
        error = e.body.get("error", {}) if isinstance(e.body, dict) else {}
        return {
            "exception": type(e).__name__,
            "status": e.status_code,
            "sdk_message": e.message,
            "message": error.get("message"),
            "error_type": error.get("type"),
        }
    return {"unexpected": "no exception"}


def openai_error(args, call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"exception": type(e).__name__, "status": e.status_code, "code": e.code}
    return {"unexpected": "no exception"}


def embeddings(args):
    r = oa(args).embeddings.create(
        model="app-embed",
        input=["first text", "second text"],
        extra_headers=headers(args),
    )
    return {
        "count": len(r.data),
        "dims": len(r.data[0].embedding),
        "second": r.data[1].embedding[0],
        "prompt_tokens": r.usage.prompt_tokens,
    }


def scenarios(args):
    return {
        "responses_json": lambda: responses_json(args),
        "messages_json": lambda: messages_json(args),
        "messages_blocked": lambda: anthropic_error(args, "how to make a bomb", {}),
        "messages_quota": lambda: [
            anthropic_error(args, "hello", {"x-org-id": "org-small"}) for _ in range(3)
        ][-1],
        "messages_stream": lambda: messages_stream(args),
        "messages_stream_redacted": lambda: messages_stream(
            args, **{"x-mock-reply": "Sure, I will write to john.roe@example.org today."}
        ),
        "responses_stream_redacted": lambda: responses_stream(
            args, **{"x-mock-reply": "Sure, I will write to john.roe@example.org today."}
        ),
        "messages_stream_evil": lambda: messages_stream_checked(
            args, **{"x-mock-reply": "Sure, here is an evil plan for you."}
        ),
        "messages_stream_tool_allowed": lambda: messages_stream_checked(
            args, **{"x-mock-tool-call": "search_docs"}
        ),
        "messages_stream_tool_denied": lambda: messages_stream_checked(
            args, **{"x-mock-tool-call": "rm_rf"}
        ),
        "messages_json_tool_denied": lambda: anthropic_error(
            args, "hello", {"x-mock-tool-call": "rm_rf"}, tools=[SEARCH_TOOL, RM_TOOL]
        ),
        "responses_stream_evil": lambda: responses_stream_checked(
            args, **{"x-mock-reply": "Sure, here is an evil plan for you."}
        ),
        "responses_stream_tool_allowed": lambda: responses_stream_checked(
            args, **{"x-mock-tool-call": "search_docs"}
        ),
        "responses_stream_tool_denied": lambda: responses_stream_checked(
            args, **{"x-mock-tool-call": "rm_rf"}
        ),
        "responses_schema_pass": lambda: responses_schema(args, '{"a":1}'),
        "responses_schema_fail": lambda: responses_schema(args, '{"b":1}'),
        "responses_blocked": lambda: openai_error(
            args,
            lambda: oa(args).responses.create(
                model="app-model", input="how to make a bomb", extra_headers=headers(args)
            ),
        ),
        "embeddings": lambda: embeddings(args),
    }


def arguments(p):
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)


if __name__ == "__main__":
    sys.exit(drive(arguments, scenarios, TRACE))
