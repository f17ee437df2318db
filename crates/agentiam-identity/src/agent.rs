//! The composite agent identity: who the agent is, which model runs it,
//! which prompt and tools configure it, and where it runs.
//!
//! Each component is hashed over its RFC 8785 canonical JSON, and the
//! [`AgentIdentity::composite_digest`] covers all of them: a new model version,
//! an edited system prompt, a reworded tool description or a new container image
//! is a different identity, and tokens bound to the old one stop working.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spiffe::SpiffeId;

use crate::{IdentityError, Sha256Digest, error::clip_for_message};

/// Parses a SPIFFE ID (`spiffe://trust-domain/path`), with a clear error.
///
/// ```
/// let id = agentiam_identity::parse_spiffe_id("spiffe://acme.example/agent/billing").unwrap();
/// assert_eq!(id.trust_domain_name(), "acme.example");
/// let err = agentiam_identity::parse_spiffe_id("https://acme.example/agent").unwrap_err();
/// assert_eq!(err.code(), "identity.bad_spiffe_id");
/// ```
pub fn parse_spiffe_id(text: &str) -> Result<SpiffeId, IdentityError> {
    SpiffeId::new(text).map_err(|e| IdentityError::BadSpiffeId {
        input: clip_for_message(text),
        reason: e.to_string(),
    })
}

/// Parses a SPIFFE trust domain name (`acme.example`) or a SPIFFE ID's trust domain.
pub fn parse_trust_domain(text: &str) -> Result<spiffe::TrustDomain, IdentityError> {
    spiffe::TrustDomain::new(text).map_err(|e| IdentityError::BadSpiffeId {
        input: clip_for_message(text),
        reason: e.to_string(),
    })
}

/// The model that drives the agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    /// Who serves the model, e.g. `openai`, `anthropic`, `local`.
    pub provider: String,
    /// The model's name, e.g. `gpt-5`.
    pub name: String,
    /// The exact version or snapshot, e.g. `2026-08-01`.
    pub version: String,
}

impl ModelRef {
    /// A model reference.
    pub fn new(
        provider: impl Into<String>,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            provider: provider.into(),
            name: name.into(),
            version: version.into(),
        }
    }
}

/// One tool the agent may call, as the model sees it.
///
/// The description is part of the identity on purpose: a reworded description
/// changes what the model will do with the tool ("tool poisoning").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDescriptor {
    /// The tool's name.
    pub name: String,
    /// The description shown to the model.
    pub description: String,
    /// The JSON Schema of the tool's arguments.
    pub input_schema: serde_json::Value,
}

impl ToolDescriptor {
    /// A tool descriptor.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            input_schema,
        }
    }

    /// SHA-256 over the RFC 8785 canonical JSON of `{"name", "description", "input_schema"}`:
    /// the tool's pin. A token issued to an identity carries one per tool, so a service can
    /// refuse a tool whose description or schema changed after the token was issued.
    pub fn digest(&self) -> Result<Sha256Digest, IdentityError> {
        Sha256Digest::of_canonical_json(self, "tool descriptor")
    }
}

/// The configuration that shapes the agent's behaviour: system prompt and tool manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfiguration {
    /// The system prompt, verbatim.
    pub system_prompt: String,
    /// The tools the agent is given.
    pub tools: Vec<ToolDescriptor>,
}

impl AgentConfiguration {
    /// A configuration from a prompt and a tool manifest.
    pub fn new(system_prompt: impl Into<String>, tools: Vec<ToolDescriptor>) -> Self {
        Self {
            system_prompt: system_prompt.into(),
            tools,
        }
    }

    /// SHA-256 over the RFC 8785 canonical JSON of
    /// `{"system_prompt": ..., "tools": [{"name", "description", "input_schema"}, ...]}`,
    /// with tools sorted by name.
    ///
    /// The manifest is a set: listing the same tools in another order is the same
    /// configuration, but naming one tool twice is an error, because it would let two
    /// different descriptions hide behind one name.
    pub fn digest(&self) -> Result<Sha256Digest, IdentityError> {
        let mut tools: Vec<&ToolDescriptor> = self.tools.iter().collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in tools.windows(2) {
            if let [a, b] = pair
                && a.name == b.name
            {
                return Err(IdentityError::DuplicateTool(clip_for_message(&a.name)));
            }
        }
        #[derive(Serialize)]
        struct Canonical<'a> {
            system_prompt: &'a str,
            tools: Vec<&'a ToolDescriptor>,
        }
        Sha256Digest::of_canonical_json(
            &Canonical {
                system_prompt: &self.system_prompt,
                tools,
            },
            "agent configuration",
        )
    }

    /// Each tool's [`ToolDescriptor::digest`], by name (an error if a name repeats).
    pub fn tool_digests(&self) -> Result<BTreeMap<String, Sha256Digest>, IdentityError> {
        let mut pins = BTreeMap::new();
        for tool in &self.tools {
            if pins.insert(tool.name.clone(), tool.digest()?).is_some() {
                return Err(IdentityError::DuplicateTool(clip_for_message(&tool.name)));
            }
        }
        Ok(pins)
    }
}

