"""The official OpenAI and Anthropic Python SDKs against a real Switchyard data plane.

Starts `switchyard-mock-upstream` and `switchyard-dataplane` on free ports, the data plane over a
manifest set with an OpenAI-dialect provider (`demo`) and an Anthropic provider (`claude`, api_key
from a Secret, which the mock requires), so each SDK is tested both against its own dialect and
through translation, and a TaskChain (`feedback`) answered as the model `chain/feedback`.
Run with: pytest tests/python (after
`cargo build -p switchyard-mock -p switchyard-dataplane --bin switchyard-mock-upstream --bin switchyard-dataplane`),
or bash tests/sdk.sh.
"""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

import anthropic
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("SWITCHYARD_BIN_DIR", ROOT / "target" / "debug"))
MOCK = BIN_DIR / "switchyard-mock-upstream"
DATAPLANE = BIN_DIR / "switchyard-dataplane"
BUILD = "cargo build -p switchyard-mock -p switchyard-dataplane --bin switchyard-mock-upstream --bin switchyard-dataplane"
ANTHROPIC_KEY = "sk-ant-sdk-test-0000000000000000"

MANIFESTS = """
apiVersion: v1
kind: Secret
metadata: {{name: claude-key}}
stringData: {{key: {key}}}
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: demo}}
spec:
  type: openai
  endpoint: http://127.0.0.1:{up}/v1
  models: [{{name: demo-fast, capabilities: {{tools: true}}}}]
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: claude}}
spec:
  type: anthropic
  endpoint: http://127.0.0.1:{up}
  auth: {{type: api_key, secretRef: {{name: claude-key, key: key}}}}
  models: [{{name: claude-test, capabilities: {{tools: true}}}}]
---
apiVersion: switchyard.dev/v1alpha1
kind: Workspace
metadata: {{name: default}}
spec: {{default: true}}
---
apiVersion: switchyard.dev/v1alpha1
kind: MuxRule
metadata: {{name: mock-directives}}
spec:
  workspaceRef: default
  priority: 10
  matcher: {{type: model, pattern: "demo-fast+*"}}
  target: {{providerRef: demo}}
---
apiVersion: switchyard.dev/v1alpha1
kind: TaskChain
metadata: {{name: feedback}}
spec:
  tasks:
    - id: classify
      handler: condition_key
      validConditions: [positive, negative]
      promptTemplate: "Positive or negative? {{{{.input}}}}"
      execute: {{model: "demo-fast+reply=positive"}}
      transition:
        branches:
          - {{operator: equals, when: positive, goto: thank}}
          - {{operator: default, goto: end}}
    - id: thank
      handler: model_execution
      inputVar: input
      execute: {{model: demo-fast}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway():
    for binary in (MOCK, DATAPLANE):
        if not binary.exists():
            pytest.fail(f"{binary} is missing: run `{BUILD}`")
    up, gw, admin = free_port(), free_port(), free_port()
    tmp = tempfile.TemporaryDirectory()
    manifests = pathlib.Path(tmp.name) / "manifests"
    manifests.mkdir()
    (manifests / "all.yaml").write_text(MANIFESTS.format(up=up, key=ANTHROPIC_KEY))
    log = open(pathlib.Path(tmp.name) / "gateway.log", "w")
    mock = subprocess.Popen(
        [str(MOCK), "--listen", f"127.0.0.1:{up}", "--anthropic-key", ANTHROPIC_KEY],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc = subprocess.Popen(
        [str(DATAPLANE), "--listen", f"127.0.0.1:{gw}", "--admin-listen", f"127.0.0.1:{admin}",
         "--manifests", str(manifests),
         "--spool-dir", str(pathlib.Path(tmp.name) / "spool")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{gw}"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None or mock.poll() is not None:
            proc.kill()
            mock.kill()
            raise RuntimeError("gateway did not become ready: " + open(log.name).read())
        time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=10)
    mock.terminate()
    mock.wait(timeout=10)
    tmp.cleanup()


TOOLS_OPENAI = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}]
TOOLS_ANTHROPIC = [{
    "name": "lookup",
    "description": "Look something up",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}]


@pytest.mark.parametrize("model", ["demo-fast", "claude-test"])
def test_openai_chat(gateway, model):
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello switchyard"}])
    assert r.choices[0].message.content.startswith("mock reply: hello switchyard")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["demo-fast", "claude-test"])
def test_openai_stream(gateway, model):
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    text, finish, usage = "", None, None
    stream = client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream this please"}],
    )
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text.startswith("mock reply: stream this please")
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["demo-fast", "claude-test"])
def test_openai_tool_call(gateway, model):
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    r = client.chat.completions.create(
        model=model, tools=TOOLS_OPENAI,
        messages=[{"role": "user", "content": "please call tool lookup"}],
    )
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls"
    assert calls and calls[0].function.name == "lookup"
    assert isinstance(json.loads(calls[0].function.arguments), dict)


@pytest.mark.parametrize("model", ["claude-test", "demo-fast"])
def test_anthropic_message(gateway, model):
    client = anthropic.Anthropic(base_url=gateway, api_key="unused")
    r = client.messages.create(
        model=model, max_tokens=64, system="You are terse.",
        messages=[{"role": "user", "content": "hello claude"}],
    )
    assert r.content[0].type == "text"
    assert r.content[0].text.startswith("mock reply: hello claude")
    assert r.stop_reason == "end_turn"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude-test", "demo-fast"])
def test_anthropic_stream(gateway, model):
    client = anthropic.Anthropic(base_url=gateway, api_key="unused")
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream it"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("mock reply: stream it")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude-test", "demo-fast"])
def test_anthropic_tool_use(gateway, model):
    client = anthropic.Anthropic(base_url=gateway, api_key="unused")
    r = client.messages.create(
        model=model, max_tokens=64, tools=TOOLS_ANTHROPIC,
        messages=[{"role": "user", "content": "please call tool lookup"}],
    )
    blocks = [b for b in r.content if b.type == "tool_use"]
    assert r.stop_reason == "tool_use"
    assert blocks and blocks[0].name == "lookup" and isinstance(blocks[0].input, dict)


def test_error_shapes_reach_the_sdks(gateway):
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert "no-such-model" in str(e.value)
    aclient = anthropic.Anthropic(base_url=gateway, api_key="unused")
    with pytest.raises(anthropic.NotFoundError):
        aclient.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_openai_task_chain(gateway):
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused")
    r = client.chat.completions.create(
        model="chain/feedback", messages=[{"role": "user", "content": "I love this gateway"}],
    )
    assert r.model == "chain/feedback"
    assert r.choices[0].message.content == "mock reply: I love this gateway"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0

    # The chain's own endpoint as the base URL, with the stack trace.
    chain = openai.OpenAI(base_url=gateway + "/v1/chains/feedback", api_key="unused")
    r = chain.chat.completions.create(
        model="feedback", messages=[{"role": "user", "content": "great"}],
        extra_query={"stackTrace": "true"},
    )
    trace = r.to_dict()["stackTrace"]
    assert [u["taskID"] for u in trace] == ["classify", "thank"]
    assert trace[0]["transition"] == "positive"

    text, finish, usage = "", None, None
    stream = client.chat.completions.create(
        model="chain/feedback", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream the chain"}],
    )
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "mock reply: stream the chain"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0

    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="chain/nope", messages=[{"role": "user", "content": "x"}])
    assert "chain \"nope\" not found" in str(e.value)
