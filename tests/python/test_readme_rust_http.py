"""The README's Rust HTTP section, as a new user copies it: its `Cargo.toml` lines and its
`src/main.rs`, verbatim, in a fresh cargo project outside the workspace (beside a "clone" of
agentiam, as the README says), built and run against a real broker (`agentiam serve`), answering
401, 200 and 403 as the README documents, and still 200 for a token signed after the broker
rotated its key. README Rust snippets have no rustdoc-hidden lines, so they paste as shown."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, register_and_get_token, running_broker

README = (ROOT / "README.md").read_text()
SECTION = README[README.index("### In front of a Rust HTTP service") :]
SECTION = SECTION[: SECTION.index("\n### ", 10)]


def _blocks(text: str, info: str) -> list[str]:
    return re.findall(rf"^```{re.escape(info)}\n(.*?)^```$", text, flags=re.S | re.M)


def test_readme_rust_snippets_have_no_hidden_lines():
    """A `# ` line is hidden by rustdoc but pasted by a reader: every snippet must be complete."""
    for info in ("rust", "rust,no_run"):
        for block in _blocks(README, info):
            hidden = [line for line in block.splitlines() if line == "#" or line.startswith("# ")]
            assert not hidden, f"hidden rustdoc lines in a README snippet: {hidden}"


def test_the_readme_service_is_the_example_program():
    (main_rs,) = _blocks(SECTION, "rust,no_run")
    assert main_rs == (ROOT / "examples/rust/examples/axum_service.rs").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict, token: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture(scope="module")
def readme_service(tmp_path_factory) -> pathlib.Path:
    """Builds the README's service in `<tmp>/payments-api`, with agentiam "cloned" at `<tmp>/agentiam`."""
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build the README's Rust service")
    (dependencies,) = _blocks(SECTION, "toml")
    (main_rs,) = _blocks(SECTION, "rust,no_run")
    work = tmp_path_factory.mktemp("readme-http")
    (work / "agentiam").symlink_to(ROOT, target_is_directory=True)
    project = work / "payments-api"
    (project / "src").mkdir(parents=True)
    # What `cargo new payments-api` writes, then the README's lines and file as they are.
    (project / "Cargo.toml").write_text(
        '[package]\nname = "payments-api"\nversion = "0.1.0"\nedition = "2024"\n\n' + dependencies
    )
    (project / "src/main.rs").write_text(main_rs)
    # The workspace's lock file: the same dependency versions, so the shared target directory
    # already holds most of them compiled (cargo drops what the project does not use).
    shutil.copy(ROOT / "Cargo.lock", project / "Cargo.lock")
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target"))
    build = subprocess.run(["cargo", "build", "--quiet"], cwd=project, env=env, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-4000:]
    return ROOT / "target/debug/payments-api"


def test_the_readme_service_answers_401_200_403_and_follows_key_rotation(readme_service, cli, tmp_path):
    # A broker of its own: this test rotates its key.
    with running_broker(cli.binary, tmp_path / "broker") as broker:
        _check_the_service(readme_service, broker)


def _check_the_service(readme_service: pathlib.Path, broker) -> None:
    port = _free_port()
    env = dict(os.environ, BROKER_URL=broker.base, AUDIENCE="ledger-api", LISTEN=f"127.0.0.1:{port}")
    service = subprocess.Popen([str(readme_service)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = service.stdout.readline()
        assert line.startswith("payments-api listening on"), (line, service.stderr.read() if service.poll() is not None else "")
        url = f"http://127.0.0.1:{port}/payments"
        token = register_and_get_token(
            broker, "spiffe://acme.example/agent/readme-payer", "payments:approve{amount<=500}", "payments:approve{amount<=500}", "readme-http"
        )

        status, headers, body = _post(url, {"amount": 420})
        assert status == 401, body
        assert headers["www-authenticate"].startswith("Bearer"), headers
        assert json.loads(body)["error"]["code"] == "guard.credentials_missing"

        status, _, body = _post(url, {"amount": 420}, token)
        assert status == 200, body
        assert body == "paid on behalf of spiffe://acme.example/agent/readme-payer\n"

        status, headers, body = _post(url, {"amount": 900}, token)
        assert status == 403, body
        assert 'error="insufficient_scope"' in headers["www-authenticate"], headers
        assert json.loads(body)["error"]["code"] == "guard.constraint_violated"

        # The broker rotates its key; a token signed with the new one is accepted, because the
        # service fetches the JWKS again for a key it has not seen.
        status, rotated = broker.admin_json("/admin/keys/rotate", {})
        assert status == 200, rotated
        fresh = register_and_get_token(
            broker, "spiffe://acme.example/agent/readme-payer-2", "payments:approve{amount<=500}", "payments:approve{amount<=500}", "readme-http-2"
        )
        header = json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))
        assert header["kid"] == rotated["kid"]
        status, _, body = _post(url, {"amount": 100}, fresh)
        assert status == 200, body
    finally:
        service.terminate()
        service.wait(timeout=30)
