"""The README's "Python against a broker", run as written by tests/walkthrough/python_broker.py in
this virtualenv: `agentiam serve` from the package's own command, an agent registered, a task
token, a LangGraph agent (LangChain's `create_agent`) guarded, the irreversible call approved in the
console by a signed-in human, and both activity logs verified against signed checkpoints."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_readme_python_broker_walkthrough_runs_as_written():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests/walkthrough/python_broker.py")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "walkthrough passed" in done.stdout
    # The approval was the human's: the agent got past the irreversible call only after it.
    assert "INV-7 is void." in done.stdout


def test_the_readme_agent_is_the_example_file():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Python against a broker") :]
    start = section.index("```python\n") + len("```python\n")
    block = section[start : section.index("```\n", start)]
    assert block == (ROOT / "examples/python/langgraph_broker.py").read_text()
