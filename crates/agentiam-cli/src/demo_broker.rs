//! The demo's broker: `agentiam serve` in-process on a free loopback port, from the demo's
//! data directory, and the agents that talk to it over HTTP as any agent would.

use std::path::Path;

use agentiam::prelude::*;
use agentiam::token::{Entropy as _, SystemEntropy};
use agentiam_broker::{Broker, DataDir, serve};
use agentiam_broker_client::{BrokerClient, ClientError, RequestBody};
use serde_json::{Value, json};

use crate::output::CliError;

fn broker_err(e: agentiam_broker::BrokerError) -> CliError {
    CliError::usage(e.code(), e)
}

fn client_err(e: ClientError) -> CliError {
    CliError::usage(e.code(), e)
}

fn random_text(bytes: usize) -> Result<String, CliError> {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    SystemEntropy
        .fill(&mut buf)
        .map_err(|e| CliError::usage(e.code(), e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// A broker serving on loopback from a data directory, stopped gracefully at the end.
pub(crate) struct LocalBroker {
    runtime: tokio::runtime::Runtime,
    pub(crate) client: BrokerClient,
    pub(crate) broker: Broker,
    pub(crate) data: DataDir,
    admin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<Option<String>, agentiam_broker::BrokerError>>>,
}

impl LocalBroker {
    pub(crate) fn start(dir: &Path) -> Result<Self, CliError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        let base = format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|e| CliError::usage(crate::codes::IO, e))?
        );
        let admin = random_text(32)?;
        let data = DataDir::open(dir).map_err(broker_err)?;
        let broker = data.broker(&base, &admin).map_err(broker_err)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = broker.clone();
        let server = runtime.spawn(async move {
            serve(&serving, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Self {
            runtime,
            client: BrokerClient::new(&base),
            broker,
            data,
            admin,
            stop: Some(stop),
            server: Some(server),
        })
    }

    pub(crate) fn base(&self) -> &str {
        self.client.base_url()
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(f)
    }

    /// One request; the answer's status and JSON.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: RequestBody,
    ) -> Result<(u16, Value), CliError> {
        self.block_on(self.client.send(method, path, headers, body))
            .map_err(client_err)
    }

    /// A request with the administrator's bearer token.
    pub(crate) fn admin(
        &self,
        method: &str,
        path: &str,
        body: RequestBody,
    ) -> Result<(u16, Value), CliError> {
        let bearer = format!("Bearer {}", self.admin);
        self.call(method, path, &[("authorization", &bearer)], body)
    }

    pub(crate) fn admin_secret(&self) -> &str {
        &self.admin
    }

    /// Stops taking requests, then flushes the activity log and signs a checkpoint.
    pub(crate) fn stop(&mut self) -> Result<Option<String>, CliError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => self
                .block_on(server)
                .map_err(|e| CliError::usage(crate::codes::IO, e))?
                .map_err(broker_err),
            None => Ok(None),
        }
    }
}

/// An agent as it runs: its client key, model, prompt and tools, and runtime.
pub(crate) struct DemoAgent {
    pub(crate) key: SigningKey,
    pub(crate) id: String,
    pub(crate) model: ModelRef,
    pub(crate) config: AgentConfiguration,
    pub(crate) runtime: RuntimeDescriptor,
}

/// The outcome of a token request: the token, or the broker's reason code.
pub(crate) type Granted = Result<String, String>;

impl DemoAgent {
    pub(crate) fn identity(&self) -> Result<AgentIdentity, CliError> {
        Ok(AgentIdentity::new(
            parse_spiffe_id(&self.id)?,
            self.model.clone(),
            &self.config,
            self.runtime.clone(),
        )?)
    }

