"""Runs the README's "Python against a broker" as a new user would, and fails loudly if any step
does not do what the README says.

    python tests/walkthrough/python_broker.py

Run it with the Python of a virtualenv that holds the `agentiam` package (its `agentiam` command
is used, never a binary from the checkout) and `langchain`. In a fresh directory it writes the
README's `agent.py` as it stands, then runs the README's commands line by line, as written, with
two changes only: a free port instead of 8700, and `python agent.py` runs the agent with a scripted
chat model instead of `gpt-5` (no network, no API key). While the agent waits at its irreversible
call, this script is the human: it signs in at the broker's console, reads the request and
approves it. Then both activity logs must verify.
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECTION = "### Python against a broker"
PASSWORD = "correct horse battery staple"

# The scripted model: reads the invoice, voids it after the human approves, then answers.
SCRIPTED_AGENT = '''
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import agent


class ScriptedModel(GenericFakeChatModel):
    def bind_tools(self, tools, **kwargs):
        return self


replies = iter([
    AIMessage(content="", tool_calls=[{"name": "read_invoice", "args": {"invoice": "INV-7"}, "id": "call-1"}]),
    AIMessage(content="", tool_calls=[{"name": "void_invoice", "args": {"invoice": "INV-7"}, "id": "call-2"}]),
    AIMessage(content="INV-7 is void."),
])
print(agent.run(ScriptedModel(messages=replies), "INV-7 is a duplicate of INV-6: check it and void INV-7."))
'''


def fail(message: str) -> None:
    print(f"walkthrough failed: {message}", file=sys.stderr)
    sys.exit(1)


def section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    return readme[start : readme.index("\n## ", start)]


def blocks(text: str, info: str) -> list[str]:
    return re.findall(rf"^```{info}\n(.*?)^```$", text, flags=re.S | re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """The human at the broker's approvals console, with a browser's cookie jar."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.browser.open(self.base + path, timeout=30) as response:
            return str(response.read().decode())

    def post(self, path: str, form: dict[str, str]) -> str:
        data = urllib.parse.urlencode(form).encode()
        with self.browser.open(self.base + path, data=data, timeout=30) as response:
            return str(response.read().decode())

    @staticmethod
    def csrf(page: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        if not found:
            fail("a console form has no CSRF token")
        return found.group(1) if found else ""

    def sign_in(self, name: str, password: str) -> None:
        page = self.get("/console/login")
        home = self.post("/console/login", {"csrf": self.csrf(page), "username": name, "password": password})
        if "Pending approvals" not in home:
            fail(f"signing in at the console did not reach the pending approvals: {home[:500]}")

    def approve_first_pending(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            ids = re.findall(r'href="/console/approvals/([^"]+)"', self.get("/console"))
            if ids:
                detail = self.get(f"/console/approvals/{ids[0]}")
                text = html.unescape(detail)
                for shown in ("void_invoice", "INV-7", "spiffe://acme.example/agent/ledger-keeper", "close-march"):
                    if shown not in text:
                        fail(f"the approval page does not show {shown!r}")
                self.post(f"/console/approvals/{ids[0]}/approve", {"csrf": self.csrf(detail)})
                return ids[0]
            time.sleep(0.2)
        fail("no approval request reached the console")
        return ""


def main() -> None:
    venv_bin = pathlib.Path(sys.executable).parent
    command = shutil.which("agentiam", path=str(venv_bin))
    if command is None:
        fail(f"the package installed no agentiam command into {venv_bin}")
    work = pathlib.Path(tempfile.mkdtemp(prefix="agentiam-walkthrough-"))
    os.chdir(work)
    text = section()
    (agent_py,) = blocks(text, "python")
    (work / "agent.py").write_text(agent_py)
    (work / "scripted_agent.py").write_text(SCRIPTED_AGENT)
    install, run = blocks(text, "sh")
    if "pip install agentiam-" not in install:
        fail("the README no longer installs the wheel")

    port = free_port()
    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("AGENTIAM_BIN", None)
    background: list[subprocess.Popen[str]] = []
    try:
        for line in run.splitlines():
            line = line.replace("127.0.0.1:8700", f"127.0.0.1:{port}").strip()
            if not line or line.startswith("#"):
                continue
            print(f"$ {line}", flush=True)
            if line.startswith("export "):
                name = line.removeprefix("export ").split("=", 1)[0]
                value = subprocess.run(
                    ["bash", "-c", f'{line}; printf %s "${name}"'], env=env, capture_output=True, text=True, check=True
                ).stdout
                env[name] = value
            elif line.endswith("&"):
                server = subprocess.Popen(["bash", "-c", f"exec {line.removesuffix('&').strip()}"], env=env, text=True)
                background.append(server)
                wait_for(f"http://127.0.0.1:{port}/.well-known/jwks.json", server)
            elif line.startswith("kill %1"):
                # The shell's first background job is the broker: SIGTERM, then wait for it.
                broker = background.pop(0)
                broker.terminate()
                if broker.wait(timeout=60) != 0:
                    fail(f"the broker exited with {broker.returncode} when stopped")
            elif line == "python agent.py":
                agent = subprocess.Popen(
                    [sys.executable, "scripted_agent.py"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                human = Console(f"http://127.0.0.1:{port}")
                human.sign_in("controller", PASSWORD)
                human.approve_first_pending(time.monotonic() + 120)
                out, err = agent.communicate(timeout=120)
                print(out, end="")
                if agent.returncode != 0:
                    fail(f"agent.py failed: {err[-3000:]}")
                if "INV-7 is void." not in out:
                    fail(f"the agent did not finish its task: {out}")
                check_the_void_waited_for_the_human(work / "agent-audit")
            else:
                done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True)
                print(done.stdout, end="")
                if done.returncode != 0:
                    fail(f"{line!r} exited {done.returncode}: {done.stderr[-3000:]}")
                if line.startswith("agentiam audit verify"):
                    if "intact" not in done.stdout or "checkpoint" not in done.stdout:
                        fail(f"{line!r} did not verify against a signed checkpoint: {done.stdout}{done.stderr}")
                    if "warning" in done.stderr.lower():
                        fail(f"{line!r} warned: {done.stderr}")
        events = (work / "agent-audit").iterdir()
        if not any(p.name.endswith(".jsonl") for p in events):
            fail("the agent's guard wrote no activity log")
    finally:
        for server in background:
            server.terminate()
            server.wait(timeout=30)
    print(f"walkthrough passed in {work}")


def check_the_void_waited_for_the_human(log: pathlib.Path) -> None:
    """The guard's own log (verified offline as it is read): the irreversible call first waited
    for a human, then ran once, after the approval."""
    import agentiam

    calls = [
        ((e.get("tool") or {}).get("name"), e["kind"], e["decision"]["outcome"])
        for e in map(_event, agentiam.read_audit_log(str(log)))
    ]
    void = [(kind, outcome) for name, kind, outcome in calls if name == "void_invoice"]
    if void != [("tool_call", "escalate"), ("tool_call", "allow"), ("tool_result", "record")]:
        fail(f"void_invoice did not wait for the approval and then run once: {calls}")


def _event(raw: object) -> dict:
    import json

    return json.loads(raw) if isinstance(raw, str) else dict(raw)  # type: ignore[call-overload]


def wait_for(url: str, server: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            fail(f"the broker exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    fail(f"the broker did not answer at {url}")


if __name__ == "__main__":
    main()
