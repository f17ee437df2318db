//! The reason codes this crate raises (see `agentiam-codes`): tokens, scopes, proofs of
//! possession, delegation records, and the scope check the guard runs first.

agentiam_codes::codes! {
    raised_by = "agentiam-token";
    /// Not a compact JWS, bad base64url, JSON that is not an object, or a bad header.
    MALFORMED = "token.malformed", 401;
    /// Larger than the size cap; nothing was decoded.
    TOO_LARGE = "token.too_large", 401;
    /// The signature does not verify under the key named by `kid`.
    BAD_SIGNATURE = "token.bad_signature", 401;
    /// The header's `alg` is not allowed, or not the algorithm of the key.
    ALG_NOT_ALLOWED = "token.alg_not_allowed", 401;
    /// No trusted key has this `kid`.
    UNKNOWN_KEY = "token.unknown_key", 401;
    /// The header lists critical extensions (`crit`), which agentiam does not implement.
    CRIT_UNSUPPORTED = "token.crit_unsupported", 401;
    /// The header's `typ` says this is another kind of JWT (a DPoP proof, a client assertion).
    WRONG_TYPE = "token.wrong_type", 401;
    /// `exp` has passed (beyond the leeway), or the token expired since it was verified.
    EXPIRED = "token.expired", 401;
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    NOT_YET_VALID = "token.not_yet_valid", 401;
    /// `aud` does not contain the verifier's audience.
    WRONG_AUDIENCE = "token.wrong_audience", 401;
    /// `iss` is not the trusted issuer.
    WRONG_ISSUER = "token.wrong_issuer", 401;
    /// A required claim is absent.
    MISSING_CLAIM = "token.missing_claim", 401;
    /// A claim is present with the wrong JSON type or an invalid value.
    INVALID_CLAIM = "token.invalid_claim", 401;
    /// The token, its agent, its task or an ancestor token has been revoked.
    REVOKED = "token.revoked", 401;
    /// The revocation store could not be consulted; the verifier fails closed.
    REVOCATION_UNAVAILABLE = "token.revocation_unavailable", 503;
    /// The token was issued to another agent or another composite identity.
    IDENTITY_MISMATCH = "token.identity_mismatch", 401;
    /// The token is sender-constrained (`cnf`) and no proof of possession was presented.
    POP_REQUIRED = "token.pop_required", 401;
    /// The proof of possession (DPoP proof, client certificate) is invalid or replayed.
    POP_INVALID = "token.pop_invalid", 401;
    /// A scope string does not follow the grammar.
    SCOPE_INVALID = "scope.invalid", 400;
    /// A number in a scope constraint or an argument cannot be compared exactly.
    SCOPE_INEXACT_NUMBER = "scope.inexact_number", 400;
    /// The requested scopes exceed the agent's registered maximum.
    SCOPE_NOT_PERMITTED = "token.scope_not_permitted", 400;
    /// The agent is not registered with this issuer.
    UNREGISTERED_AGENT = "token.unregistered_agent", 401;
    /// The requested lifetime exceeds the issuer's hard maximum.
    LIFETIME_TOO_LONG = "token.lifetime_too_long", 400;
    /// The request to issue a token is invalid.
    INVALID_REQUEST = "token.invalid_request", 400;
    /// Signing failed.
    SIGNING_FAILED = "token.signing_failed", 500;
    /// A delegated token (or a requested one) holds a scope its parent did not.
    SCOPE_WIDENED = "delegation.scope_widened", 400;
    /// A delegated token outlives its parent.
    EXPIRY_EXTENDED = "delegation.expiry_extended", 400;
    /// A delegated token's call budget is larger than its parent's.
    BUDGET_WIDENED = "delegation.budget_widened", 400;
    /// The delegation chain is deeper than allowed.
    DEPTH_EXCEEDED = "delegation.depth_exceeded", 400;
    /// The delegation records are inconsistent.
    BROKEN_CHAIN = "delegation.broken_chain", 401;
    /// The token's chain already declared its task's intent; it can be narrowed, not declared again.
    INTENT_REDECLARED = "delegation.intent_redeclared", 400;
    /// An ancestor token or agent in the delegation chain was revoked.
    REVOKED_ANCESTOR = "delegation.revoked_ancestor", 401;
    /// No scope of the token covers the tool or route (resource and action).
    SCOPE_MISSING = "guard.scope_missing", 403;
    /// A scope covers the tool but an argument breaks its constraint.
    CONSTRAINT_VIOLATED = "guard.constraint_violated", 403;
}
