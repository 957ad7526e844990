"""Drives the gateway of envoy/envoy-providers.yaml with the official
`openai` and `anthropic` SDKs, each with the app's own key (never a
provider's: the gateway's clusters inject those).

Run by tests/providers.rs; one JSON object per scenario on stdout.

    python providers.py --port P --user-gpt U --user-claude U [--user-other U] SCENARIO...
"""

import anthropic
import openai
from driver import drive

# The apps' own keys; tests/providers.rs checks no provider ever sees them.
CLIENT_OPENAI_KEY = "sk-client-openai-app-0001"
CLIENT_ANTHROPIC_KEY = "sk-ant-client-app-0002"
TRACE = {"id": "0" * 31 + "1"}


def add_arguments(p):
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user-gpt", required=True)
    p.add_argument("--user-claude", required=True)
    p.add_argument("--user-other", default="nobody")


def headers(user):
    return {
        "traceparent": f"00-{TRACE['id']}-00f067aa0ba902b7-01",
        "x-user-id": user,
    }


def oa(args):
    return openai.OpenAI(
        api_key=CLIENT_OPENAI_KEY,
        base_url=f"http://127.0.0.1:{args.port}/v1",
        max_retries=0,
        timeout=20,
    )


def an(args):
    return anthropic.Anthropic(
        api_key=CLIENT_ANTHROPIC_KEY,
        base_url=f"http://127.0.0.1:{args.port}",
        max_retries=0,
        timeout=20,
    )


def chat(args, user):
    raw = oa(args).chat.completions.with_raw_response.create(
        model="app-model",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers=headers(user),
    )
    c = raw.parse()
    return {
        "text": c.choices[0].message.content,
        "model": c.model,
        "variant": raw.headers.get("x-llm-variant"),
    }


def chat_stream(args, user):
    stream = oa(args).chat.completions.create(
        model="app-model",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        extra_headers=headers(user),
    )
    text = "".join(
        chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
    )
    return {"text": text}


def messages(args):
    raw = an(args).messages.with_raw_response.create(
        model="app-model",
        max_tokens=256,
        messages=[{"role": "user", "content": "hello"}],
        extra_headers=headers(args.user_gpt),
    )
    m = raw.parse()
    return {
        "text": m.content[0].text,
        "model": m.model,
        "variant": raw.headers.get("x-llm-variant"),
    }


def scenarios(args):
    return {
        "chat_gpt": lambda: chat(args, args.user_gpt),
        "chat_claude": lambda: chat(args, args.user_claude),
        "chat_claude_stream": lambda: chat_stream(args, args.user_claude),
        "chat_other": lambda: chat(args, args.user_other),
        "messages": lambda: messages(args),
    }


if __name__ == "__main__":
    drive(add_arguments, scenarios, TRACE)
