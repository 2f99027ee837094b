//! Request bodies as Lemur clients send them (camelCase), turned into validated domain requests.

use crate::ca::SubjectFields;
use crate::ca::x509::AltName;
use crate::error::{Error, Result};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `{"id": N}` references.
#[derive(Debug, Deserialize)]
pub struct IdRef {
    /// The id.
    pub id: i64,
}

/// `{"id": N}` or `{"name": "..."}` for an authority.
#[derive(Debug, Deserialize)]
pub struct AuthorityRef {
    /// The id.
    pub id: Option<i64>,
    /// The name.
    pub name: Option<String>,
}

/// `{"nameType": "DNSName", "value": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameRequest {
    /// DNSName, IPAddress, rfc822Name, uniformResourceIdentifier.
    pub name_type: String,
    /// The name.
    pub value: String,
}

/// `{"names": [...]}`.
#[derive(Debug, Default, Deserialize)]
pub struct SubAltNames {
    /// The names.
    #[serde(default)]
    pub names: Vec<NameRequest>,
}

/// Lemur's `extensions` object (the parts the HSM issuer takes).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// Subject alternative names.
    #[serde(default)]
    pub sub_alt_names: Option<SubAltNames>,
}

/// Subject fields as Lemur sends them, at the top level of the body. They arrive as any JSON
/// value and are type-checked here: serde's `flatten` loses the field's name in its own errors.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRequest {
    country: Option<serde_json::Value>,
    state: Option<serde_json::Value>,
    location: Option<serde_json::Value>,
    organization: Option<serde_json::Value>,
    organizational_unit: Option<serde_json::Value>,
}

/// A string, null or absent field, named in the error otherwise.
fn text(field: &str, value: Option<serde_json::Value>) -> Result<Option<String>> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(Error::invalid(
            field,
            format!("must be a string, not {other}"),
        )),
    }
}

impl SubjectRequest {
    /// As the CA's subject fields.
    pub fn fields(self) -> Result<SubjectFields> {
        Ok(SubjectFields {
            country: text("country", self.country)?,
            state: text("state", self.state)?,
            location: text("location", self.location)?,
            organization: text("organization", self.organization)?,
            organizational_unit: text("organizationalUnit", self.organizational_unit)?,
        })
    }
}

impl Extensions {
    /// The requested SANs, with Lemur's name types checked.
    pub fn alt_names(&self) -> Result<Vec<AltName>> {
        let names = self
            .sub_alt_names
            .as_ref()
            .map(|s| s.names.as_slice())
            .unwrap_or_default();
        names
            .iter()
            .map(|n| {
                let kind = match n.name_type.as_str() {
                    "DNSName" => "DNSName",
                    "IPAddress" => "IPAddress",
                    "rfc822Name" => "rfc822Name",
                    "uniformResourceIdentifier" => "uniformResourceIdentifier",
                    other => {
                        return Err(Error::invalid(
                            "extensions.subAltNames.names.nameType",
                            format!("{other:?} is not supported; use DNSName, IPAddress, rfc822Name or uniformResourceIdentifier"),
                        ));
                    }
                };
                Ok(AltName { kind, value: n.value.trim().to_owned() })
            })
            .collect()
    }
}

/// Parses Lemur's dates: `2026-01-01T00:00:00.000Z`, any RFC 3339 time, or `2026-01-01`.
pub fn parse_date(text: &str, field: &str) -> Result<i64> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(time.unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map(|date| date.midnight().assume_utc().unix_timestamp())
        .map_err(|_| {
            Error::invalid(
                field,
                format!("{text:?} is not a date (use 2026-01-01T00:00:00Z)"),
            )
        })
}

/// `validityStart`/`validityEnd` or `validityYears` into a validity window starting `now` by
/// default; both dates must be given together, as in Lemur.
pub fn validity(
    start: Option<&str>,
    end: Option<&str>,
    years: Option<i64>,
    now: i64,
) -> Result<(Option<i64>, Option<i64>)> {
    match (start, end, years) {
        (Some(_), Some(_), Some(_)) => Err(Error::invalid(
            "validityYears",
            "give either validityYears or validityStart and validityEnd",
        )),
        (Some(start), Some(end), None) => Ok((
            Some(parse_date(start, "validityStart")?),
            Some(parse_date(end, "validityEnd")?),
        )),
        (Some(_), None, _) => Err(Error::invalid(
            "validityEnd",
            "is required with validityStart",
        )),
        (None, Some(_), _) => Err(Error::invalid(
            "validityStart",
            "is required with validityEnd",
        )),
        (None, None, Some(years)) if (1..=30).contains(&years) => {
            Ok((Some(now), Some(now + years * 365 * 86_400)))
        }
        (None, None, Some(_)) => Err(Error::invalid("validityYears", "must be between 1 and 30")),
        (None, None, None) => Ok((None, None)),
    }
}
