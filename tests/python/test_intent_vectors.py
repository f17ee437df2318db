"""testvectors/intent.json through the Python package (the same cases the Rust interceptor runs
in crates/agentiam-guard/tests/vectors_intent.rs): a session under a token, what it read, and
one call, with the decision and reason code each case states."""

import inspect
import json
import pathlib

import pytest

import agentiam
from agentiam import ConfirmationRequired, Denied

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "intent.json").read_text())
ISSUER = "https://broker.vectors.test"
AUDIENCE = "https://api.vectors.test"


def test_the_catalogue_is_whole():
    assert len(DOC["tests"]) == DOC["numberOfTests"]
    assert all(flag in DOC["notes"] for case in DOC["tests"] for flag in case["flags"])


def tool_function(name: str, argument_names: list[str], output: str):
    """A tool taking exactly these keyword arguments and returning `output`."""

    def fn(**kwargs):
        return output

    fn.__name__ = name
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter(a, inspect.Parameter.KEYWORD_ONLY) for a in argument_names]
    )
    return fn


@pytest.mark.parametrize("case", DOC["tests"], ids=lambda c: f"tc{c['tcId']}")
def test_intent_vector(case):
    issuer = agentiam.Issuer(ISSUER, agentiam.SigningKey.generate())
    agent = agentiam.AgentIdentity("spiffe://vectors.test/agent/assistant", ("p", "m", "1"), "You assist.", [])
    issuer.register(agent, DOC["registration"])
    guard = agentiam.Guard(issuer=ISSUER, audience=AUDIENCE, jwks=issuer.jwks(), outbound_hosts=DOC["outbound_hosts"])
    uses = {r[0]: (r[1], r[2]) for r in case["reads"]}
    uses[case["call"][0]] = (case["call"][1], "ran")
    tools = {}
    for spec in DOC["tools"]:
        args, output = uses.get(spec["name"], ({}, ""))
        options = {k: spec[k] for k in ("intent_arguments", "outbound_arguments", "untrusted_fields") if k in spec}
        tools[spec["name"]] = guard.tool(
            scope=spec["scope"], risk=spec["risk"], untrusted_output=spec.get("untrusted_output", False),
            name=spec["name"], **options,
        )(tool_function(spec["name"], list(args), output))

    def read():
        for name, args, _ in case["reads"]:
            tools[name](**args)

    task = f"task-{case['tcId']}"
    if case["token"] == "late":
        broad = issuer.issue(agent, AUDIENCE, DOC["registration"], task, "vectors")
        with guard.session(broad):
            read()
        token = issuer.delegate(broad, agent, AUDIENCE, scopes=case["scopes"], intent=True)
    else:
        token = issuer.issue(agent, AUDIENCE, case["scopes"], task, "vectors", intent=case["token"] == "intent")
    with guard.session(token):
        if case["token"] != "late":
            read()
        name, args = case["call"]
        try:
            tools[name](**args)
            got = ("allow", None)
        except ConfirmationRequired as e:
            got = ("confirm", e.code)
        except Denied as e:
            got = ("deny", e.code)
    assert got == (case["result"], case["code"]), case["comment"]
