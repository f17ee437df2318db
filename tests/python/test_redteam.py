"""The red-team suite, Python side: each test attacks one guarantee the README states, as an
attacker would, and fails if the guarantee breaks.

`testvectors/redteam.json` runs here through the Python package's decorator and through every
framework integration (LangChain, LlamaIndex, MCP, the OpenAI Agents SDK, Pydantic AI), each
driven its own way; `crates/agentiam-guard/tests/redteam.rs` runs the same file against the Rust
interceptor. The other tests run the token, delegation and activity-log catalogues through the
package (their own suites use the CLI), and attack what needs several guards, processes or a
framework's own machinery. The README's "Guarantees, scope and limits" section links each test
to its promise."""

import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import pathlib
import re
import time
import uuid
from typing import Any

import jwt
import pytest

import agentiam
from agentiam import ConfirmationRequired, Denied
from conftest import decisions

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "redteam.json").read_text())
GUARD_DOC = json.loads((ROOT / "testvectors" / "guard.json").read_text())
TOOL_SPECS = GUARD_DOC["config"]["tools"]
FRAMEWORKS = ("langchain", "llamaindex", "mcp", "openai_agents", "pydantic_ai")
CODE = re.compile(r"\b((?:guard|token|delegation)\.[a-z_]+)\b")


def _cases(with_approvals: bool = True) -> list[Any]:
    return [
        pytest.param(t, id=f"tc{t['tcId']}")
        for t in DOC["tests"]
        if with_approvals or not any("approval" in c for c in t["calls"])
    ]


def _parameters(case: dict[str, Any]) -> dict[str, list[str]]:
    """The argument names of each tool in a case. A Python tool has one signature, so every call
    of a tool in one case names the same arguments (checked here)."""
    names: dict[str, list[str]] = {}
    calls = list(case["calls"]) + [
        c["approval"]["signed_for"] for c in case["calls"] if "signed_for" in c.get("approval", {})
    ]
    for call in calls:
        keys = sorted(call["arguments"])
        assert names.setdefault(call["tool"], keys) == keys, (case["tcId"], call["tool"])
    return names


class Tools:
    """The deployment's tools for one case: bodies that record that they ran and return what the
    case says, with the signatures the case's calls need."""

    def __init__(self, case: dict[str, Any]):
        self.parameters = _parameters(case)
        self.ran: list[str] = []
        self.returns = "ok"

    def body(self, name: str) -> Any:
        def body(**kwargs: Any) -> str:
            self.ran.append(name)
            return self.returns

        body.__name__ = name
        body.__doc__ = f"The {name} tool."
        body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in self.parameters.get(name, [])]
        )
        return body


def _guard(world, case: dict[str, Any]) -> agentiam.Guard:
    """The deployment's guard with the case's overrides: `null` removes a key (the default applies)."""
    kwargs: dict[str, Any] = {"injection_filter": GUARD_DOC["config"]["injection_filter"]}
    for key, value in case.get("config", {}).items():
        assert key == "injection_filter", key  # the only override the cases use
        if value is None:
            del kwargs[key]
        else:
            kwargs[key] = value
    return world.guard(**kwargs)


def _register(guard: agentiam.Guard, tools: Tools) -> dict[str, Any]:
    """The package's own decorator for every tool of the deployment."""
    out = {}
    for spec in TOOL_SPECS:
        pin = {k: spec[k] for k in ("description", "input_schema") if k in spec}
        out[spec["name"]] = guard.tool(
            scope=spec["scope"], risk=spec["risk"], untrusted_output=spec.get("untrusted_output", False),
            name=spec["name"], **pin,
        )(tools.body(spec["name"]))
    return out


def _outcome(call: Any) -> tuple[str, str | None, dict[str, Any] | None]:
    try:
        call()
    except ConfirmationRequired as e:
        return "confirm", e.code, e.approval_request
    except Denied as e:
        return "deny", e.code, None
    return "allow", None, None


def _expected(case: dict[str, Any], i: int) -> tuple[str, str | None]:
    return (case["result"], case["error"]) if i + 1 == len(case["calls"]) else ("allow", None)


def _allowed_tools(case: dict[str, Any]) -> list[str]:
    """The tools that run: every call but the last, and the last when it is allowed."""
    calls = case["calls"] if case["result"] == "allow" else case["calls"][:-1]
    return [c["tool"] for c in calls]


@pytest.mark.parametrize("case", _cases())
def test_redteam_vector_through_the_package(world, case):
    """Each case through `@guard.tool`: the decision and code the promise requires, the tool ran
    exactly when allowed, and the decision is the activity log's last word on the call."""
    guard, tools = _guard(world, case), Tools(case)
    fns = _register(guard, tools)
    previous = None
    with guard.session(world.token):
        for i, call in enumerate(case["calls"]):
            approval = None
            spec = call.get("approval")
            if spec is not None and spec.get("reuse"):
                approval = previous
            elif spec is not None:
                signed_for = spec.get("signed_for", call)
                kind, _, request = _outcome(lambda: fns[signed_for["tool"]](**signed_for["arguments"]))
                assert kind == "confirm", (case["comment"], "the call to approve did not ask for a human")
                approval = world.sign(request)
            tools.returns = call.get("returns", "ok")
            with agentiam.framework_call(None, approval) if approval else contextlib.nullcontext():
                kind, code, _ = _outcome(lambda: fns[call["tool"]](**call["arguments"]))
            assert (kind, code) == _expected(case, i), (case["comment"], i)
            previous = approval
    assert [t for t in tools.ran] == _allowed_tools(case), case["comment"]
    outcome = {"allow": "allow", "deny": "deny", "confirm": "escalate"}[case["result"]]
    assert decisions(guard)[-1][:3] == (case["calls"][-1]["tool"], outcome, case["error"]), case["comment"]


