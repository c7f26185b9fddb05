"""The real Claude Code CLI (`claude -p`, from npm) against a real Switchyard data plane.

Starts `switchyard-mock-upstream` (port 0, its address read from its `listening on` line) and
`switchyard-dataplane` over a manifest set with an Anthropic-dialect provider (`claude`, the
mock's `/v1/messages`, api_key from a Secret) and an OpenAI-dialect provider (`demo`, the mock's
`/v1/chat/completions`), plus a glob MuxRule sending every other `claude-*` model (Claude Code's
"haiku" side calls) to `claude`. Claude Code runs in print mode with a throwaway HOME, only the
gateway as its API (`ANTHROPIC_BASE_URL`), telemetry, auto-update, error reporting and other
non-essential traffic off, and a hard timeout per run.

The tool loop: the prompt says `call tool Bash with {"command": "echo …"}`, so the mock's first
answer is a `tool_use` of Claude Code's built-in Bash tool; Claude Code runs it (in a temp dir,
allowed by `--allowedTools "Bash(echo:*)"`) and sends the tool_result; the mock's answer to that
turn (the last turn is a tool result, so no trigger) is the final text, which echoes the tool's
output.
The gateway's `--records-file` must show both calls with client `claude-code`, the session id
given by `--session-id`, and usage.

Run with bash tests/agents.sh (installs Claude Code under target/, builds the binaries), or
CLAUDE_BIN=… pytest tests/agents after building them.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN_DIR = pathlib.Path(os.environ.get("SWITCHYARD_BIN_DIR", ROOT / "target" / "debug"))
MOCK = BIN_DIR / "switchyard-mock-upstream"
DATAPLANE = BIN_DIR / "switchyard-dataplane"
CLAUDE = pathlib.Path(
    os.environ.get("CLAUDE_BIN", ROOT / "target" / "agents-npm" / "node_modules" / ".bin" / "claude")
)
BUILD = "cargo build -p switchyard-mock -p switchyard-dataplane --bin switchyard-mock-upstream --bin switchyard-dataplane"
ANTHROPIC_KEY = "sk-ant-agents-test-000000000000"
# What Claude Code sends as its key: the gateway has no gateway keys here, so it is ignored and
# the provider's Secret is used upstream. Never a real key.
CLIENT_KEY = "sk-ant-client-placeholder-0000"
RUN_TIMEOUT = int(os.environ.get("CLAUDE_RUN_TIMEOUT", "120"))

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
  endpoint: {up}/v1
  models: [{{name: demo-fast, capabilities: {{tools: true}}}}]
---
apiVersion: switchyard.dev/v1alpha1
kind: Provider
metadata: {{name: claude}}
spec:
  type: anthropic
  endpoint: {up}
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
metadata: {{name: claude-side-calls}}
spec:
  workspaceRef: default
  priority: 5
  matcher: {{type: model, pattern: "claude-*"}}
  target: {{providerRef: claude}}
"""


def logged_addrs(log_path, message, keys):
    """The addresses the data plane logged (JSON log lines) with `message`: it binds port 0 and
    says where it listens, as tests/src/harness.rs `logged_addrs` reads them."""
    text = log_path.read_text() if log_path.exists() else ""
    for line in text.splitlines():
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if str(fields.get("message", "")).startswith(message) and all(k in fields for k in keys):
            return tuple(fields[k] for k in keys)
    return (None,) * len(keys)


@pytest.fixture(scope="module")
def claude_bin():
    if not CLAUDE.exists():
        msg = f"{CLAUDE} is missing: run bash tests/agents.sh (installs Claude Code from npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return CLAUDE


