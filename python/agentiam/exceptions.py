"""Every error agentiam raises, in one hierarchy.

Each carries `code`, the stable reason code (`token.expired`, `guard.scope_missing`, ...; the
list is `docs/reason-codes.md`), and `message`, for people. Match on the class for the kind of
failure and on `code` for the reason; messages may change, codes never do.

    AgentIAMError
    ├── TokenError              a credential was refused (token.*)
    │   └── DelegationError     a delegation would widen rights or its chain is broken (delegation.*)
    ├── ConfigurationError      a guard configuration, policy, key or identity is unusable
    ├── AuditError              the activity log refused an operation (audit.*)
    ├── Denied                  the guard refused a call; the tool did not run
    │   └── ConfirmationRequired    the call needs a human's signed approval first
    └── BrokerError             the broker refused a request, or could not be reached

The native extension raises these classes too (it looks them up here by the code's family).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentIAMError",
    "AuditError",
    "BrokerError",
    "ConfigurationError",
    "ConfirmationRequired",
    "DelegationError",
    "Denied",
    "TokenError",
]


class AgentIAMError(Exception):
    """Base of every agentiam error: `code` is the stable reason code, `message` the explanation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TokenError(AgentIAMError):
    """A credential was refused (`token.*`)."""


class DelegationError(TokenError):
    """A delegation would widen rights or its chain is broken (`delegation.*`)."""


class ConfigurationError(AgentIAMError, ValueError):
    """A guard configuration, policy, key or identity is unusable (`guard.*`, `key.*`,
    `identity.*`, `scope.*`, `baseline.*`). Raised where the configuration is written
    (`Guard(...)`, `@guard.tool(...)`), not at the first call. Also a `ValueError`."""


class AuditError(AgentIAMError):
    """The activity log refused an operation (`audit.*`)."""


class Denied(AgentIAMError):
    """The guard refused the call; the tool did not run."""


class ConfirmationRequired(Denied):
    """The call needs a human's signed approval of `approval_request` (a dict); the tool did not run.

    Sign it (`agentiam.sign_approval`, or the broker's console), give the approval to the session
    (`session.approve(approval)`) and call the tool again.
    """

    def __init__(self, code: str, message: str, approval_request: dict[str, Any]) -> None:
        super().__init__(code, message)
        self.approval_request = approval_request


class BrokerError(AgentIAMError):
    """The broker refused a request (`code` is its reason code, `status` the HTTP status), or
    could not be reached (`broker.unreachable`, `status` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = status