# --- The same cases through each framework, driven the framework's way ------------------------

def _kw(spec: dict[str, Any]) -> dict[str, Any]:
    """The integration's keyword arguments for a tool spec; a spec without `risk` leaves it unstated."""
    out = {"scope": spec["scope"], "untrusted_output": spec.get("untrusted_output", False)}
    if "risk" in spec:
        out["risk"] = spec["risk"]
    return out


def _package(guard, tools, case, specs=TOOL_SPECS):
    wrapped = {s["name"]: guard.tool(name=s["name"], **_kw(s))(tools.body(s["name"])) for s in specs}
    outcomes = []
    with guard.session(_token()):
        for call in case["calls"]:
            tools.returns = call.get("returns", "ok")
            kind, code, _ = _outcome(lambda: wrapped[call["tool"]](**call["arguments"]))
            outcomes.append((kind, code))
    return outcomes


def _from_text(text: str) -> tuple[str, str | None]:
    """A refusal as a framework hands it to the model: the kind and the code it names."""
    match = CODE.search(text)
    assert match, text
    return ("confirm" if "needs a human's approval" in text else "deny"), match.group(1)


def _langchain(guard, tools, case, specs=TOOL_SPECS):
    from langchain_core.tools import StructuredTool

    from agentiam.integrations.langchain import guard_tool

    wrapped = {
        s["name"]: guard_tool(guard, StructuredTool.from_function(func=tools.body(s["name"]), name=s["name"],
                                                                  description=f"The {s['name']} tool."),
                              **_kw(s))
        for s in specs
    }
    outcomes = []
    with guard.session(_token()):
        for i, call in enumerate(case["calls"]):
            tools.returns = call.get("returns", "ok")
            reply = wrapped[call["tool"]].invoke(
                {"type": "tool_call", "name": call["tool"], "args": call["arguments"], "id": f"call-{i}"})
            outcomes.append(("allow", None) if reply.status == "success" else _from_text(reply.content))
    return outcomes


def _llamaindex(guard, tools, case, specs=TOOL_SPECS):
    from llama_index.core.tools import FunctionTool

    from agentiam.integrations.llamaindex import guard_tool

    wrapped = {
        s["name"]: guard_tool(guard, FunctionTool.from_defaults(fn=tools.body(s["name"]), name=s["name"],
                                                                description=f"The {s['name']} tool."),
                              **_kw(s))
        for s in specs
    }
    outcomes = []
    with guard.session(_token()):
        for call in case["calls"]:
            tools.returns = call.get("returns", "ok")
            kind, code, _ = _outcome(lambda: wrapped[call["tool"]].call(**call["arguments"]))
            outcomes.append((kind, code))
    return outcomes


def _mcp(guard, tools, case, specs=TOOL_SPECS):
    from mcp.client import Client
    from mcp.server.mcpserver import MCPServer

    from agentiam.integrations.mcp import guard_tool

    server = MCPServer("redteam")
    for s in specs:
        guard_tool(guard, server, name=s["name"], **_kw(s))(tools.body(s["name"]))

    async def main():
        outcomes = []
        with guard.session(_token()):
            async with Client(server) as client:
                for call in case["calls"]:
                    tools.returns = call.get("returns", "ok")
                    result = await client.call_tool(call["tool"], call["arguments"])
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    failed = getattr(result, "isError", getattr(result, "is_error", None)) is True
                    outcomes.append(_from_text(text) if failed else ("allow", None))
        return outcomes

    return asyncio.run(main())


def _openai_agents(guard, tools, case, specs=TOOL_SPECS):
    from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from agentiam.integrations.openai_agents import function_tool

    set_tracing_disabled(True)
    wrapped = [
        function_tool(guard, name=s["name"], strict_mode=False, **_kw(s))(tools.body(s["name"]))
        for s in specs
    ]
    calls = case["calls"]

    class Scripted(Model):
        """One tool call per turn (so each is decided after the one before ran), then "done"."""

        def __init__(self):
            self.inputs: list[Any] = []

        async def get_response(self, system_instructions, input, *args, **kwargs):
            self.inputs.append(input)
            turn = len(self.inputs) - 1
            if turn < len(calls):
                call = calls[turn]
                tools.returns = call.get("returns", "ok")
                output = [ResponseFunctionToolCall(type="function_call", name=call["tool"],
                                                   arguments=json.dumps(call["arguments"]), call_id=f"c{turn}",
                                                   id=f"fc-{turn}")]
            else:
                output = [ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                                content=[ResponseOutputText(type="output_text", text="done",
                                                                            annotations=[])])]
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args, **kwargs):
            raise NotImplementedError

    model = Scripted()
    agent = Agent(name="redteam", instructions="Work.", tools=wrapped, model=model)

    async def main():
        with guard.session(_token()) as session:
            result = await Runner.run(agent, "go", max_turns=len(calls) + 2)
            return session, result

    session, result = asyncio.run(main())
    outputs = {item["call_id"]: item["output"] for turn in model.inputs if isinstance(turn, list)
               for item in turn if isinstance(item, dict) and item.get("type") == "function_call_output"}
    paused = {item.call_id for item in result.interruptions}
    outcomes = []
    for i in range(len(calls)):
        call_id = f"c{i}"
        if call_id in paused:
            outcomes.append(("confirm", session.approval_request(call_id)["code"]))
        elif call_id in outputs and outputs[call_id] == calls[i].get("returns", "ok"):
            outcomes.append(("allow", None))
        else:
            outcomes.append(_from_text(outputs[call_id]))
    return outcomes


