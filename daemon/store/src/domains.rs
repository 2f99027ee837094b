//! Domains: one row per distinct DNS name (certificates link to them), some marked sensitive.

use crate::SqlStore;
use crate::engine::args;
use crate::insert;
use crate::query::{Conditions, Param};
use crate::rows::DomainOnlyRow;
use async_trait::async_trait;
use lemur_core::model::{DomainRecord, LogEntry, Page};
use lemur_core::store::DomainRepository;
use lemur_core::{Error, Result};

#[async_trait]
impl DomainRepository for SqlStore {
    async fn domains(&self, name: Option<&str>, page: Page) -> Result<(Vec<DomainRecord>, i64)> {
        let mut conditions = Conditions::default();
        if let Some(name) = name {
            let p = conditions.param(Param::Text(format!("%{}%", name.to_lowercase())));
            conditions.and(&format!("name LIKE {p}"));
        }
        let (total,): (i64,) = self
            .engine
            .optional(
                &format!(
                    "SELECT COUNT(*) FROM domains WHERE TRUE{}",
                    conditions.sql()
                ),
                &conditions.args(),
                "counting domains",
            )
            .await?
            .unwrap_or((0,));
        let limit = conditions.param(Param::Int(page.count));
        let offset = conditions.param(Param::Int(page.offset()));
        let rows: Vec<DomainOnlyRow> = self
            .engine
            .all(
                &format!(
                    "SELECT id, name, sensitive FROM domains WHERE TRUE{} ORDER BY name LIMIT {limit} OFFSET {offset}",
                    conditions.sql()
                ),
                &conditions.args(),
                "listing domains",
            )
            .await?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    async fn domain(&self, id: i64) -> Result<Option<DomainRecord>> {
        let row: Option<DomainOnlyRow> = self
            .engine
            .optional(
                "SELECT id, name, sensitive FROM domains WHERE id = $1",
                args![id],
                "reading a domain",
            )
            .await?;
        Ok(row.map(Into::into))
    }

    async fn create_domain(
        &self,
        name: &str,
        sensitive: bool,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<DomainRecord> {
        let mut tx = self.engine.begin().await?;
        let row: Option<DomainOnlyRow> = tx
            .optional(
                "INSERT INTO domains (name, sensitive) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
                 RETURNING id, name, sensitive",
                args![name, sensitive],
                "recording a domain",
            )
            .await?;
        let row = row.ok_or_else(|| Error::Conflict(format!("domain {name:?} exists")))?;
        insert::log(&mut tx, log, now).await?;
        tx.commit("committing a domain").await?;
        self.caches.sensitive_domains.clear();
        Ok(row.into())
    }

    async fn set_domain_sensitive(
        &self,
        id: i64,
        sensitive: bool,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<Option<DomainRecord>> {
        let mut tx = self.engine.begin().await?;
        let row: Option<DomainOnlyRow> = tx
            .optional(
                "UPDATE domains SET sensitive = $2 WHERE id = $1 RETURNING id, name, sensitive",
                args![id, sensitive],
                "marking a domain",
            )
            .await?;
        if row.is_some() {
            insert::log(&mut tx, log, now).await?;
        }
        tx.commit("committing a domain").await?;
        self.caches.sensitive_domains.clear();
        Ok(row.map(Into::into))
    }

    async fn sensitive_domains_covering(&self, names: &[String]) -> Result<Vec<String>> {
        let sensitive = self.sensitive_domains().await?;
        // Every name and each domain above it, without the wildcard label.
        let mut covering: Vec<String> = names
            .iter()
            .flat_map(|name| {
                let name = name.trim_start_matches("*.");
                name.match_indices('.')
                    .map(|(at, _)| &name[at + 1..])
                    .chain(std::iter::once(name))
                    .collect::<Vec<_>>()
            })
            .filter(|candidate| {
                sensitive
                    .binary_search_by(|s| s.as_str().cmp(candidate))
                    .is_ok()
            })
            .map(str::to_owned)
            .collect();
        covering.sort_unstable();
        covering.dedup();
        Ok(covering)
    }
}

impl SqlStore {
    /// Every sensitive domain, sorted: a few rows through their own index, kept for a moment.
    async fn sensitive_domains(&self) -> Result<std::sync::Arc<Vec<String>>> {
        let started = match self.caches.sensitive_domains.get(&()) {
            Ok(sensitive) => return Ok(sensitive),
            Err(started) => started,
        };
        let rows: Vec<(String,)> = self
            .engine
            .all(
                "SELECT name FROM domains WHERE sensitive = TRUE",
                &[],
                "reading sensitive domains",
            )
            .await?;
        // Sorted here, by bytes, as the search expects (a PostgreSQL collation may sort otherwise).
        let mut names: Vec<String> = rows.into_iter().map(|(name,)| name).collect();
        names.sort_unstable();
        let sensitive = std::sync::Arc::new(names);
        self.caches
            .sensitive_domains
            .put(started, (), std::sync::Arc::clone(&sensitive));
        Ok(sensitive)
    }
}
