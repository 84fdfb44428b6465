"""The official Anthropic Python SDK, unmodified, against corelay's /v1/messages.

corelay's Anthropic front door translates to any provider. This check points
the real SDK at corelay in front of an OpenAI-dialect provider (corelay-mock,
as tests/sdk/run.sh sets up) and holds it to Anthropic's wire format: the
message type the SDK parses, the event stream its helpers accumulate, and
the exception class it raises for each status.
  CORELAY_ROOT_URL  e.g. http://127.0.0.1:PORT (the SDK appends /v1/messages)
  CORELAY_KEY       a key allowed ["bench-*", "fast"]
The model bench-broken is served by a mock that answers every request 500.

It prints one line per check and ends with "N passed, M failed"; the exit
status is non-zero when any check failed.
"""

import os
import sys
import traceback

import anthropic

ROOT_URL = os.environ["CORELAY_ROOT_URL"]
KEY = os.environ["CORELAY_KEY"]

MESSAGES = [{"role": "user", "content": "hi"}]


def client(key=KEY):
    return anthropic.Anthropic(base_url=ROOT_URL, api_key=key, max_retries=0, timeout=30)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_error(exception_class, status, call):
    try:
        call()
    except exception_class as e:
        check(e.status_code == status, f"status {e.status_code}, expected {status}")
        body = e.body
        check(isinstance(body, dict) and body.get("type") == "error", f"not an Anthropic error body: {body!r}")
        return
    except anthropic.APIStatusError as e:
        raise AssertionError(f"raised {type(e).__name__} (status {e.status_code}), expected {exception_class.__name__}")
    raise AssertionError(f"no exception, expected {exception_class.__name__}")


def messages_non_stream():
    m = client().messages.create(model="bench-chat", max_tokens=64, system="Be brief.", messages=MESSAGES)
    check(m.type == "message" and m.role == "assistant", f"type {m.type!r} role {m.role!r}")
    check(m.content and m.content[0].type == "text" and m.content[0].text, f"content {m.content!r}")
    check(m.stop_reason == "end_turn", f"stop_reason {m.stop_reason!r}")
    check(m.usage.input_tokens > 0 and m.usage.output_tokens > 0, f"usage {m.usage!r}")


def messages_stream():
    with client().messages.stream(model="bench-chat", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text, "no text streamed")
    check(final.content[0].text == text, f"final text {final.content[0].text!r} != streamed {text!r}")
    check(final.stop_reason == "end_turn", f"stop_reason {final.stop_reason!r}")
    check(final.usage.output_tokens > 0, f"usage {final.usage!r}")


def messages_stream_raw_events():
    events = list(client().messages.create(model="fast", max_tokens=64, messages=MESSAGES, stream=True))
    kinds = [e.type for e in events]
    check(kinds[0] == "message_start", f"first event {kinds[0]!r}")
    check(kinds[-2:] == ["message_delta", "message_stop"], f"last events {kinds[-2:]!r}")
    check("content_block_start" in kinds and "content_block_stop" in kinds, f"events {kinds!r}")


def tools_round_trip_is_accepted():
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}]},
    ]
    m = client().messages.create(model="bench-chat", max_tokens=64, tools=tools, messages=history)
    check(m.content[0].type == "text", f"content {m.content!r}")


def missing_key_is_authentication_error():
    expect_error(anthropic.AuthenticationError, 401, lambda: client("sk-wrong-key-000").messages.create(
        model="bench-chat", max_tokens=8, messages=MESSAGES))


def unknown_model_is_not_found():
    expect_error(anthropic.NotFoundError, 404, lambda: client().messages.create(
        model="no-such-model", max_tokens=8, messages=MESSAGES))


def bad_request_is_bad_request_error():
    expect_error(anthropic.BadRequestError, 400, lambda: client().messages.create(
        model="bench-chat", max_tokens=8, messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]}]))


def upstream_failure_is_an_api_status_error():
    expect_error(anthropic.InternalServerError, 500, lambda: client().messages.create(
        model="bench-broken", max_tokens=8, messages=MESSAGES))


# One model per provider dialect behind corelay (tests/sdk/run.sh).
EVERY_PROVIDER = ["bench-chat", "claude-mock", "gemini-mock", "bedrock-mock"]
WEATHER_TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def tool_use_stream_from_every_provider():
    for model in EVERY_PROVIDER:
        messages = [{"role": "user", "content": "Weather in Paris? [mock:tool=get_weather]"}]
        with client().messages.stream(model=model, max_tokens=64, tools=[WEATHER_TOOL], messages=messages) as stream:
            final = stream.get_final_message()
        uses = [b for b in final.content if b.type == "tool_use"]
        check(len(uses) == 1, f"{model}: content {final.content!r}")
        check(uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}, f"{model}: tool_use {uses[0]!r}")
        check(final.stop_reason == "tool_use", f"{model}: stop_reason {final.stop_reason!r}")
        history = messages + [
            {"role": "assistant", "content": [{"type": "tool_use", "id": uses[0].id, "name": "get_weather", "input": uses[0].input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "21C"}]},
        ]
        m = client().messages.create(model=model, max_tokens=64, tools=[WEATHER_TOOL], messages=history)
        check(m.content and m.content[0].type == "text", f"{model}: answer after the tool result {m.content!r}")


def provider_errors_in_anthropic_shape():
    for model in EVERY_PROVIDER:
        expect_error(anthropic.RateLimitError, 429, lambda: client().messages.create(
            model=model, max_tokens=8, messages=[{"role": "user", "content": "[mock:status=429]"}]))


def count_tokens_where_the_provider_counts():
    for model in ["claude-mock", "gemini-mock", "bedrock-mock"]:
        counted = client().messages.count_tokens(model=model, system="Be brief.", messages=MESSAGES)
        check(counted.input_tokens > 0, f"{model}: {counted!r}")
    expect_error(anthropic.BadRequestError, 400, lambda: client().messages.count_tokens(
        model="bench-chat", messages=MESSAGES))


CHECKS = [
    messages_non_stream,
    messages_stream,
    messages_stream_raw_events,
    tools_round_trip_is_accepted,
    missing_key_is_authentication_error,
    unknown_model_is_not_found,
    bad_request_is_bad_request_error,
    upstream_failure_is_an_api_status_error,
    tool_use_stream_from_every_provider,
    provider_errors_in_anthropic_shape,
    count_tokens_where_the_provider_counts,
]


def main():
    failed = 0
    for c in CHECKS:
        try:
            c()
            print(f"ok    anthropic {c.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL  anthropic {c.__name__}")
            traceback.print_exc()
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