def _pydantic_ai(guard, tools, case, specs=TOOL_SPECS):
    from pydantic_ai import Agent, DeferredToolRequests
    from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from agentiam.integrations.pydantic_ai import guard_tool

    wrapped = [
        guard_tool(guard, tools.body(s["name"]), name=s["name"], **_kw(s))
        for s in specs
    ]
    calls = case["calls"]
    turns = [0]

    def model(messages, info: AgentInfo) -> ModelResponse:
        turn = turns[0]
        turns[0] += 1
        if turn < len(calls):
            tools.returns = calls[turn].get("returns", "ok")
            return ModelResponse(parts=[ToolCallPart(calls[turn]["tool"], calls[turn]["arguments"],
                                                     tool_call_id=f"c{turn}")])
        return ModelResponse(parts=[TextPart("done")])

    agent = Agent(FunctionModel(model), tools=wrapped, output_type=[str, DeferredToolRequests])
    with guard.session(_token()):
        result = agent.run_sync("go")
    parts = {p.tool_call_id: p for m in result.all_messages() for p in getattr(m, "parts", [])
             if isinstance(p, (ToolReturnPart, RetryPromptPart))}
    deferred = result.output.metadata if isinstance(result.output, DeferredToolRequests) else {}
    outcomes = []
    for i in range(len(calls)):
        call_id = f"c{i}"
        if call_id in deferred:
            outcomes.append(("confirm", deferred[call_id]["agentiam"]["code"]))
        elif isinstance(parts[call_id], ToolReturnPart) and getattr(parts[call_id], "outcome", None) != "retried":
            outcomes.append(("allow", None))
        else:
            outcomes.append(_from_text(str(parts[call_id].content)))
    return outcomes


_TOKEN = GUARD_DOC["tests"][0]["calls"][0]["token"]


def _token() -> str:
    return _TOKEN


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("case", _cases(with_approvals=False))
def test_redteam_vector_through_each_framework(world, framework, case):
    """Each case without approvals (every framework has its own approval flow, attacked below and
    in its own suite) through the framework's own tool machinery: the refusal reaches the model
    in the framework's form and names the code the promise requires; the tool runs exactly when
    allowed."""
    guard, tools = _guard(world, case), Tools(case)
    outcomes = globals()[f"_{framework}"](guard, tools, case)
    assert outcomes == [_expected(case, i) for i in range(len(case["calls"]))], case["comment"]
    assert tools.ran == _allowed_tools(case), case["comment"]


# --- The catalogues through the package (their own suites run them through the CLI) ------------

TOKENS = json.loads((ROOT / "testvectors" / "tokens.json").read_text())
DELEGATION = json.loads((ROOT / "testvectors" / "delegation.json").read_text())
AUDIT = json.loads((ROOT / "testvectors" / "audit_log.json").read_text())


def _catalogue_guard(verifier: dict[str, Any], scope: str = "ledger.ar:read", names: tuple[str, ...] = ()):
    guard = agentiam.Guard(issuer=verifier["issuer"], audience=verifier["audience"], jwks=verifier["jwks"],
                           now=verifier["now"])

    def body(**kwargs: Any) -> str:
        return "ok"

    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names])
    return guard, guard.tool(scope=scope, risk="low", name="act")(body)


@pytest.mark.parametrize("case", [pytest.param(t, id=f"tc{t['tcId']}") for t in TOKENS["tests"]
                                  if "presented_by" not in t])
def test_token_catalogue_through_the_package(case):
    """Promise: what verification refuses, each with its code, through `agentiam.Guard`'s session.
    (Cases that bind the token to a presenting identity need `--expect-agent`/`verify_for_agent`,
    which a guard session over a bearer token does not have: see the README's limits.)"""
    guard, _ = _catalogue_guard(TOKENS["verifier"])
    for jti in TOKENS["verifier"]["revoked_jtis"]:
        guard.revoke(token_id=jti, until=TOKENS["verifier"]["now"] + 86_400)
    try:
        with guard.session(case["token"]):
            code = None
    except agentiam.TokenError as error:
        code = error.code
    assert code == (None if case["result"] == "valid" else case["error"]), case["comment"]


@pytest.mark.parametrize("case", [pytest.param(t, id=f"tc{t['tcId']}") for t in DELEGATION["tests"]
                                  if t["flags"] != ["WrongHolder"]])
