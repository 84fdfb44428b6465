"""The official OpenAI Python SDK, unmodified, against a running corelay.

corelay's promise is that an OpenAI client only changes its base_url. This
check holds it to that with the real SDK: the response types it parses, the
stream iterator it builds, and the exception class it raises for each status.

It expects corelay in front of corelay-mock, as tests/sdk/run.sh sets up:
  CORELAY_BASE_URL        e.g. http://127.0.0.1:PORT/v1
  CORELAY_KEY             a key allowed ["bench-*", "fast"]
  CORELAY_EMBED_ONLY_KEY  a key allowed ["bench-embed"] only
The model bench-broken is served by a mock that answers every request 500.

It prints one line per check and ends with "N passed, M failed"; the exit
status is non-zero when any check failed.
"""

import json
import os
import sys
import traceback

import openai

BASE_URL = os.environ["CORELAY_BASE_URL"]
KEY = os.environ["CORELAY_KEY"]
EMBED_ONLY_KEY = os.environ["CORELAY_EMBED_ONLY_KEY"]

MESSAGES = [{"role": "user", "content": "hi"}]


def client(key=KEY):
    # max_retries=0: a failure must show up here, not be hidden by a retry.
    return openai.OpenAI(base_url=BASE_URL, api_key=key, max_retries=0, timeout=30)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_error(exception_class, status, call):
    """Runs `call` and checks it raised `exception_class` with `status`."""
    try:
        call()
    except exception_class as e:
        check(e.status_code == status, f"status {e.status_code}, expected {status}")
        check(isinstance(e.body, dict) and "message" in e.body, f"not an OpenAI error body: {e.body!r}")
        return
    except openai.APIStatusError as e:
        raise AssertionError(f"raised {type(e).__name__} (status {e.status_code}), expected {exception_class.__name__}")
    raise AssertionError(f"no exception, expected {exception_class.__name__}")


def chat_non_stream():
    r = client().chat.completions.create(model="bench-chat", messages=MESSAGES)
    check(r.object == "chat.completion", f"object {r.object!r}")
    check(r.model == "bench-chat", f"model {r.model!r}")
    content = r.choices[0].message.content
    check(isinstance(content, str) and content, f"content {content!r}")
    check(r.choices[0].finish_reason == "stop", f"finish_reason {r.choices[0].finish_reason!r}")
    check(r.usage is not None and r.usage.prompt_tokens > 0, f"usage {r.usage!r}")
    check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage {r.usage!r}")


def chat_alias():
    # The provider sees the real model name: the mock echoes it back.
    r = client().chat.completions.create(model="fast", messages=MESSAGES)
    check(r.model == "bench-chat", f"model {r.model!r}")
    check(r.choices[0].message.content, "empty content")


def stream_chunks(**extra):
    stream = client().chat.completions.create(model="bench-chat", messages=MESSAGES, stream=True, **extra)
    return list(stream)


def chat_stream():
    chunks = stream_chunks()
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    check(len(content) >= 2, f"{len(content)} content chunks, expected at least 2")
    usage = [c for c in chunks if c.usage is not None]
    check(not usage, f"{len(usage)} usage chunks although the client did not ask for usage")
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check(finish == ["stop"], f"finish reasons {finish!r}")


def chat_stream_with_usage():
    chunks = stream_chunks(stream_options={"include_usage": True})
    usage = [i for i, c in enumerate(chunks) if c.usage is not None]
    check(usage == [len(chunks) - 1], f"usage in chunks {usage} of {len(chunks)}, expected only the last")
    last = chunks[-1]
    check(last.choices == [], f"usage chunk has choices {last.choices!r}")
    check(last.usage.completion_tokens > 0, f"usage {last.usage!r}")
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    check(len(content) >= 2, f"{len(content)} content chunks, expected at least 2")


def embeddings():
    r = client().embeddings.create(model="bench-embed", input="hello")
    check(len(r.data) == 1, f"{len(r.data)} vectors, expected 1")
    check(len(r.data[0].embedding) > 0, "empty vector")
    check(r.model == "bench-embed", f"model {r.model!r}")


def models_list():
    ids = {m.id for m in client().models.list()}
    for expected in ("bench-chat", "bench-embed", "fast"):
        check(expected in ids, f"{expected} missing from {sorted(ids)}")
    limited = {m.id for m in client(EMBED_ONLY_KEY).models.list()}
    check(limited == {"bench-embed"}, f"the embed-only key sees {sorted(limited)}")


def wrong_key():
    expect_error(
        openai.AuthenticationError,
        401,
        lambda: client("sk-not-a-key-of-ours").chat.completions.create(model="bench-chat", messages=MESSAGES),
    )


def unknown_model():
    expect_error(
        openai.NotFoundError,
        404,
        lambda: client().chat.completions.create(model="no-such-model", messages=MESSAGES),
    )


