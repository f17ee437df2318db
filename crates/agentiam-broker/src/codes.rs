//! The reason codes the broker raises (see `agentiam-codes`). Token, identity and scope
//! refusals keep their own crates' codes.

pub use agentiam_broker_client::codes::{BAD_REQUEST, UNREACHABLE};

agentiam_codes::codes! {
    raised_by = "agentiam-broker";
    /// The broker's store (SQLite or PostgreSQL) could not be read or written.
    STORE_UNAVAILABLE = "broker.store_unavailable", 500;
    /// The broker's configuration is unusable.
    CONFIG_INVALID = "broker.config_invalid", 500;
    /// The broker's activity log could not record, flush or checkpoint; the step is not taken.
    AUDIT_UNAVAILABLE = "broker.audit_unavailable", 503;
    /// A request body is larger than the broker reads (64 KiB).
    BODY_TOO_LARGE = "broker.body_too_large", 413;
    /// The administrator's (or the approvals API's) credential is missing or wrong.
    UNAUTHORIZED = "broker.unauthorized", 401;
    /// The client's authentication (a `private_key_jwt` assertion) was refused.
    CLIENT_AUTH_FAILED = "broker.client_auth_failed", 401;
    /// A client assertion's `jti` was used before.
    ASSERTION_REPLAYED = "broker.assertion_replayed", 401;
    /// The grant type is not one the broker serves (client credentials, token exchange).
    UNSUPPORTED_GRANT_TYPE = "broker.unsupported_grant_type", 400;
    /// The system's random source failed; nothing was issued.
    ENTROPY_UNAVAILABLE = "broker.entropy_unavailable", 500;
    /// No such approval request, agent or page.
    NOT_FOUND = "broker.not_found", 404;
    /// The approval request was already approved or denied.
    APPROVAL_SETTLED = "broker.approval_settled", 409;
    /// The approval request expired before anyone answered it.
    APPROVAL_EXPIRED = "broker.approval_expired", 409;
    /// The same approval request is already waiting.
    APPROVAL_DUPLICATE = "broker.approval_duplicate", 409;
    /// The agent has as many approval requests waiting as it may.
    TOO_MANY_PENDING = "broker.too_many_pending", 429;
    /// The approval request names another principal, task or chain than the agent's token.
    CHAIN_MISMATCH = "broker.chain_mismatch", 403;
    /// A console form without its CSRF token, or with another session's.
    CSRF_FAILED = "broker.csrf_failed", 403;
    /// A console sign-in with a wrong name or password.
    LOGIN_FAILED = "broker.login_failed", 401;
    /// Too many failed console sign-ins; wait before trying again.
    LOGIN_THROTTLED = "broker.login_throttled", 429;
    /// An agent introspected or revoked a token that is not its own or delegated from its own.
    NOT_YOUR_TOKEN = "broker.not_your_token", 400;
    /// An initial access token (RFC 7591) that the broker did not issue, or that is malformed.
    INITIAL_ACCESS_TOKEN_INVALID = "broker.initial_access_token_invalid", 401;
    /// An initial access token past its expiry.
    INITIAL_ACCESS_TOKEN_EXPIRED = "broker.initial_access_token_expired", 401;
    /// An initial access token that was already used (single use across replicas).
    INITIAL_ACCESS_TOKEN_USED = "broker.initial_access_token_used", 401;
    /// A registration access token (RFC 7592) that does not match the registration.
    REGISTRATION_TOKEN_INVALID = "broker.registration_token_invalid", 401;
    /// A registration names a client (SPIFFE ID) that is already registered.
    CLIENT_EXISTS = "broker.client_exists", 400;
    /// Registration metadata the broker does not accept (RFC 7591 `invalid_client_metadata`).
    INVALID_CLIENT_METADATA = "broker.invalid_client_metadata", 400;
    /// A registration carries a software statement, which the broker does not accept.
    SOFTWARE_STATEMENT_UNSUPPORTED = "broker.software_statement_unsupported", 400;
    /// The person's token does not let this agent act for them (`may_act`).
    MAY_ACT_REFUSED = "broker.may_act_refused", 400;
    /// A trusted identity provider's keys could not be fetched.
    IDENTITY_PROVIDER_UNAVAILABLE = "broker.identity_provider_unavailable", 503;
}