def test_delegation_catalogue_through_the_package(case):
    """Promise: delegation only narrows, and every verifier re-checks the chain: each chain attack
    through a guard session, and each narrowed token used through a decorated tool."""
    request = case.get("request")
    if request is None:
        guard, act = _catalogue_guard(DELEGATION["verifier"])
    else:
        guard, act = _catalogue_guard(DELEGATION["verifier"], f"{request['resource']}:{request['action']}",
                                      tuple(sorted(request["args"])))
    for jti in case.get("revoked_jtis", []):
        guard.revoke(token_id=jti, until=DELEGATION["verifier"]["now"] + 86_400)
    try:
        with guard.session(case["token"]):
            if request is not None:
                act(**request["args"])
        code = None
    except agentiam.AgentIAMError as error:
        code = error.code
    assert code == (None if case["result"] == "valid" else case["error"]), case["comment"]


@pytest.mark.parametrize("case", [pytest.param(t, id=f"tc{t['tcId']}") for t in AUDIT["tests"]])
def test_activity_log_catalogue_through_the_package(tmp_path, case):
    """Promise: the activity log is tamper-evident (changed, deleted, inserted, swapped records;
    a cut tail or rewritten history given a checkpoint), checked by `agentiam.verify_audit_log`,
    and `read_audit_log` returns nothing from a log that does not verify."""
    (tmp_path / "00000000000000000000.jsonl").write_text(case["segment"])
    key = AUDIT["verifier_key"] if case["checkpoint"] is not None else None
    for check in (agentiam.verify_audit_log, agentiam.read_audit_log):
        try:
            check(str(tmp_path), case["checkpoint"], key)
            code = None
        except agentiam.AuditError as error:
            code = error.code
        assert code == (None if case["result"] == "valid" else case["error"]), (check.__name__, case["comment"])


# --- Single use across guards: approvals after a restart, DPoP proofs across workers ----------

ISS, AUD = "https://broker.redteam.test", "https://api.redteam.test"


class Deployment:
    """An issuer on the real clock, an approver, and guards that share (or do not share) state."""

    def __init__(self):
        self.issuer = agentiam.Issuer(ISS, agentiam.SigningKey.generate())
        self.agent = agentiam.AgentIdentity("spiffe://redteam.test/agent/ops", ("p", "m", "1"), "You run ops.", [])
        self.issuer.register(self.agent, "ledger.records:delete notes:write")
        self.approver = agentiam.SigningKey.generate()

    def token(self, dpop_jkt: str | None = None) -> str:
        return self.issuer.issue(self.agent, AUD, "ledger.records:delete notes:write", f"task-{uuid.uuid4()}",
                                 "redteam", ttl=600, dpop_jkt=dpop_jkt)

    def guard(self, state: str | None = None):
        guard = agentiam.Guard(issuer=ISS, audience=AUD, jwks=self.issuer.jwks(), state=state,
                               approvers={"alice": json.loads(self.approver.public_jwk())})
        ran: list[str] = []

        @guard.tool(scope="ledger.records:delete", risk="irreversible")
        def delete_records(table: str) -> str:
            ran.append(table)
            return "deleted"

        @guard.tool(scope="notes:write", risk="low")
        def note(text: str) -> str:
            ran.append(text)
            return "noted"

        return guard, delete_records, note, ran


def test_an_approval_stays_used_across_a_restart_only_with_a_shared_state(tmp_path):
    """Promise: each nonce is accepted once. With a shared state (here a SQLite file) an approval
    used before a restart is refused after it; the in-process default keeps used nonces per guard,
    so a new guard object (a restart, another worker) accepts it again until it expires: by
    design, and why several workers need `state=`."""
    d = Deployment()
    token = d.token()
    outcomes = {}
    for state in (f"sqlite:///{tmp_path / 'guard-state.db'}", None):
        first, delete, _, ran = d.guard(state)
        with first.session(token) as session:
            with pytest.raises(ConfirmationRequired) as need:
                delete("staging")
            approval = agentiam.sign_approval(json.dumps(need.value.approval_request), d.approver.private_jwk())
            session.approve(approval)
            assert delete("staging") == "deleted"
        restarted, delete_again, _, ran_again = d.guard(state)
        with restarted.session(token) as session:
            session.approve(approval)
            try:
                delete_again("staging")
                outcomes[state is None] = "allow"
            except Denied as error:
                outcomes[state is None] = error.code
        assert ran == ["staging"]
    assert outcomes == {False: "guard.confirmation_invalid", True: "allow"}