def missing_messages():
    # corelay forwards the body; the provider refuses it, and its 400 and
    # error body reach the client as they were.
    expect_error(
        openai.BadRequestError,
        400,
        lambda: client().chat.completions.create(model="bench-chat", messages=openai.NOT_GIVEN),
    )


def missing_model():
    # corelay itself refuses a body without a model.
    expect_error(
        openai.BadRequestError,
        400,
        lambda: client().chat.completions.create(model=openai.NOT_GIVEN, messages=MESSAGES),
    )


def model_not_allowed():
    expect_error(
        openai.PermissionDeniedError,
        403,
        lambda: client(EMBED_ONLY_KEY).chat.completions.create(model="bench-chat", messages=MESSAGES),
    )


def provider_error():
    # The provider's status and body pass through.
    expect_error(
        openai.InternalServerError,
        500,
        lambda: client().chat.completions.create(model="bench-broken", messages=MESSAGES),
    )


# Models served by corelay-mock in the other dialects (tests/sdk/run.sh).
TRANSLATED = ["claude-mock", "gemini-mock", "bedrock-mock"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def translated_chat():
    for model in TRANSLATED:
        r = client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=64)
        check(r.object == "chat.completion", f"{model}: object {r.object!r}")
        check(r.choices[0].message.content, f"{model}: empty content")
        check(r.choices[0].finish_reason == "stop", f"{model}: finish_reason {r.choices[0].finish_reason!r}")
        check(r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, f"{model}: usage {r.usage!r}")


def translated_stream():
    for model in TRANSLATED:
        chunks = list(client().chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, max_tokens=64))
        ids = {c.id for c in chunks}
        check(len(ids) == 1, f"{model}: ids {ids!r}")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        check(text, f"{model}: no text streamed")
        check(chunks[-1].usage is not None and chunks[-1].choices == [], f"{model}: no usage chunk last")


def translated_stream_tool_calls():
    for model in TRANSLATED:
        messages = [{"role": "user", "content": "Weather in Paris? [mock:tool=get_weather]"}]
        chunks = list(client().chat.completions.create(
            model=model, messages=messages, tools=[WEATHER_TOOL], stream=True, max_tokens=64))
        calls = {}
        finish = None
        for c in chunks:
            if not c.choices:
                continue
            finish = c.choices[0].finish_reason or finish
            for call in c.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                if call.id:
                    entry["id"] = call.id
                if call.function and call.function.name:
                    entry["name"] = call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
        check(list(calls) == [0], f"{model}: tool call indexes {list(calls)!r}")
        call = calls[0]
        check(call["id"] and call["name"] == "get_weather", f"{model}: call {call!r}")
        check(json.loads(call["arguments"]) == {"city": "Paris"}, f"{model}: arguments {call['arguments']!r}")
        check(finish == "tool_calls", f"{model}: finish_reason {finish!r}")
        # The call goes back as history with its result: the provider takes it.
        history = messages + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call["id"], "type": "function", "function": {"name": "get_weather", "arguments": call["arguments"]}}]},
            {"role": "tool", "tool_call_id": call["id"], "content": "21C"},
        ]
        r = client().chat.completions.create(model=model, messages=history, tools=[WEATHER_TOOL], max_tokens=64)
        check(r.choices[0].message.content, f"{model}: no answer after the tool result")


def translated_errors():
    for model in TRANSLATED:
        expect_error(openai.RateLimitError, 429, lambda: client().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "[mock:status=429]"}], max_tokens=8))
        try:
            list(client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "[mock:error-mid-stream]"}], stream=True, max_tokens=8))
        except openai.APIError:
            pass
        else:
            raise AssertionError(f"{model}: an error after the 200 did not raise")


CHECKS = [
    ("chat, non-stream", chat_non_stream),
    ("chat through an alias", chat_alias),
    ("chat, stream", chat_stream),
    ("chat, stream with include_usage", chat_stream_with_usage),
    ("embeddings", embeddings),
    ("models list", models_list),
    ("wrong key: AuthenticationError", wrong_key),
    ("unknown model: NotFoundError", unknown_model),
    ("missing messages: BadRequestError", missing_messages),
    ("missing model: BadRequestError", missing_model),
    ("model not allowed for the key: PermissionDeniedError", model_not_allowed),
    ("provider 500: InternalServerError", provider_error),
    ("Anthropic, Gemini and Bedrock providers: chat", translated_chat),
    ("Anthropic, Gemini and Bedrock providers: stream with usage", translated_stream),
    ("Anthropic, Gemini and Bedrock providers: streamed tool calls and the round trip", translated_stream_tool_calls),
    ("Anthropic, Gemini and Bedrock providers: 429 and an error mid-stream", translated_errors),
]


def main():
    print(f"openai {openai.__version__} against {BASE_URL}")
    passed = failed = 0
    for name, run in CHECKS:
        try:
            run()
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if not isinstance(e, (AssertionError, openai.APIError)):
                traceback.print_exc(limit=3)
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
