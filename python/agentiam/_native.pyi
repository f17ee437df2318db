"""Type stubs for the PyO3 module `agentiam._native` (bindings/python)."""

from collections.abc import Callable
from typing import Any

from typing_extensions import Self, final

__all__ = [
    "scan_text",
    "sanitize_text",
    "encoder_status",
    "spotlight_text",
    "Guard",
    "Session",
    "SigningKey",
    "AgentIdentity",
    "Issuer",
    "Verifier",
    "KeySet",
    "AuditLog",
    "attenuate",
    "sign_approval",
    "verify_audit_log",
    "read_audit_log",
    "check_guard_config",
    "scope_quote",
    "cli",
    "Refusal",
    "__version__",
]

__version__: str

# Errors are the classes of `agentiam.exceptions`, raised with (code, message).

@final
class Refusal:
    """A call the guard did not allow."""

    @property
    def kind(self) -> str:
        """"deny" or "confirm"."""
    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def approval_request(self) -> str | None:
        """The JSON a human signs (a "confirm" only)."""

def check_guard_config(config_json: str) -> None: ...
def scope_quote(text: str) -> str: ...
def cli(argv: list[str]) -> int: ...

@final
class Session:
    @property
    def tainted(self) -> bool: ...
    @property
    def subject(self) -> str: ...
    @property
    def presenter(self) -> str: ...
    @property
    def task(self) -> str | None: ...
    @property
    def scope(self) -> str: ...
    def taint(self, source: str, text: str | None = None) -> None: ...
    def before(
        self, tool: str, arguments: Any, call_id: str | None = None, approval_json: str | None = None
    ) -> Refusal | None: ...
    def after(self, tool: str, output: str, failed: bool = False, call_id: str | None = None) -> str: ...
    def refused(
        self, tool: str, arguments: Any, call_id: str | None = None, reason: str = "no human approved the call"
    ) -> Refusal: ...
    def screen_approval(self, approval_json: str) -> Refusal | None: ...
    def approval_fits(self, approval_json: str, tool: str, arguments: Any) -> bool: ...

@final
class Guard:
    def __new__(cls, config_json: str, now: int | None = None, audit_log: AuditLog | None = None) -> Self: ...
    def session(
        self,
        token: str,
        session_id: str,
        dpop_proof: str | None = None,
        method: str = "POST",
        url: str = "",
    ) -> Session: ...
    def flush(self) -> None: ...
    def revoke(self, kind: str, value: str, until: int) -> None: ...
    def follow_jwks(self, fetch: Callable[[], str], min_interval_secs: int) -> None: ...
    def baseline(self, role: str) -> str | None: ...
    def save_baselines(self, path: str) -> None: ...

@final
class SigningKey:
    @staticmethod
    def generate(alg: str = "EdDSA") -> SigningKey: ...
    @staticmethod
    def from_private_jwk(jwk: str) -> SigningKey: ...
    def private_jwk(self) -> str: ...
    def public_jwk(self) -> str: ...
    @property
    def kid(self) -> str: ...
    @property
    def thumbprint(self) -> str: ...
    def client_assertion(self, client_id: str, audience: str, lifetime: int = 60) -> str: ...

@final
class AgentIdentity:
    def __new__(
        cls,
        spiffe_id: str,
        model: tuple[str, str, str],
        system_prompt: str,
        tools: list[dict[str, Any]],
        runtime_kind: str = "process",
        runtime: dict[str, str] | None = None,
    ) -> Self: ...
    @property
    def spiffe_id(self) -> str: ...
    @property
    def composite_digest(self) -> str: ...
    def attestation_evidence(self) -> str: ...

@final
class Issuer:
    def __new__(cls, issuer: str, key: SigningKey) -> Self: ...
    def register(self, agent: AgentIdentity, max_scopes: str) -> None: ...
    def issue(
        self,
        agent: AgentIdentity,
        audience: str,
        scopes: str,
        task_id: str,
        purpose: str,
        ttl: int | None = None,
        dpop_jkt: str | None = None,
        intent: bool = False,
    ) -> str: ...
    def jwks(self) -> str: ...
    def rotate(self, next: SigningKey) -> None: ...
    def delegate(
        self,
        parent_token: str,
        actor: AgentIdentity,
        audience: str,
        scopes: str | None = None,
        ttl: int | None = None,
        calls: int | None = None,
        intent: bool = False,
    ) -> str: ...

@final
class Verifier:
    def __new__(cls, jwks: str, issuer: str, audience: str) -> Self: ...
    def verify(self, token: str) -> dict[str, Any]: ...

@final
class KeySet:
    def __new__(cls, active: SigningKey) -> Self: ...
    def active_kid(self) -> str: ...
    def rotate(self, next: SigningKey, now: int, max_token_lifetime: int) -> None: ...
    def prune(self, now: int) -> None: ...
    def jwks(self, now: int) -> str: ...

@final
class AuditLog:
    def __new__(
        cls,
        directory: str,
        origin: str | None = None,
        signer_key: str | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_secs: float = 10.0,
        preallocate_bytes: int = 0,
    ) -> Self: ...
    @property
    def directory(self) -> str: ...
    @property
    def signed(self) -> bool: ...
    def close(self) -> str | None: ...
    def record(
        self,
        kind: str,
        spiffe_id: str,
        *,
        time_unix_ms: int | None = None,
        outcome: str = "record",
        code: str | None = None,
        input: str | None = None,
        tool: str | None = None,
        arguments: Any = None,
        call_id: str | None = None,
        task_id: str | None = None,
        on_behalf_of: str | None = None,
        data_accessed: list[str] = ...,
        composite_digest: str | None = None,
    ) -> str: ...
    def flush(self) -> int: ...
    def checkpoint(self) -> str: ...

def attenuate(
    holder_key: SigningKey,
    parent: str,
    next_jkt: str,
    scopes: str,
    ttl: int,
    calls: int | None = None,
    sub: str | None = None,
    jti: str | None = None,
    now: int | None = None,
    intent: bool = False,
) -> str: ...
def read_audit_log(
    directory: str, checkpoint: str | None = None, verifier_key: str | None = None
) -> list[str]: ...
def verify_audit_log(
    directory: str, checkpoint: str | None = None, verifier_key: str | None = None
) -> tuple[int, int]: ...
def sign_approval(request_json: str, private_jwk: str) -> str: ...
def scan_text(text: str, threshold: float = 0.5, model: bool = True, sanitize: bool = False) -> str: ...
def sanitize_text(text: str) -> str: ...
def encoder_status() -> str: ...
def spotlight_text(text: str, mode: str, boundary: bytes, marker: str) -> tuple[str, str]: ...