def _dpop_proof(key: agentiam.SigningKey, token: str, url: str) -> str:
    private = json.loads(key.private_jwk())
    public = {k: v for k, v in private.items() if k in ("kty", "crv", "x", "y")}
    pem_key = jwt.PyJWK.from_dict({**private, "alg": "EdDSA"}).key
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    claims = {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": str(uuid.uuid4()), "ath": ath}
    return jwt.encode(claims, pem_key, algorithm="EdDSA", headers={"typ": "dpop+jwt", "jwk": public})


def test_a_dpop_proof_is_single_use_across_guards_sharing_a_state(tmp_path):
    """Promise: DPoP proof `jti`s are single-use across workers: a proof replayed to another guard
    on the same state is refused (`token.pop_invalid`), and the bound token without a proof is
    refused (`token.pop_required`)."""
    d = Deployment()
    holder = agentiam.SigningKey.generate()
    token = d.token(dpop_jkt=holder.thumbprint)
    url = "https://api.redteam.test/notes"
    state = f"sqlite:///{tmp_path / 'guard-state.db'}"
    (a, _, note_a, ran), (b, _, _, _) = d.guard(state), d.guard(state)
    proof = _dpop_proof(holder, token, url)
    with a.session(token, dpop_proof=proof, url=url):
        assert note_a("hi") == "noted"
    codes = []
    for guard, presented in ((b, proof), (a, proof), (b, None)):
        with pytest.raises(agentiam.TokenError) as refused:
            with guard.session(token, dpop_proof=presented, url=url):
                pass
        codes.append(refused.value.code)
    assert codes == ["token.pop_invalid", "token.pop_invalid", "token.pop_required"]
    with b.session(token, dpop_proof=_dpop_proof(holder, token, url), url=url):
        pass  # a fresh proof is accepted
    assert ran == ["hi"]


# --- Secrets never printed ------------------------------------------------------------------------

def test_secrets_never_appear_in_errors_or_reprs(world):
    """Promise: secrets never appear in errors or reprs: private keys given where public ones
    belong, malformed private keys, and state URLs with passwords (any scheme, any failure)."""
    key = agentiam.SigningKey.generate()
    private = json.loads(key.private_jwk())
    secret = private["d"]
    attempts = {
        "a private key as an approver": lambda: _build(world, approvers={"alice": private}),
        "a private key in the JWKS": lambda: _build(world, jwks={"keys": [private]}),
        "a private key whose public half is wrong": lambda: agentiam.SigningKey.from_private_jwk(
            json.dumps({**private, "x": "AAAA"})),
        "a private key cut short": lambda: agentiam.SigningKey.from_private_jwk(key.private_jwk()[:-3]),
        "a verifier given a private key": lambda: agentiam.Verifier(json.dumps({"keys": [private]}), ISS, AUD),
        "an unknown state scheme": lambda: _build(world, state="mysql://ops:hunter2-secret@db.internal/guard"),
        "a state URL that is not a URL": lambda: _build(world, state="hunter2-secret@db.internal"),
        "an unreachable PostgreSQL": lambda: _build(world, state="postgresql://ops:hunter2-secret@127.0.0.1:1/guard"),
        "an unreachable Redis": lambda: _build(world, state="redis://:hunter2-secret@127.0.0.1:1/0"),
        "a PostgreSQL URL that does not parse": lambda: _build(
            world, state={"backend": "postgres", "url": "postgres://ops:hunter2-secret@[::1/guard"}),
    }
    for what, attempt in attempts.items():
        with pytest.raises(Exception) as refused:
            attempt()
        shown = f"{refused.value!s} {refused.value!r} {getattr(refused.value, 'message', '')}"
        assert secret not in shown and "hunter2" not in shown, (what, shown)
    assert secret not in repr(key) and secret not in str(key)


def _build(world, **kwargs: Any) -> None:
    kwargs.setdefault("jwks", world.cfg["jwks"])
    guard = agentiam.Guard(issuer=world.cfg["issuer"], audience=world.cfg["audience"], now=world.now, **kwargs)

    @guard.tool(scope="ledger.invoices:read", risk="low")
    def read_invoice(id: str) -> str:
        return id

    with guard.session(world.token):
        pass


def test_the_activity_log_redacts_secret_argument_names_at_any_depth_and_case(world):
    """Promise: secrets named as such (`password`, `api_key`, `token`, ... and `redact=`) are
    stored as "[REDACTED]" at any depth and in any case, with the arguments' hash kept."""
    guard = world.guard()

    @guard.tool(scope="ledger.invoices:read", risk="low", redact=["iban"])
    def read_invoice(id: str, auth: dict, headers: list, IBAN: str) -> str:
        return "ok"

    secrets = ["hunter2-pw", "sk-live-123", "bearer-abc", "tok-xyz", "DE89370400440532013000"]
    arguments = {"id": "INV-1", "auth": {"user": "bob", "PassWord": secrets[0], "nested": {"API_KEY": [secrets[1]]}},
                 "headers": [{"Authorization": secrets[2]}, {"token": secrets[3]}], "IBAN": secrets[4]}
    with guard.session(world.token):
        read_invoice(**arguments)
    [event] = [e for e in guard.audit_events() if e["kind"] == "tool_call"]
    logged = json.dumps(event)
    assert not [s for s in secrets if s in logged], logged
    assert event["tool"]["args"]["id"] == "INV-1" and event["tool"]["args"]["auth"]["user"] == "bob"
    # The hash of the arguments as called (RFC 8785; here plain sorted compact JSON) is kept.
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":")).encode()
    assert event["tool"]["args_sha256"] == "sha256:" + hashlib.sha256(canonical).hexdigest()


# --- By design: `__wrapped__` is the undecorated function ---------------------------------------

