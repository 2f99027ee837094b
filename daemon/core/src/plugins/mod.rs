//! Plugins, as Lemur has them: issuers, destinations, sources, notifications, exports and DNS
//! providers, each describing its options so the API and the UI can offer them.
//!
//! The [`Registry`] is built once at start-up by the binary, which chooses what is installed;
//! domain operations look plugins up in it by slug. Issuers are the first kind with an
//! implementation ([`hsm_issuer::HsmIssuer`]); later kinds add a trait beside [`IssuerPlugin`]
//! and a list beside `issuers`.

pub mod hsm_issuer;
mod issuer;
pub mod offline_issuer;

pub use issuer::{
    AuthorityPlan, AuthorityToCreate, CreatedAuthority, CrlPlan, Issuance, IssuePlan, Issued,
    IssuerPlugin, Order,
};

use std::sync::Arc;

/// The kinds of plugin, by Lemur's `type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// Issues certificates and creates authorities.
    Issuer,
    /// Deploys certificates somewhere.
    Destination,
    /// Discovers certificates somewhere.
    Source,
    /// Sends expiry and other notices.
    Notification,
    /// Exports a certificate in another format.
    Export,
    /// Answers DNS-01 challenges.
    DnsProvider,
}

impl PluginKind {
    /// The kind named `text` (Lemur's `?type=`).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "issuer" => PluginKind::Issuer,
            "destination" => PluginKind::Destination,
            "source" => PluginKind::Source,
            "notification" => PluginKind::Notification,
            "export" => PluginKind::Export,
            "dns_provider" | "dns-provider" => PluginKind::DnsProvider,
            _ => return None,
        })
    }
}

/// The type of an option's value, as Lemur's UI renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionType {
    /// Free text.
    Str,
    /// An integer.
    Int,
    /// A flag.
    Bool,
    /// One of `available`.
    Select,
    /// Multi-line text (a PEM, a template).
    Textarea,
}

impl OptionType {
    /// Lemur's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            OptionType::Str => "str",
            OptionType::Int => "int",
            OptionType::Bool => "bool",
            OptionType::Select => "select",
            OptionType::Textarea => "textarea",
        }
    }
}

/// One option a plugin takes, in Lemur's terms.
#[derive(Debug, Clone)]
pub struct PluginOption {
    /// The option's name, as requests send it.
    pub name: &'static str,
    /// Its type.
    pub kind: OptionType,
    /// Must be given.
    pub required: bool,
    /// A regular expression the value must match, if any.
    pub validation: Option<&'static str>,
    /// What it is for.
    pub help_message: &'static str,
    /// The value when none is given.
    pub default: Option<serde_json::Value>,
    /// Holds a secret: sealed at rest, never shown back.
    pub sensitive: bool,
    /// The choices of a `select`.
    pub available: &'static [&'static str],
}

/// What every plugin says about itself.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// Unique slug (`hsm-issuer`).
    pub slug: &'static str,
    /// Other slugs it answers to (Lemur's names for the same thing).
    pub aliases: &'static [&'static str],
    /// Short name.
    pub title: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its kind.
    pub kind: PluginKind,
    /// The options it takes.
    pub options: Vec<PluginOption>,
}

impl PluginInfo {
    /// Whether `slug` names this plugin.
    pub fn answers_to(&self, slug: &str) -> bool {
        self.slug == slug || self.aliases.contains(&slug)
    }
}

/// The installed plugins.
#[derive(Default, Clone)]
pub struct Registry {
    issuers: Vec<Arc<dyn IssuerPlugin>>,
}

impl Registry {
    /// Installs an issuer.
    pub fn with_issuer(mut self, issuer: Arc<dyn IssuerPlugin>) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The issuer named `slug` (or one of its aliases).
    pub fn issuer(&self, slug: &str) -> Option<&Arc<dyn IssuerPlugin>> {
        self.issuers
            .iter()
            .find(|issuer| issuer.info().answers_to(slug))
    }

    /// The issuer of `authority`; an error when its plugin is not installed (the authority
    /// was made by a build with a plugin this one lacks).
    pub fn issuer_of(
        &self,
        authority: &crate::model::AuthorityRecord,
    ) -> crate::Result<&Arc<dyn IssuerPlugin>> {
        self.issuer(&authority.plugin_name).ok_or_else(|| {
            crate::Error::Ca(format!(
                "authority {} uses the issuer plugin {:?}, which is not installed",
                authority.name, authority.plugin_name
            ))
        })
    }

    /// Every installed plugin, of `kind` if given, in installation order.
    pub fn all(&self, kind: Option<PluginKind>) -> Vec<&PluginInfo> {
        self.issuers
            .iter()
            .map(|issuer| issuer.info())
            .filter(|info| kind.is_none_or(|kind| info.kind == kind))
            .collect()
    }

    /// The plugin named `slug`, of any kind.
    pub fn info(&self, slug: &str) -> Option<&PluginInfo> {
        self.all(None)
            .into_iter()
            .find(|info| info.answers_to(slug))
    }
}
