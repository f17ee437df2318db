//! The reason codes this crate raises (see `agentiam-codes`): identities, keys, certificates.

agentiam_codes::codes! {
    raised_by = "agentiam-identity";
    /// The text is not a valid SPIFFE ID or trust domain.
    BAD_SPIFFE_ID = "identity.bad_spiffe_id", 400;
    /// The tool manifest names the same tool twice.
    DUPLICATE_TOOL = "identity.duplicate_tool", 400;
    /// A value could not be canonicalized (RFC 8785) for hashing.
    CANONICALIZATION = "identity.canonicalization", 400;
    /// Attestation evidence (model, configuration, runtime, process) did not match what was
    /// registered or expected.
    ATTESTATION_FAILED = "identity.attestation_failed", 401;
    /// A certificate could not be generated, parsed or verified.
    CERTIFICATE = "identity.certificate", 0;
    /// An identity's parts are not of the expected shape (the Python `AgentIdentity`'s tools
    /// are not a list of tool descriptors).
    INVALID = "identity.invalid", 0;
    /// A key could not be generated, parsed or used.
    KEY_INVALID = "key.invalid", 400;
    /// A JWK uses a key type, curve or algorithm that agentiam does not accept.
    KEY_UNSUPPORTED = "key.unsupported", 400;
    /// A JWKS document is not valid JSON of the expected shape.
    BAD_JWKS = "key.bad_jwks", 400;
}