def test_wrapped_is_the_undecorated_function_by_design(world):
    """By design (`functools.wraps`, so frameworks see the original signature and docstring): a
    guarded tool's `__wrapped__` is the undecorated function, and calling it bypasses the guard.
    The guard decides the calls a framework makes on the model's behalf; code running in the
    agent's own process is trusted (README, Guarantees, scope and limits). The frameworks call
    the guarded function, never `__wrapped__`: the vector tests above check that the tool runs
    exactly when allowed through each of them."""
    guard = world.guard()
    ran = []

    def delete_records(table: str) -> str:
        """Delete a table's records."""
        ran.append(table)
        return "deleted"

    guarded = guard.tool(scope="ledger.records:delete", risk="irreversible")(delete_records)
    assert guarded.__wrapped__ is delete_records and inspect.unwrap(guarded) is delete_records
    with guard.session(world.token):
        with pytest.raises(ConfirmationRequired):
            guarded("customers")
        assert ran == []
        assert guarded.__wrapped__("customers") == "deleted"  # outside the guard, as documented
    assert ran == ["customers"]
    assert [d[1] for d in decisions(guard)] == ["escalate"]  # the bypass left no decision


# --- Each framework integration: secure defaults and approvals --------------------------------

ALL = ("package",) + FRAMEWORKS


@pytest.mark.parametrize("framework", ALL)
def test_a_tool_wrapped_without_a_risk_is_high_in_every_integration(world, framework):
    """Promise: unstated risk is high, however the tool is wrapped. A mail tool wrapped without
    `risk=` waits for a human once the session read a page; stated as medium, it runs."""
    case = {"tcId": 0, "calls": [
        {"tool": "web_fetch", "arguments": {"url": "https://acme.test/hours"}, "returns": "Opening hours 9 to 5."},
        {"tool": "send_email", "arguments": {"to": "bob@acme.test", "body": "Hello."}}]}
    outcomes = {}
    for stated in (False, True):
        specs = [{k: v for k, v in s.items() if stated or s["name"] != "send_email" or k != "risk"} for s in TOOL_SPECS]
        guard, tools = world.guard(audit_dir=None), Tools(case)
        outcomes[stated] = globals()[f"_{framework}"](guard, tools, case, specs)
    assert outcomes == {False: [("allow", None), ("confirm", "guard.tainted_context")],
                        True: [("allow", None), ("allow", None)]}


def _generators():
    def export(table: str):
        yield table

    async def stream(table: str):
        yield table

    return export, stream


@pytest.mark.parametrize("framework", ALL)
def test_generator_tools_are_refused_by_every_integration(world, framework):
    """Promise: generator tools are refused (their body would run after the decision, possibly
    outside the session), whichever integration wraps them; nothing is registered."""
    guard = world.guard(audit_dir=None)
    for fn in _generators():
        with pytest.raises(TypeError) as refused:
            if framework == "package":
                guard.tool(scope="ledger.invoices:read", risk="low")(fn)
            elif framework == "langchain":
                from langchain_core.tools import StructuredTool

                from agentiam.integrations.langchain import guard_tool

                lc = (StructuredTool.from_function(coroutine=fn, name=fn.__name__, description="Export.")
                      if inspect.isasyncgenfunction(fn) else
                      StructuredTool.from_function(func=fn, name=fn.__name__, description="Export."))
                guard_tool(guard, lc, scope="ledger.invoices:read", risk="low")
            elif framework == "llamaindex":
                from llama_index.core.tools import FunctionTool

                from agentiam.integrations.llamaindex import guard_tool as li_guard_tool

                li = (FunctionTool.from_defaults(async_fn=fn, name=fn.__name__) if inspect.isasyncgenfunction(fn)
                      else FunctionTool.from_defaults(fn=fn, name=fn.__name__))
                li_guard_tool(guard, li, scope="ledger.invoices:read", risk="low")
            elif framework == "mcp":
                from mcp.server.mcpserver import MCPServer

                from agentiam.integrations.mcp import guard_tool as mcp_guard_tool

                mcp_guard_tool(guard, MCPServer("redteam"), scope="ledger.invoices:read", risk="low")(fn)
            elif framework == "openai_agents":
                from agentiam.integrations.openai_agents import function_tool

                function_tool(guard, scope="ledger.invoices:read", risk="low")(fn)
            else:
                from agentiam.integrations.pydantic_ai import guard_tool as pa_guard_tool

                pa_guard_tool(guard, fn, scope="ledger.invoices:read", risk="low")
        assert "generator function" in str(refused.value), (framework, fn.__name__)
    assert guard.manifest() == [] and guard._config["tools"] == []


class Human:
    """The answers a human gives, one per attempt: each gets the approval request the guard raised."""

    def __init__(self, world, answers):
        self.world, self.answers, self.requests = world, list(answers), []

    def __call__(self, request):
        self.requests.append(request)
        return self.answers.pop(0)(request)


def _approve_package(world, human):
    guard = world.guard(on_confirmation=human, audit_dir=None)
    ran = []

    @guard.tool(scope="ledger.records:delete", risk="irreversible")
    def delete_records(table: str) -> str:
        ran.append(table)
        return "deleted"

    def attempt(table):
        kind, code, _ = _outcome(lambda: delete_records(table))
        return code

    return guard, ran, attempt