    /// Registers this agent (its identity as it runs now) with at most `max_scopes`.
    pub(crate) fn register(&self, lb: &LocalBroker, max_scopes: &str) -> Result<(), CliError> {
        let jwks: Value =
            serde_json::from_str(&Jwks::from_keys([self.key.public_key().clone()]).to_json())
                .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        let (status, body) = lb.admin(
            "POST",
            "/admin/agents",
            RequestBody::Json(json!({
                "spiffe_id": self.id,
                "max_scopes": max_scopes,
                "allowed_digests": [self.identity()?.composite_digest().to_string()],
                "jwks": jwks,
                "attestors": ["configuration"],
            })),
        )?;
        if status == 201 {
            Ok(())
        } else {
            Err(CliError::usage(
                crate::codes::DEMO_UNEXPECTED,
                format!("registration refused: {body}"),
            ))
        }
    }

    /// A fresh client assertion for the broker's token endpoint.
    pub(crate) fn assertion(&self, lb: &LocalBroker) -> Result<String, CliError> {
        Ok(agentiam::token::create_client_assertion(
            &self.key,
            &self.id,
            &lb.broker.token_endpoint(),
            &random_text(16)?,
            SystemClock.now(),
            60,
        )?)
    }

    /// Client authentication, attestation evidence and the audience of every demo token.
    fn authenticated(&self, assertion: String) -> Vec<(String, String)> {
        let evidence =
            json!({"model": self.model, "configuration": self.config, "runtime": self.runtime});
        vec![
            (
                "client_assertion_type".into(),
                agentiam::token::CLIENT_ASSERTION_TYPE_JWT.into(),
            ),
            ("client_assertion".into(), assertion),
            ("agent_attestation".into(), evidence.to_string()),
            ("audience".into(), crate::demo::AUDIENCE.into()),
        ]
    }

    /// `POST /oauth2/token` with client credentials: `private_key_jwt` plus attestation.
    pub(crate) fn token_form(
        &self,
        lb: &LocalBroker,
        assertion: String,
        scope: &str,
        task: &str,
        purpose: &str,
    ) -> Result<Vec<(String, String)>, CliError> {
        let _ = lb;
        let mut form = self.authenticated(assertion);
        form.extend([
            ("grant_type".into(), "client_credentials".into()),
            ("scope".into(), scope.into()),
            ("task_id".into(), task.into()),
            ("task_purpose".into(), purpose.into()),
        ]);
        Ok(form)
    }

    /// Asks the broker for a task token.
    pub(crate) fn token(
        &self,
        lb: &LocalBroker,
        scope: &str,
        task: &str,
        purpose: &str,
    ) -> Result<Granted, CliError> {
        let form = self.token_form(lb, self.assertion(lb)?, scope, task, purpose)?;
        post_token(lb, form, &[])
    }

    /// RFC 8693: this (sub-)agent exchanges its parent's token for a narrower one.
    pub(crate) fn exchange(
        &self,
        lb: &LocalBroker,
        parent: &str,
        scope: &str,
    ) -> Result<Granted, CliError> {
        let mut form = self.authenticated(self.assertion(lb)?);
        form.extend([
            (
                "grant_type".into(),
                agentiam_broker::GRANT_TOKEN_EXCHANGE.into(),
            ),
            ("subject_token".into(), parent.into()),
            (
                "subject_token_type".into(),
                "urn:ietf:params:oauth:token-type:access_token".into(),
            ),
            ("scope".into(), scope.into()),
        ]);
        post_token(lb, form, &[])
    }
}

/// Posts a token request; the token, or the broker's reason code.
pub(crate) fn post_token(
    lb: &LocalBroker,
    form: Vec<(String, String)>,
    headers: &[(&str, &str)],
) -> Result<Granted, CliError> {
    let (status, body) = lb.call("POST", "/oauth2/token", headers, RequestBody::Form(form))?;
    Ok(if status == 200 {
        Ok(body
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    } else {
        Err(body
            .get("agentiam_code")
            .and_then(Value::as_str)
            .unwrap_or(crate::codes::BROKER_UNKNOWN)
            .to_owned())
    })
}