@pytest.fixture(scope="module")
def gateway():
    for binary in (MOCK, DATAPLANE):
        if not binary.exists():
            pytest.fail(f"{binary} is missing: run `{BUILD}`")
    tmp = tempfile.TemporaryDirectory()
    work = pathlib.Path(tmp.name)
    log = open(work / "gateway.log", "w")
    mock = subprocess.Popen(
        [str(MOCK), "--listen", "127.0.0.1:0", "--anthropic-key", ANTHROPIC_KEY],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line = mock.stdout.readline()
    found = re.search(r"listening on (http://\S+)", line)
    if not found:
        mock.kill()
        raise RuntimeError(f"mock upstream did not start: {line!r}")
    up = found.group(1).rstrip("/")
    manifests = work / "manifests"
    manifests.mkdir()
    (manifests / "all.yaml").write_text(MANIFESTS.format(up=up, key=ANTHROPIC_KEY))
    records = work / "records.jsonl"
    log_path = work / "gateway.log"
    proc = subprocess.Popen(
        [str(DATAPLANE), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--log-format", "json",
         "--manifests", str(manifests), "--records-file", str(records),
         "--spool-dir", str(work / "spool")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": "info"},
    )
    deadline = time.time() + 30
    gw = admin = None
    while True:
        if gw is None:
            gw, admin = logged_addrs(log_path, "data plane listening", ("addr", "admin_addr"))
        if admin is not None:
            try:
                with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
        if time.time() > deadline or proc.poll() is not None or mock.poll() is not None:
            proc.kill()
            mock.kill()
            raise RuntimeError("gateway did not become ready: " + log_path.read_text())
        time.sleep(0.1)
    yield {"base": f"http://{gw}", "records": records, "log": log_path}
    keep = os.environ.get("SWITCHYARD_AGENTS_KEEP")
    if keep:  # for a look at what Claude Code sent: the records and the gateway's log
        pathlib.Path(keep).mkdir(parents=True, exist_ok=True)
        for f in (records, work / "gateway.log"):
            if f.exists():
                shutil.copy(f, pathlib.Path(keep) / f.name)
        with urllib.request.urlopen(f"{up}/_mock/requests", timeout=5) as r:
            (pathlib.Path(keep) / "upstream-requests.json").write_bytes(r.read())
    proc.terminate()
    proc.wait(timeout=10)
    mock.terminate()
    mock.wait(timeout=10)
    mock.stdout.close()
    log.close()
    tmp.cleanup()


def records_for(gateway, session, model, at_least=1):
    """The data plane's records of `session` for `model`, waiting (up to 10 s) for `at_least` of
    them: a record is written when its response has ended, which can be after Claude Code exits.
    Any other call of the session (count_tokens, a "haiku" side call) must have been routed and
    answered: it is listed in the failure message, not ignored."""
    deadline = time.time() + 10
    while True:
        session_recs = []
        if gateway["records"].exists():
            for line in gateway["records"].read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    if rec.get("session_id") == session:
                        session_recs.append(rec)
        found = [r for r in session_recs if r["model_requested"] == model]
        if len(found) >= at_least or time.time() > deadline:
            break
        time.sleep(0.2)
    for rec in session_recs:
        assert rec["status"] == 200 and rec["client"] == "claude-code", (
            f"a call Claude Code made was not served: {rec['endpoint']} {rec['model_requested']} "
            f"-> {rec['status']} {rec.get('error')}"
        )
    return sorted(found, key=lambda r: r["started_at"])


def run_claude(claude_bin, gateway, model, prompt, session, cwd):
    home = pathlib.Path(cwd) / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "TMPDIR": str(cwd),
        "ANTHROPIC_BASE_URL": gateway["base"],
        "ANTHROPIC_API_KEY": CLIENT_KEY,
        # Side calls ("haiku" titles, summaries) go to a model the claude-* MuxRule routes.
        "ANTHROPIC_SMALL_FAST_MODEL": "claude-side-haiku",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-side-haiku",
        # Claude Code docs, "Environment variables" (code.claude.com/docs/en/env-vars): the
        # first implies the next four; each is set anyway in case a version splits them.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "NO_COLOR": "1",
        "CI": "true",
    }
    cmd = [str(claude_bin), "-p", prompt, "--model", model, "--session-id", session,
           "--output-format", "json", "--max-turns", "4",
           # Only `echo` may run (print mode asks no one, so anything else is refused).
           # Not --dangerously-skip-permissions: Claude Code refuses it as root (CI is root).
           "--allowedTools", "Bash(echo:*)"]
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"claude -p timed out after {RUN_TIMEOUT}s; stdout={e.stdout!r} stderr={e.stderr!r}\n"
                    + gateway["log"].read_text()[-4000:])
    assert done.returncode == 0, (
        f"claude -p exited {done.returncode}: stdout={done.stdout[-4000:]!r} stderr={done.stderr[-4000:]!r}\n"
        + gateway["log"].read_text()[-4000:]
    )
    out = json.loads(done.stdout)
    assert out.get("is_error") is False, out
    return out


