//! Lemur's request shapes (from `lemur-api`) turned into validated domain values, each error
//! naming the field as the request does.

use crate::ca::SubjectFields;
use crate::ca::x509::AltName;
use crate::error::{Error, Result};
use crate::model::Page;
use lemur_api::{Extensions, Paging, SubjectRequest};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

/// The subject fields of a request, as the CA's.
pub fn subject_fields(request: SubjectRequest) -> Result<SubjectFields> {
    Ok(SubjectFields {
        country: text("country", request.country)?,
        state: text("state", request.state)?,
        location: text("location", request.location)?,
        organization: text("organization", request.organization)?,
        organizational_unit: text("organizationalUnit", request.organizational_unit)?,
    })
}

/// The requested SANs, with Lemur's name types checked.
pub fn alt_names(extensions: &Extensions) -> Result<Vec<AltName>> {
    let names = extensions
        .sub_alt_names
        .as_ref()
        .map(|s| s.names.as_slice())
        .unwrap_or_default();
    names
        .iter()
        .map(|n| {
            let kind = AltName::kind_named(&n.name_type).ok_or_else(|| {
                Error::invalid(
                    "extensions.subAltNames.names.nameType",
                    format!(
                        "{:?} is not supported; use one of {}",
                        n.name_type,
                        AltName::KINDS.join(", ")
                    ),
                )
            })?;
            Ok(AltName {
                kind,
                value: n.value.trim().to_owned(),
            })
        })
        .collect()
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

/// Lemur's paging parameters, checked: page 1 or more, 1 to 1000 items (default 10).
pub fn page(paging: Paging) -> Result<Page> {
    let page = paging.page.unwrap_or(1);
    let count = paging.count.unwrap_or(10);
    if page < 1 {
        return Err(Error::invalid("page", "must be 1 or more"));
    }
    if !(1..=1000).contains(&count) {
        return Err(Error::invalid("count", "must be between 1 and 1000"));
    }
    // The store computes the offset (page - 1) * count; keep it far from overflow.
    if page > 1_000_000_000 {
        return Err(Error::invalid("page", "must be at most 1000000000"));
    }
    Ok(Page { page, count })
}