def _approve_mcp(world, human):
    from mcp.client import Client
    from mcp.server.mcpserver import MCPServer

    from agentiam.integrations.mcp import guard_tool

    guard = world.guard(on_confirmation=human, audit_dir=None)
    ran = []
    server = MCPServer("redteam")

    @guard_tool(guard, server, scope="ledger.records:delete", risk="irreversible")
    def delete_records(table: str) -> str:
        ran.append(table)
        return "deleted"

    def attempt(table):
        async def main():
            async with Client(server) as client:
                return await client.call_tool("delete_records", {"table": table})

        result = asyncio.run(main())
        text = " ".join(getattr(c, "text", "") for c in result.content)
        return _from_text(text)[1] if getattr(result, "isError", getattr(result, "is_error", None)) else None

    return guard, ran, attempt


def _approve_langchain(world, human):
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode
    from langgraph.types import Command

    from agentiam.integrations.langchain import guard_tool

    guard = world.guard(audit_dir=None)
    ran = []

    @tool
    def delete_records(table: str) -> str:
        """Delete a table's records."""
        ran.append(table)
        return "deleted"

    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode([guard_tool(guard, delete_records, scope="ledger.records:delete",
                                                   risk="irreversible", approvals="interrupt")]))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    graph = builder.compile(checkpointer=InMemorySaver())

    def attempt(table):
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        ask = AIMessage(content="", tool_calls=[{"name": "delete_records", "args": {"table": table}, "id": "c1"}])
        paused = graph.invoke({"messages": [ask]}, config)
        answer = human(paused["__interrupt__"][0].value["agentiam_approval_request"])
        reply = graph.invoke(Command(resume=answer if answer is not None else False), config)["messages"][-1]
        return None if reply.status == "success" else _from_text(reply.content)[1]

    return guard, ran, attempt


def _approve_llamaindex(world, human):
    from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
    from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import FunctionTool
    from llama_index.core.workflow import HumanResponseEvent, InputRequiredEvent

    from agentiam.integrations.llamaindex import guard_tool

    guard = world.guard(audit_dir=None)
    ran = []

    def delete_records(table: str) -> str:
        """Delete a table's records."""
        ran.append(table)
        return "deleted"

    wrapped = guard_tool(guard, FunctionTool.from_defaults(fn=delete_records), scope="ledger.records:delete",
                         risk="irreversible", approvals="workflow")

    def attempt(table):
        turns = [[("delete_records", {"table": table}, "l1")]]

        def respond(messages, **kwargs):
            if turns:
                return ChatMessage(role=MessageRole.ASSISTANT, blocks=[
                    ToolCallBlock(tool_call_id=i, tool_name=n, tool_kwargs=a) for n, a, i in turns.pop(0)])
            return ChatMessage(role=MessageRole.ASSISTANT, content="done")

        agent = FunctionAgent(tools=[wrapped], llm=MockFunctionCallingLLM(response_generator=respond), streaming=False)

        async def main():
            handler = agent.run(user_msg="clean up")
            results = []
            async for event in handler.stream_events():
                if isinstance(event, ToolCallResult):
                    results.append(event.tool_output)
                elif isinstance(event, InputRequiredEvent):
                    answer = human(event.agentiam_approval_request)
                    handler.ctx.send_event(HumanResponseEvent(response=answer or ""))
            await handler
            return results

        [output] = asyncio.run(main())
        return _from_text(output.content)[1] if output.is_error else None

    return guard, ran, attempt


def _approve_openai_agents(world, human):
    from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from agentiam.integrations.openai_agents import function_tool

    set_tracing_disabled(True)
    guard = world.guard(audit_dir=None)
    ran = []

    @function_tool(guard, scope="ledger.records:delete", risk="irreversible")
    def delete_records(table: str) -> str:
        """Delete a table's records."""
        ran.append(table)
        return "deleted"

    def attempt(table):
        class Scripted(Model):
            def __init__(self):
                self.inputs = []

            async def get_response(self, system_instructions, input, *args, **kwargs):
                self.inputs.append(input)
                if len(self.inputs) == 1:
                    output = [ResponseFunctionToolCall(type="function_call", name="delete_records",
                                                       arguments=json.dumps({"table": table}), call_id="c1", id="fc1")]
                else:
                    output = [ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                                    content=[ResponseOutputText(type="output_text", text="done",
                                                                                annotations=[])])]
                return ModelResponse(output=output, usage=Usage(), response_id=None)

            def stream_response(self, *args, **kwargs):
                raise NotImplementedError

        model = Scripted()
        agent = Agent(name="janitor", instructions="Clean up.", tools=[delete_records], model=model)

        async def main():
            with guard.session(world.token) as session:
                paused = await Runner.run(agent, "clean up")
                [item] = paused.interruptions
                answer = human(session.approval_request(item.call_id))
                if answer is not None:
                    try:
                        session.approve(answer)
                    except Denied as error:  # refused at once, when handed over
                        return error.code
                state = paused.to_state()
                state.approve(item)  # the SDK's own approval, which alone is never enough
                await Runner.run(agent, state)
                outputs = [item["output"] for turn in model.inputs if isinstance(turn, list) for item in turn
                           if isinstance(item, dict) and item.get("type") == "function_call_output"]
                return None if outputs == ["deleted"] else _from_text(outputs[-1])[1]

        return asyncio.run(main())

    return guard, ran, attempt