/// Where the agent runs: a kind (`container`, `process`, `lambda`, ...) and attested attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RuntimeDescriptor {
    /// The kind of runtime.
    pub kind: String,
    /// Attributes such as `image_digest`, `executable_sha256`, `uid`.
    pub attributes: BTreeMap<String, String>,
}

impl RuntimeDescriptor {
    /// A runtime of the given kind with no attributes yet.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// SHA-256 over the RFC 8785 canonical JSON of `{"kind", "attributes"}`.
    pub fn digest(&self) -> Result<Sha256Digest, IdentityError> {
        Sha256Digest::of_canonical_json(self, "runtime")
    }
}

/// A composite agent identity: SPIFFE ID + model + configuration + runtime.
///
/// ```
/// use agentiam_identity::*;
/// let config = AgentConfiguration::new(
///     "You reconcile invoices.",
///     vec![ToolDescriptor::new("read_ledger", "Reads the AR ledger", serde_json::json!({"type": "object"}))],
/// );
/// let agent = AgentIdentity::new(
///     parse_spiffe_id("spiffe://acme.example/agent/reconciler")?,
///     ModelRef::new("openai", "gpt-5", "2026-08-01"),
///     &config,
///     RuntimeDescriptor::new("container").with("image_digest", "sha256:abc"),
/// )?;
/// let mut edited = config.clone();
/// edited.system_prompt.push_str(" Also wire money.");
/// let other = AgentIdentity::new(
///     agent.spiffe_id().clone(), agent.model().clone(), &edited, agent.runtime().clone(),
/// )?;
/// assert_ne!(agent.composite_digest(), other.composite_digest());
/// # Ok::<(), IdentityError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AgentIdentity {
    spiffe_id: SpiffeId,
    model: ModelRef,
    configuration_digest: Sha256Digest,
    runtime: RuntimeDescriptor,
    runtime_digest: Sha256Digest,
    composite_digest: Sha256Digest,
    tool_pins: BTreeMap<String, Sha256Digest>,
}

impl AgentIdentity {
    /// Builds the identity and computes every digest.
    pub fn new(
        spiffe_id: SpiffeId,
        model: ModelRef,
        configuration: &AgentConfiguration,
        runtime: RuntimeDescriptor,
    ) -> Result<Self, IdentityError> {
        let mut identity = Self::from_parts(spiffe_id, model, configuration.digest()?, runtime)?;
        identity.tool_pins = configuration.tool_digests()?;
        Ok(identity)
    }

