"""The demo program itself: the tour in --script mode, piped input, and the interactive menu
driven in a pseudo-terminal. Each runs the real proxy over the demo's simulated upstream."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect  # type: ignore[import-untyped]  # no stubs in the locked dev group
import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def demo_env() -> dict[str, str]:
    """No real provider keys may reach the demo: it must run on the simulated upstream."""
    keys = ("OPENAI_API_KEY", "GEMINI_API_KEY", "ANTHROPIC_API_KEY")
    env = {k: v for k, v in os.environ.items() if k not in keys}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_script(
    tmp_path: Path, *extra: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--workdir",
            str(tmp_path / "work"),
            "--latency-scale",
            "0",
            "--width",
            "250",
            *extra,
        ],
        cwd=ROOT,
        env=demo_env(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=240,
    )


def receipts(workdir: Path) -> list[dict[str, object]]:
    lines = []
    for path in sorted((workdir / "receipts").glob("receipts-*.jsonl")):
        lines += [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]
    return lines


def assert_tour(out: str, workdir: Path) -> None:
    """What the tour must show, and what the proxy must have recorded."""
    assert "SIMULATED upstream" in out
    for step in range(1, 10):
        assert f"Step {step}/9" in out
    # A streamed answer from the simulated OpenAI, charged and receipted.
    assert "(simulated gpt-4o) Summary of the meeting" in out
    # Policy: research may not use gpt-4o.
    assert "DENIED 403 by policy" in out
    assert "model 'gpt-4o' is not allowed for tenant 'research'" in out
    # Gemini reached through the OpenAI SDK.
    assert "served by gemini/gemini-2.5-flash" in out
    # Fallback from the failing primary.
    assert "FALLBACK openai/gpt-4o (503) failed -> served by gemini/gemini-2.5-flash-lite" in out
    # The hard stop, its reason and its reset time.
    stop = re.search(r"HARD STOP 429 budget hour of tenant acme is spent \(budget_exceeded\)", out)
    assert stop, out
    assert re.search(r"resets at: \d{4}-\d\d-\d\dT\d\d:00:00\+00:00", out)
    # Verification: intact, then tampered and pointing at the line.
    assert "result:      INTACT (0 problem(s))" in out
    tampered = re.search(r"TAMPERED (receipts-\d{8}-\d{6}\.jsonl) line (\d+)", out)
    assert tampered, out
    assert "result:      TAMPERED" in out
    assert f"{tampered[1]}:{tampered[2]}: [signature]" in out
    assert f"-> the problem is at {workdir / 'receipts' / tampered[1]}:{tampered[2]}" in out

    trail = receipts(workdir)
    by_status = [r["status"] for r in trail]
    assert by_status.count("denied") >= 2  # the policy denial and the hard stop
    assert "upstream_error" in by_status  # the failed primary attempt, receipted on its own
    denied = [r["decision"] for r in trail if r["status"] == "denied"]
    assert {"allowed": False, "reason": "model_not_allowed", "budget": None} in denied
    assert {"allowed": False, "reason": "budget_exceeded", "budget": "hour"} in denied
    assert {r["provider"] for r in trail} == {"openai", "gemini"}


def test_script_mode_runs_the_whole_tour(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--script", "--svg", str(tmp_path / "tour.svg"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_tour(result.stdout, (tmp_path / "work").resolve())
    # The screenshot in demo/README.md is made this way.
    svg = (tmp_path / "tour.svg").read_text()
    assert svg.startswith("<svg")
    assert "Step&#160;9/9" in svg  # rich writes spaces as &#160;


def test_piped_stdin_runs_the_tour_too(tmp_path: Path) -> None:
    result = run_script(tmp_path, stdin="this is not a terminal\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Step 9/9" in result.stdout
    # The closing hint works from a plain shell, outside `uv run` (no .venv/bin on PATH).
    hint = result.stdout.split("verify the trail again with:\n", 1)[1].splitlines()[0].strip()
    verify = subprocess.run(
        hint, shell=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert verify.returncode not in (126, 127), verify.stderr
    assert "TAMPERED" in verify.stdout + verify.stderr  # the tour ends by tampering
    assert "result:      TAMPERED" in result.stdout


class Screen:
    """The demo in a pseudo-terminal, and everything it has drawn so far (ANSI removed)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.raw = ""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 60) -> int:
        """Read until ``pattern`` (a regex) is on screen after offset ``after``; its end."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text[after:])
            if found:
                return after + found.end()
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never appeared; screen:\n{self.text[-3000:]}")
            try:
                self.raw += self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                if not re.search(pattern, self.text[after:]):
                    raise AssertionError(
                        f"exited before {pattern!r}:\n{self.text[-3000:]}"
                    ) from None

    def choose(self, key: str, after: int) -> int:
        """Wait for the menu prompt, then press ``key`` and Enter."""
        end = self.wait_for(r"choose\s*>", after=after)
        self.child.sendline(key)
        return end


@pytest.fixture
def screen(tmp_path: Path) -> Iterator[Screen]:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "demo", "--workdir", str(tmp_path / "work"), "--latency-scale", "0"],
        cwd=str(ROOT),
        env=demo_env(),
        encoding="utf-8",
        dimensions=(50, 250),
        timeout=60,
    )
    yield Screen(child)
    if child.isalive():
        child.terminate(force=True)
    child.close()


def test_the_interactive_menu_in_a_terminal(screen: Screen, tmp_path: Path) -> None:
    at = screen.wait_for(r"SIMULATED upstream")
    at = screen.wait_for(r"Budgets \(live from the proxy's ledger\)", after=at)
    at = screen.wait_for(r"▶ acme\s", after=at)

    # Pick research, ask for a model it may not use: denied by policy.
    at = screen.choose("1", at)
    at = screen.wait_for(r"tenant \(number or name\)\s*>", after=at)
    screen.child.sendline("research")  # a typed name works as well as its number
    at = screen.wait_for(r"Tenant is now research", after=at)
    at = screen.choose("3", at)
    at = screen.wait_for(r"model for research\s*>", after=at)
    screen.child.sendline("gpt-4o")
    at = screen.choose("2", at)
    at = screen.wait_for(r"prompt \(Enter for a sample\)\s*>", after=at)
    screen.child.sendline("Write a haiku about budgets.")
    at = screen.wait_for(r"DENIED 403 by policy", after=at)
    assert "model 'gpt-4o' is not allowed for tenant 'research'" in screen.text[at - 200 :]

    # Back to acme: a streamed prompt, then spend until the hard stop.
    at = screen.choose("1", at)
    screen.wait_for(r"tenant \(number or name\)\s*>", after=at)
    screen.child.sendline("1")
    at = screen.wait_for(r"Tenant is now acme", after=at)
    at = screen.choose("2", at)
    screen.wait_for(r"prompt \(Enter for a sample\)\s*>", after=at)
    screen.child.sendline("")
    at = screen.wait_for(r"200 OK\s+\d+ in / \d+ out tokens\s+cost \$0\.\d+", after=at)
    assert "(simulated gpt-4o) Summary of the meeting" in screen.text
    at = screen.choose("5", at)
    at = screen.wait_for(r"Simulated OpenAI upstream is now DOWN", after=at)
    at = screen.choose("2", at)
    screen.wait_for(r"prompt \(Enter for a sample\)\s*>", after=at)
    screen.child.sendline("Draft a reply to a customer about a refund.")
    at = screen.wait_for(r"FALLBACK openai/gpt-4o \(503\) failed -> served by gemini/", after=at)
    at = screen.choose("5", at)
    at = screen.wait_for(r"healthy again", after=at)
    at = screen.choose("4", at)
    at = screen.wait_for(r"HARD STOP 429 budget hour of tenant acme", after=at)
    at = screen.wait_for(r"resets at: \d{4}-\d\d-\d\dT\d\d:00:00\+00:00", after=at)

    # The dashboard shows the drained bar.
    at = screen.wait_for(r"Budgets \(live from the proxy's ledger\)", after=at)
    at = screen.wait_for(r"│ hour\s+│[^│]+│\s+\$0\.01\d*\s+│\s+\$0\.015 │", after=at)

    # Receipts, verify, tamper, verify again.
    at = screen.choose("6", at)
    at = screen.wait_for(r"Receipts: last \d+ of \d+", after=at)
    at = screen.wait_for(r"budget_exceeded", after=at)
    at = screen.choose("7", at)
    at = screen.wait_for(r"result:\s+INTACT", after=at)
    at = screen.choose("8", at)
    at = screen.wait_for(r"TAMPERED (receipts-\d{8}-\d{6}\.jsonl) line (\d+)", after=at)
    tampered = re.findall(r"TAMPERED (receipts-\d{8}-\d{6}\.jsonl) line (\d+)", screen.text)[-1]
    at = screen.choose("7", at)
    at = screen.wait_for(r"result:\s+TAMPERED", after=at)
    at = screen.wait_for(rf"the problem is at \S*{tampered[0]}:{tampered[1]}", after=at)

    at = screen.choose("q", at)
    screen.wait_for(r"Stopped\.", after=at)
    screen.child.expect(pexpect.EOF, timeout=30)
    screen.child.close()
    assert screen.child.exitstatus == 0


def test_provider_keys_switch_that_provider_from_simulated_to_real(tmp_path: Path) -> None:
    from aegis.proxy import load_settings
    from demo.stack import Stack

    stack = Stack(tmp_path, environ={"OPENAI_API_KEY": "sk-real"})
    assert stack.provider_label("openai") == "real"
    assert stack.provider_label("gemini") == "SIMULATED"
    stack.write_config("http://127.0.0.1:9")
    providers = load_settings(stack.config).providers
    assert providers["openai"].base_url == "https://api.openai.com/v1"
    assert providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert providers["gemini"].base_url == "http://127.0.0.1:9/gemini"
    assert providers["gemini"].api_key_env == "AEGIS_SIMULATED_KEY"
    assert providers["anthropic"].base_url == "http://127.0.0.1:9/anthropic"
    plain = Stack(tmp_path / "plain", environ={})
    assert plain.provider_label("openai") == plain.provider_label("gemini") == "SIMULATED"
    assert plain.provider_label("anthropic") == "SIMULATED"
    claude = Stack(tmp_path, environ={"ANTHROPIC_API_KEY": "sk-ant-real"})
    claude.write_config("http://127.0.0.1:9")
    real = load_settings(claude.config).providers["anthropic"]
    assert (real.base_url, real.api_key_env) == ("https://api.anthropic.com", "ANTHROPIC_API_KEY")


def test_the_agents_tenant_reaches_claude_through_the_openai_sdk(tmp_path: Path) -> None:
    from demo.actions import send
    from demo.stack import Stack

    stack = Stack(tmp_path / "work", latency_scale=0, environ=demo_env())
    stack.start()
    try:
        result = send(stack, "agents", "claude-haiku-4-5", "Write a haiku about budgets.")
    finally:
        stack.stop()
    assert result.status == 200, result.error_message
    assert result.text.startswith("(simulated claude-haiku-4-5) Budgets drain in bars")
    assert result.served_by == "anthropic/claude-haiku-4-5"
    assert result.output_tokens is not None
    assert result.output_tokens > 0
    assert stack.simulated.calls["anthropic"] == 1
