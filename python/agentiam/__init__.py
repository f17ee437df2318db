"""agentiam: identity and access management for AI agents.

One decorator per tool: every call is decided by the Rust guard (token scope with argument
constraints, Cedar policy, session taint, human confirmation) before the tool runs.

    guard = agentiam.Guard(issuer=..., audience=..., jwks=..., policy=...)

    @guard.tool(scope="payments:approve", risk="high")
    def approve_payment(amount: int, vendor: str) -> str:
        ...

    with guard.session(token):
        approve_payment(amount=420, vendor="ACME")   # runs only if allowed
"""

from ._audit import LogVerification, read_audit_log, verify_audit_log
from ._broker import (
    BrokerApprovals,
    approver_keys,
    exchange_token,
    register_agent,
    request_token,
    revoke_at_broker,
)
from ._guard import Guard, GuardSession, Refused, framework_call
from ._scan import EncoderStatus, Spotlighted, encoder_status, sanitize, scan, spotlight
from .exceptions import (
    AgentIAMError,
    AuditError,
    BrokerError,
    ConfigurationError,
    ConfirmationRequired,
    DelegationError,
    Denied,
    TokenError,
)
from ._native import (
    AgentIdentity,
    AuditLog,
    Issuer,
    KeySet,
    SigningKey,
    Verifier,
    attenuate,
    scope_quote,
    sign_approval,
)
from ._native import __version__ as __version__

__all__ = [
    "Refused",
    "AgentIAMError",
    "AgentIdentity",
    "AuditLog",
    "BrokerApprovals",
    "BrokerError",
    "Issuer",
    "KeySet",
    "LogVerification",
    "SigningKey",
    "EncoderStatus",
    "Spotlighted",
    "Verifier",
    "AuditError",
    "ConfigurationError",
    "ConfirmationRequired",
    "DelegationError",
    "Denied",
    "Guard",
    "GuardSession",
    "TokenError",
    "approver_keys",
    "attenuate",
    "exchange_token",
    "framework_call",
    "read_audit_log",
    "register_agent",
    "request_token",
    "revoke_at_broker",
    "sanitize",
    "scan",
    "scope_quote",
    "sign_approval",
    "spotlight",
    "encoder_status",
    "verify_audit_log",
    "__version__",
]