    /// Builds the identity from an already attested configuration digest.
    /// It pins no tools; [`AgentIdentity::with_tool_pins`] adds the manifest's pins.
    pub fn from_parts(
        spiffe_id: SpiffeId,
        model: ModelRef,
        configuration_digest: Sha256Digest,
        runtime: RuntimeDescriptor,
    ) -> Result<Self, IdentityError> {
        let runtime_digest = runtime.digest()?;
        #[derive(Serialize)]
        struct Canonical<'a> {
            spiffe_id: String,
            model: &'a ModelRef,
            configuration_digest: Sha256Digest,
            runtime_digest: Sha256Digest,
        }
        let composite_digest = Sha256Digest::of_canonical_json(
            &Canonical {
                spiffe_id: spiffe_id.to_string(),
                model: &model,
                configuration_digest,
                runtime_digest,
            },
            "agent identity",
        )?;
        Ok(Self {
            spiffe_id,
            model,
            configuration_digest,
            runtime,
            runtime_digest,
            composite_digest,
            tool_pins: BTreeMap::new(),
        })
    }

    /// Pins the tools of an attested manifest (from [`AgentConfiguration::tool_digests`]).
    /// The pins do not change the composite digest: the configuration digest already covers them.
    pub fn with_tool_pins(mut self, pins: BTreeMap<String, Sha256Digest>) -> Self {
        self.tool_pins = pins;
        self
    }

    /// Each tool's descriptor digest, by name; empty when the identity was built without its manifest.
    pub fn tool_pins(&self) -> &BTreeMap<String, Sha256Digest> {
        &self.tool_pins
    }

    /// The agent's SPIFFE ID (the token's `sub`).
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }
    /// The model.
    pub fn model(&self) -> &ModelRef {
        &self.model
    }
    /// Digest of the system prompt and tool manifest.
    pub fn configuration_digest(&self) -> Sha256Digest {
        self.configuration_digest
    }
    /// The runtime.
    pub fn runtime(&self) -> &RuntimeDescriptor {
        &self.runtime
    }
    /// Digest of the runtime.
    pub fn runtime_digest(&self) -> Sha256Digest {
        self.runtime_digest
    }
    /// Digest over all components: the identity's fingerprint.
    pub fn composite_digest(&self) -> Sha256Digest {
        self.composite_digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> AgentConfiguration {
        AgentConfiguration::new(
            "You are a careful billing agent.",
            vec![
                ToolDescriptor::new("read_ledger", "Reads the ledger", json!({"type": "object"})),
                ToolDescriptor::new(
                    "send_payment",
                    "Sends a payment",
                    json!({"type": "object", "properties": {"amount": {"type": "number"}}}),
                ),
            ],
        )
    }

    fn identity(
        config: &AgentConfiguration,
        model: ModelRef,
        runtime: RuntimeDescriptor,
    ) -> AgentIdentity {
        AgentIdentity::new(
            parse_spiffe_id("spiffe://acme.example/agent/billing").unwrap(),
            model,
            config,
            runtime,
        )
        .unwrap()
    }

    fn model() -> ModelRef {
        ModelRef::new("openai", "gpt-5", "2026-08-01")
    }

    fn runtime() -> RuntimeDescriptor {
        RuntimeDescriptor::new("container").with("image_digest", "sha256:1111")
    }

    #[test]
    fn each_tool_has_its_own_pin() {
        let pins = config().tool_digests().unwrap();
        assert_eq!(pins.len(), 2);
        let mut reworded = config();
        reworded.tools[1].description = "Sends a payment to anyone".into();
        let changed = reworded.tool_digests().unwrap();
        assert_eq!(pins["read_ledger"], changed["read_ledger"]);
        assert_ne!(pins["send_payment"], changed["send_payment"]);
        let agent = identity(&config(), model(), runtime());
        assert_eq!(agent.tool_pins(), &pins);
        let mut twice = config();
        twice.tools.push(twice.tools[0].clone());
        assert_eq!(
            twice.tool_digests().unwrap_err().code(),
            "identity.duplicate_tool"
        );
    }

    #[test]
    fn every_component_changes_the_composite_digest() {
        let base = identity(&config(), model(), runtime());

        let mut prompt = config();
        prompt.system_prompt.push(' ');
        let mut description = config();
        description.tools[1].description = "Sends a payment to anyone".into();
        let mut schema = config();
        schema.tools[0].input_schema = json!({"type": "object", "additionalProperties": true});
        let variants = [
            identity(&prompt, model(), runtime()),
            identity(&description, model(), runtime()),
            identity(&schema, model(), runtime()),
            identity(
                &config(),
                ModelRef::new("openai", "gpt-5", "2026-09-01"),
                runtime(),
            ),
            identity(&config(), model(), runtime().with("uid", "0")),
        ];
        for v in &variants {
            assert_ne!(v.composite_digest(), base.composite_digest(), "{v:?}");
        }
    }

    #[test]
    fn tool_order_and_json_spelling_do_not_change_the_digest() {
        let mut reordered = config();
        reordered.tools.reverse();
        assert_eq!(config().digest().unwrap(), reordered.digest().unwrap());
    }

    #[test]
    fn duplicate_tool_names_are_rejected() {
        let mut dup = config();
        dup.tools.push(dup.tools[0].clone());
        assert_eq!(dup.digest().unwrap_err().code(), "identity.duplicate_tool");
    }

    #[test]
    fn bad_spiffe_ids_are_clear_errors() {
        for bad in [
            "",
            "spiffe://",
            "http://a/b",
            "spiffe://a/b/../c",
            "spiffe://a/b/",
            "spiffe://a b/c",
        ] {
            let err = parse_spiffe_id(bad).unwrap_err();
            assert_eq!(err.code(), "identity.bad_spiffe_id", "{bad}");
        }
    }
}