def _approve_pydantic_ai(world, human):
    from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults
    from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from agentiam.integrations.pydantic_ai import guard_tool

    guard = world.guard(audit_dir=None)
    ran = []

    def delete_records(table: str) -> str:
        """Delete a table's records."""
        ran.append(table)
        return "deleted"

    wrapped = guard_tool(guard, delete_records, scope="ledger.records:delete", risk="irreversible")

    def attempt(table):
        def model(messages, info: AgentInfo) -> ModelResponse:
            if len(messages) == 1:
                return ModelResponse(parts=[ToolCallPart("delete_records", {"table": table}, tool_call_id="d1")])
            return ModelResponse(parts=[TextPart("done")])

        agent = Agent(FunctionModel(model), tools=[wrapped], output_type=[str, DeferredToolRequests])
        paused = agent.run_sync("clean up")
        answer = human(paused.output.metadata["d1"]["agentiam"])
        metadata = {} if answer is None else {"d1": {"agentiam_approval": answer}}
        done = agent.run_sync(message_history=paused.all_messages(),
                              deferred_tool_results=DeferredToolResults(approvals={"d1": True}, metadata=metadata))
        if isinstance(done.output, DeferredToolRequests):  # the guard asked again
            return done.output.metadata["d1"]["agentiam"]["code"]
        [part] = [p for m in done.new_messages() for p in getattr(m, "parts", [])
                  if isinstance(p, (ToolReturnPart, RetryPromptPart)) and p.tool_call_id == "d1"]
        if isinstance(part, ToolReturnPart) and getattr(part, "outcome", None) != "retried":
            return None
        return _from_text(str(part.content))[1]

    return guard, ran, attempt


# What each framework answers when the approval given does not open the call: the guard's code,
# or, where the framework only hands over approvals that fit the call (the OpenAI Agents SDK's
# session.approve), the guard asking again.
_NO_ANSWER = {"openai_agents": "guard.confirmation_required", "pydantic_ai": "guard.confirmation_required"}


@pytest.mark.parametrize("framework", ALL)
def test_approving_in_any_framework_opens_only_the_signed_call_once(world, framework):
    """Promise: approving in the framework alone is never enough; the guard runs the tool only
    with a registered approver's signature over that exact call, once. Through each framework's
    own human-in-the-loop flow a human answers: nothing (for table tmp), a genuine approval (the
    call runs), the same approval again, one signed by a key that is not an approver, and the
    approval of the tmp call. Only the genuine one runs the tool, once."""
    stranger = agentiam.SigningKey.generate()
    given: dict[str, str] = {}

    def genuine(request):
        given["approval"] = world.sign(request)
        return given["approval"]

    human = Human(world, [
        lambda request: None,
        genuine,
        lambda request: given["approval"],
        lambda request: agentiam.sign_approval(json.dumps(request), stranger.private_jwk()),
        lambda request: world.sign(human.requests[0]),
    ])
    guard, ran, attempt = globals()[f"_approve_{framework}"](world, human)
    with guard.session(world.token) if framework != "openai_agents" else contextlib.nullcontext():
        codes = [attempt("tmp")] + [attempt("staging") for _ in range(4)]
    assert ran == ["staging"], codes
    assert human.requests[0]["arguments"] == {"table": "tmp"}
    no_answer = _NO_ANSWER.get(framework, "guard.confirmation_denied")
    other_call = "guard.confirmation_required" if framework == "openai_agents" else "guard.confirmation_invalid"
    assert codes == [no_answer, None, "guard.confirmation_invalid", "guard.confirmation_invalid", other_call]


def test_flooding_the_bearer_sessions_does_not_shed_a_tokens_taint():
    """Promise: over MCP's HTTP transport, taint lasts the token's life. The guard keeps a bounded
    table of bearer sessions (oldest dropped first); an attacker who presents thousands of other
    tokens to push the tainted token's session out gets a new session for it that is still
    tainted, because taint lives with the task, not with the session object."""
    from agentiam._guard import _MAX_BEARER_SESSIONS

    issuer = agentiam.Issuer(ISS, agentiam.SigningKey.generate())
    agent = agentiam.AgentIdentity("spiffe://redteam.test/agent/flood", ("p", "m", "1"), "You fetch.", [])
    issuer.register(agent, "web:fetch payments:transfer")
    tokens = [issuer.issue(agent, AUD, "web:fetch payments:transfer", f"task-{i}", "flood", ttl=600)
              for i in range(_MAX_BEARER_SESSIONS + 1)]
    guard = agentiam.Guard(issuer=ISS, audience=AUD, jwks=issuer.jwks())
    ran = []

    @guard.tool(scope="web:fetch", risk="low", untrusted_output=True)
    def fetch(url: str) -> str:
        return "Opening hours 9 to 5."

    @guard.tool(scope="payments:transfer", risk="high")
    def transfer(amount: int) -> str:
        ran.append(amount)
        return "paid"

    first = guard.bearer_session(tokens[0])
    with guard.using(first):
        fetch("https://acme.test/hours")
    for token in tokens[1:]:
        guard.bearer_session(token)
    again = guard.bearer_session(tokens[0])
    assert again is not first  # pushed out and made anew
    with guard.using(again):
        with pytest.raises(ConfirmationRequired) as need:
            transfer(5)
    assert need.value.code == "guard.tainted_context" and ran == []
