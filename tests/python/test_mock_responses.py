"""The official OpenAI and Anthropic Python SDKs against the mock upstream itself: its OpenAI
Responses API (`client.responses.create`, streamed and not, the SDK's `responses.stream` helper
that rebuilds the final response from the events, retrieve/delete, `previous_response_id`) and
Anthropic `messages.count_tokens`. The SDKs parse every event into their typed models, so a
field the mock got wrong shows up here.

Starts `switchyard-mock-upstream` on a free port. Run with: pytest tests/python (after
`cargo build -p switchyard-mock --bin switchyard-mock-upstream`), or bash tests/sdk.sh.
"""

import os
import pathlib
import socket
import subprocess

import anthropic
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("SWITCHYARD_BIN_DIR", ROOT / "target" / "debug"))
MOCK = BIN_DIR / "switchyard-mock-upstream"
OPENAI_KEY = "sk-mock-responses-test"
ANTHROPIC_KEY = "sk-ant-mock-count-test"

TOOLS = [{
    "type": "function",
    "name": "lookup",
    "description": "Look something up",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mock_url():
    if not MOCK.exists():
        pytest.fail(f"{MOCK} is missing: run `cargo build -p switchyard-mock --bin switchyard-mock-upstream`")
    proc = subprocess.Popen(
        [str(MOCK), "--listen", f"127.0.0.1:{free_port()}", "--require-key", OPENAI_KEY,
         "--anthropic-key", ANTHROPIC_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    prefix = "switchyard-mock-upstream listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise RuntimeError(f"unexpected first line from the mock: {line!r}")
    yield line[len(prefix):]
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def client(mock_url):
    return openai.OpenAI(base_url=mock_url + "/v1", api_key=OPENAI_KEY, max_retries=0)


def test_create_non_stream(client):
    r = client.responses.create(model="demo-fast", instructions="Be brief.", input="hello sdk")
    assert r.id.startswith("resp_mock_")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text == "mock reply: hello sdk"
    assert r.usage.input_tokens == 4
    assert r.usage.output_tokens == 4
    assert r.usage.total_tokens == 8
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    assert r.output[0].type == "message" and r.output[0].role == "assistant"


def test_stream_events_and_the_sdk_helper(client):
    events = list(client.responses.create(model="demo-fast", input="stream it now", stream=True))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "mock reply: stream it now"
    assert events[-1].response.usage.output_tokens == 5

    # The SDK's accumulating helper rebuilds the final response from the events.
    with client.responses.stream(model="demo-fast", input="helper stream") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "mock reply: helper stream"
    assert final.output_text == "mock reply: helper stream"
    assert final.status == "completed"


def test_function_call_then_its_output(client):
    r = client.responses.create(model="demo-fast", tools=TOOLS, input="please call tool lookup")
    call = r.output[0]
    assert call.type == "function_call" and call.name == "lookup"
    assert call.call_id.startswith("call_mock_")
    assert call.arguments == '{"q":"please call tool lookup"}'

    follow = client.responses.create(
        model="demo-fast", tools=TOOLS, previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "it is sunny"}],
    )
    assert follow.previous_response_id == r.id
    assert follow.output_text == "mock reply: please call tool lookup"
    assert follow.usage.input_tokens == r.usage.total_tokens + 3

    with client.responses.stream(model="demo-fast", tools=TOOLS, input="call tool lookup") as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    assert args == '{"q":"call tool lookup"}'
    assert final.output[0].type == "function_call" and final.output[0].arguments == args


def test_reasoning_summary(client):
    r = client.responses.create(model="demo-smart", input="think hard", reasoning={"effort": "low", "summary": "auto"})
    assert r.output[0].type == "reasoning"
    assert r.output[0].summary[0].text == "mock thinking: think hard"
    assert r.usage.output_tokens_details.reasoning_tokens == 4
    with client.responses.stream(model="demo-smart", input="think hard",
                                 reasoning={"effort": "low", "summary": "auto"}) as stream:
        summary = "".join(e.delta for e in stream if e.type == "response.reasoning_summary_text.delta")
        final = stream.get_final_response()
    assert summary == "mock thinking: think hard"
    assert final.output[0].summary[0].text == summary


def test_retrieve_delete_and_unknown_previous_response(client):
    r = client.responses.create(model="demo-fast", input="keep this")
    assert client.responses.retrieve(r.id).output_text == "mock reply: keep this"
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="demo-fast", input="x", previous_response_id=r.id)
    assert e.value.code == "previous_response_not_found"


def test_errors_reach_the_sdk(client, mock_url):
    with pytest.raises(openai.APIError) as e:
        for _ in client.responses.create(model="demo-fast+error_event+message=mock overload", input="a b",
                                         stream=True):
            pass
    assert "mock overload" in str(e.value)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="demo-fast+status=429", input="x")
    wrong = openai.OpenAI(base_url=mock_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.responses.create(model="demo-fast", input="x")


def anthropic_client(mock_url, key):
    # This SDK sends its key as `Authorization: Bearer`; the mock, like the gateway's tests,
    # checks `x-api-key`, so the key goes there too.
    return anthropic.Anthropic(base_url=mock_url, api_key=key, default_headers={"x-api-key": key},
                               max_retries=0)


def test_anthropic_count_tokens(mock_url):
    client = anthropic_client(mock_url, ANTHROPIC_KEY)
    counted = client.messages.count_tokens(
        model="demo-smart", system="Be brief.",
        messages=[{"role": "user", "content": "count these four words"}],
    )
    assert counted.input_tokens == 6
    wrong = anthropic_client(mock_url, "sk-ant-wrong")
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.count_tokens(model="demo-smart", messages=[{"role": "user", "content": "x"}])
