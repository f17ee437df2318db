"""Type stubs for the PyO3 module `agentiam._native` (bindings/python)."""

from typing import Any

from typing_extensions import Self, final

__all__ = ["Guard", "Session", "sign_approval", "AgentIAMError", "TokenError", "ConfigurationError", "AuditError", "__version__"]

__version__: str

class AgentIAMError(Exception):
    code: str
    message: str

class TokenError(AgentIAMError): ...
class ConfigurationError(AgentIAMError): ...
class AuditError(AgentIAMError): ...

# (kind, code, message, approval_request_json); kind is "allow", "deny" or "confirm".
_Decision = tuple[str, str | None, str, str | None]

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
    def taint(self, source: str) -> None: ...
    def before(
        self, tool: str, arguments: Any, call_id: str | None = None, approval_json: str | None = None
    ) -> _Decision: ...
    def after(self, tool: str, output: str, failed: bool = False, call_id: str | None = None) -> str: ...

@final
class Guard:
    def __new__(cls, config_json: str, now: int | None = None, audit_dir: str | None = None) -> Self: ...
    def session(
        self,
        token: str,
        session_id: str,
        dpop_proof: str | None = None,
        method: str = "POST",
        url: str = "",
    ) -> Session: ...
    def flush(self) -> None: ...

def sign_approval(request_json: str, private_jwk: str) -> str: ...
