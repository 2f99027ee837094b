//! A typed, blocking client of Lemur-HSM's REST API under `/api/1`, on the same `lemur-api`
//! types the server answers with: a field renamed on one side breaks the build of the other.
//!
//! ```no_run
//! let mut client = lemur_client::Client::new("http://127.0.0.1:8000");
//! client.login("lemur", "the admin password")?;
//! let page = client.certificates(&lemur_api::CertificateQuery::default())?;
//! println!("{} certificates", page.total);
//! # Ok::<(), lemur_client::Error>(())
//! ```

use lemur_api::{
    AuthorityView, CertificateItem, CertificateQuery, CertificateView, CreateAuthority,
    CreateCertificate, CreateDomain, DomainView, ErrorBody, HealthDetails, IdView, Login, Me, Page,
    Paging, PendingCertificateView, PluginView, PrivateKey, RevokeCertificate, Token, UpdateDomain,
    UploadCertificate, UploadPendingCertificate,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use zeroize::Zeroizing;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error status and its error body.
    #[error("{status}: {} ({})", body.message, body.code)]
    Api {
        /// The HTTP status.
        status: u16,
        /// Lemur's error body: message, code, and the field at fault.
        body: ErrorBody,
    },
    /// The daemon could not be reached, or the connection failed.
    #[error("cannot reach the daemon: {0}")]
    Transport(String),
    /// The answer was not what the API promises.
    #[error("unexpected answer ({status}): {reason}")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// What did not parse.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long connecting to the daemon may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long each of sending a request, sending its body, waiting for the answer and receiving
/// its body may take: two minutes, for the slowest calls (so a call that trickles through every
/// phase may take their sum).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A client of one daemon, signed in or not.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<Zeroizing<String>>,
}

impl Client {
    /// A client of the daemon at `base` (`http://127.0.0.1:8000`, without `/api/1`).
    pub fn new(base: impl Into<String>) -> Self {
        // Each phase has its own limit rather than one for the whole call: with an overall
        // limit, ureq resolves the host on a thread spawned per request (so it can give up on
        // it), a thread the daemon's own cores pay for when both run on one machine.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_send_request(Some(ANSWER_TIMEOUT))
            .timeout_send_body(Some(ANSWER_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .timeout_recv_body(Some(ANSWER_TIMEOUT))
            .build()
            .into();
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            agent,
            token: None,
        }
    }

    /// The same daemon, signed in with `token`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Zeroizing::new(token.into()));
        self
    }

    /// Logs in; later calls carry the token.
    pub fn login(&mut self, username: &str, password: &str) -> Result<()> {
        let body = Login {
            username: username.to_owned(),
            password: password.into(),
        };
        let token: Token = self.post("/auth/login", &body)?;
        self.token = Some(Zeroizing::new(token.token));
        Ok(())
    }

    /// Logs the session's token out; later calls are anonymous.
    pub fn logout(&mut self) -> Result<()> {
        let () = self.post("/auth/logout", &())?;
        self.token = None;
        Ok(())
    }