# (model Claude Code asks for, provider type that serves it, provider key); the id names the dialect
TARGETS = [
    pytest.param("claude-test", "anthropic", "default/claude", id="anthropic-dialect"),
    pytest.param("demo-fast", "openai", "default/demo", id="openai-dialect"),
]


def has_usage(rec):
    """Output tokens, and input tokens counted somewhere: Claude Code marks its system prompt and
    messages with cache_control, so the mock reports most of the prompt as cache tokens."""
    u = rec["usage"]
    prompt = u["input_tokens"] + u.get("cache_read_input_tokens", 0) + u.get("cache_write_input_tokens", 0)
    return u["output_tokens"] > 0 and prompt > 0


@pytest.mark.parametrize("model,provider,provider_name", TARGETS)
def test_plain_prompt(claude_bin, gateway, model, provider, provider_name, tmp_path):
    session = str(uuid.uuid4())
    out = run_claude(claude_bin, gateway, model, "Say hello to the gateway", session, tmp_path)
    # The mock echoes the first 8 words of the last user message; Claude Code may put its own
    # context blocks before the prompt, so only the prefix is fixed.
    assert out["result"].startswith("mock reply:"), out
    recs = records_for(gateway, session, model)
    assert recs, f"no record of session {session}: {gateway['records'].read_text()[-4000:]}"
    for r in recs:
        assert r["client"] == "claude-code", r
        assert r["provider"] == provider and r["provider_name"] == provider_name, r
        assert "Say hello to the gateway" in r["user_prompt"], r
        assert r["finish_reason"] in ("end_turn", "stop") and not r.get("tool_usages"), r
        assert has_usage(r), r


@pytest.mark.parametrize("model,provider,provider_name", TARGETS)
def test_tool_loop_runs_bash(claude_bin, gateway, model, provider, provider_name, tmp_path):
    session = str(uuid.uuid4())
    marker = f"switchyard-{uuid.uuid4().hex[:12]}"
    prompt = f'call tool Bash with {{"command": "echo {marker}", "description": "Print a marker"}}'
    out = run_claude(claude_bin, gateway, model, prompt, session, tmp_path)
    # Second turn: the last message is the Bash tool_result, so the mock's reply echoes it.
    assert out["result"].startswith("mock reply:"), out
    assert marker in out["result"], out
    assert out.get("num_turns", 0) >= 2, out
    recs = records_for(gateway, session, model, at_least=2)
    assert len(recs) >= 2, f"expected 2 calls of {model}: {recs}"
    first, last = recs[0], recs[-1]
    assert [t["name"] for t in first.get("tool_usages", [])] == ["Bash"], first
    assert first.get("finish_reason") in ("tool_use", "tool_calls"), first
    for r in (first, last):
        assert r["client"] == "claude-code", r
        assert r["session_id"] == session, r
        # Claude Code's `metadata.user_id` is a JSON object in a string: the initiator is its
        # device (no account here), not the whole string.
        assert r.get("initiator") and "{" not in r["initiator"], r
        assert r["provider"] == provider and r["provider_name"] == provider_name, r
        assert has_usage(r), r