    /// The token of the session, if signed in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref().map(String::as_str)
    }

    /// `GET /auth/me`.
    pub fn me(&self) -> Result<Me> {
        self.get("/auth/me")
    }

    /// `GET /healthcheck/details`.
    pub fn health_details(&self) -> Result<HealthDetails> {
        self.get("/healthcheck/details")
    }

    /// `POST /certificates`: issues a certificate.
    pub fn issue(&self, request: &CreateCertificate) -> Result<CertificateView> {
        self.post("/certificates", request)
    }

    /// `POST /certificates` from an authority that answers later (`offline-issuer`): the order,
    /// as a pending certificate (202).
    pub fn order(&self, request: &CreateCertificate) -> Result<PendingCertificateView> {
        self.post("/certificates", request)
    }

    /// `GET /pending_certificates/{id}`.
    pub fn pending_certificate(&self, id: i64) -> Result<PendingCertificateView> {
        self.get(&format!("/pending_certificates/{id}"))
    }

    /// `POST /pending_certificates/{id}/upload`: delivers the certificate the CA signed for an
    /// order; the order, resolved (`resolved_cert_id` names the certificate).
    pub fn deliver(
        &self,
        id: i64,
        request: &UploadPendingCertificate,
    ) -> Result<PendingCertificateView> {
        self.post(&format!("/pending_certificates/{id}/upload"), request)
    }

    /// `POST /certificates/upload`: imports a certificate.
    pub fn upload(&self, request: &UploadCertificate) -> Result<CertificateView> {
        self.post("/certificates/upload", request)
    }

    /// `GET /certificates/{id}`.
    pub fn certificate(&self, id: i64) -> Result<CertificateView> {
        self.get(&format!("/certificates/{id}"))
    }

    /// `GET /certificates`: a page of certificates.
    pub fn certificates(&self, query: &CertificateQuery) -> Result<Page<CertificateItem>> {
        let mut parameters = paging(Paging {
            page: query.page,
            count: query.count,
        });
        if let Some(filter) = &query.filter {
            parameters.push(("filter", filter.clone()));
        }
        if query.short {
            parameters.push(("short", "true".to_owned()));
        }
        self.get_query("/certificates", &parameters)
    }

    /// `GET /certificates/{id}/key`: the private key (the view is audited).
    pub fn private_key(&self, id: i64) -> Result<Zeroizing<String>> {
        let key: PrivateKey = self.get(&format!("/certificates/{id}/key"))?;
        Ok(key.key.into_inner())
    }

    /// `PUT /certificates/{id}/revoke`: revokes a certificate.
    pub fn revoke(&self, id: i64, request: &RevokeCertificate) -> Result<IdView> {
        self.put(&format!("/certificates/{id}/revoke"), request)
    }

    /// `POST /authorities`: creates an authority.
    pub fn create_authority(&self, request: &CreateAuthority) -> Result<AuthorityView> {
        self.post("/authorities", request)
    }

    /// `GET /authorities/{id}`.
    pub fn authority(&self, id: i64) -> Result<AuthorityView> {
        self.get(&format!("/authorities/{id}"))
    }

    /// `GET /authorities`: a page of authorities.
    pub fn authorities(&self, page: Paging) -> Result<Page<AuthorityView>> {
        self.get_query("/authorities", &paging(page))
    }

    /// `POST /domains`: records a domain.
    pub fn create_domain(&self, request: &CreateDomain) -> Result<DomainView> {
        self.post("/domains", request)
    }

    /// `PUT /domains/{id}`: marks a domain sensitive or not.
    pub fn update_domain(&self, id: i64, request: &UpdateDomain) -> Result<DomainView> {
        self.put(&format!("/domains/{id}"), request)
    }

    /// `GET /domains`: a page of domains.
    pub fn domains(&self, page: Paging) -> Result<Page<DomainView>> {
        self.get_query("/domains", &paging(page))
    }

    /// `GET /plugins`, of one `kind` (`issuer`, `destination`...) if given.
    pub fn plugins(&self, kind: Option<&str>) -> Result<Page<PluginView>> {
        let parameters: Vec<(&str, String)> =
            kind.map(|k| ("type", k.to_owned())).into_iter().collect();
        self.get_query("/plugins", &parameters)
    }

    /// `GET /plugins/{slug}`.
    pub fn plugin(&self, slug: &str) -> Result<PluginView> {
        self.get(&format!("/plugins/{slug}"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/1{path}", self.base)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get_query(path, &[])
    }

    fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        parameters: &[(&str, String)],
    ) -> Result<T> {
        let mut request = self.agent.get(self.url(path));
        for (name, value) in parameters {
            request = request.query(*name, value);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {}", token.as_str()));
        }
        finish(request.call())
    }

    fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.agent.post(self.url(path)), body)
    }

    fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.agent.put(self.url(path)), body)
    }

    fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        request: ureq::RequestBuilder<ureq::typestate::WithBody>,
        body: &B,
    ) -> Result<T> {
        // Request bodies may hold passwords and private keys: the encoded text is wiped (best
        // effort: buffers that grew on the way are not).
        let body = Zeroizing::new(serde_json::to_string(body).map_err(|e| Error::Decode {
            status: 0,
            reason: format!("encoding the request: {e}"),
        })?);
        let mut request = request.header("Content-Type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {}", token.as_str()));
        }
        finish(request.send(body.as_bytes()))
    }
}

/// Lemur's paging query parameters.
fn paging(paging: Paging) -> Vec<(&'static str, String)> {
    [("page", paging.page), ("count", paging.count)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?.to_string())))
        .collect()
}

/// The body of a success as `T`, or the error body of a failure. The text is wiped after it
/// is decoded, as it may hold a private key (best effort: copies made while reading and
/// decoding are not).
fn finish<T: DeserializeOwned>(
    response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T> {
    let mut response = response.map_err(|e| Error::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let text = Zeroizing::new(
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::Transport(e.to_string()))?,
    );
    let decode = |reason: serde_json::Error| Error::Decode {
        status,
        reason: reason.to_string(),
    };
    if (200..300).contains(&status) {
        // No content (204) reads as JSON null, which `()` takes.
        let text = if text.is_empty() {
            "null"
        } else {
            text.as_str()
        };
        serde_json::from_str(text).map_err(decode)
    } else {
        Err(Error::Api {
            status,
            body: serde_json::from_str(&text).map_err(decode)?,
        })
    }
}
