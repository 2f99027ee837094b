//! The certificate list's query language: Lemur's `filter=field;value`, `sortBy`/`sortDir`,
//! `page`/`count` and `serial` (in any of its three spellings), and a keyset `cursor` that
//! finds the page after a row as fast at any depth.

use crate::error::{Error, Result};
use crate::model::{
    CertificateFilter, CertificateRecord, ListQuery, Page, PageStart, PendingListQuery, SortKey,
    SortValue,
};
use crate::requests::page;
use lemur_api::{CertificateQuery, Paging, PendingQuery};
use x509_parser::num_bigint::BigUint;

/// The checked list request of `query`.
pub fn list_query(query: &CertificateQuery) -> Result<ListQuery> {
    let mut filter = parse_filter(query.filter.as_deref())?;
    if let Some(serial) = &query.serial {
        if filter != CertificateFilter::All {
            return Err(Error::invalid("serial", "cannot be combined with filter"));
        }
        filter = CertificateFilter::Serial(normalize_serial(serial, "serial")?);
    }
    let (sort, descending) = sort(
        query.sort_by.as_deref(),
        query.sort_dir.as_deref(),
        CERTIFICATE_SORTS,
    )?;
    let paging = page(Paging {
        page: query.page,
        count: query.count,
    })?;
    let start = match &query.cursor {
        None => PageStart::Page(paging),
        Some(_) if query.page.is_some() => {
            return Err(Error::invalid(
                "cursor",
                "give a cursor or a page, not both",
            ));
        }
        Some(cursor) => {
            let (value, id) = decode_cursor(cursor, sort, descending)?;
            PageStart::After {
                value,
                id,
                count: paging.count,
            }
        }
    };
    Ok(ListQuery {
        filter,
        sort,
        descending,
        start,
    })
}

/// What the certificate list sorts by, by the name `sortBy` gives.
const CERTIFICATE_SORTS: &[(&str, SortKey)] = &[
    ("id", SortKey::Id),
    ("notAfter", SortKey::NotAfter),
    ("cn", SortKey::Cn),
    ("name", SortKey::Name),
    ("owner", SortKey::Owner),
];

/// What the pending certificate list sorts by (an order has no `notAfter`).
const PENDING_SORTS: &[(&str, SortKey)] = &[
    ("id", SortKey::Id),
    ("cn", SortKey::Cn),
    ("name", SortKey::Name),
    ("owner", SortKey::Owner),
];

/// `sortBy` among `keys` (`id` when absent) and `sortDir` (descending by id, else ascending,
/// when absent).
fn sort(
    sort_by: Option<&str>,
    sort_dir: Option<&str>,
    keys: &[(&str, SortKey)],
) -> Result<(SortKey, bool)> {
    let sort = match sort_by {
        None => SortKey::Id,
        Some(name) => keys
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, sort)| *sort)
            .ok_or_else(|| {
                let names: Vec<&str> = keys.iter().map(|(key, _)| *key).collect();
                Error::invalid("sortBy", format!("use {}", one_of(&names)))
            })?,
    };
    let descending = match sort_dir {
        None => sort == SortKey::Id,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(Error::invalid("sortDir", "use asc or desc")),
    };
    Ok((sort, descending))
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The checked pending certificate list request of `query`.
pub fn pending_query(query: &PendingQuery) -> Result<PendingListQuery> {
    let filter = match parse_filter(query.filter.as_deref())? {
        CertificateFilter::San(_) | CertificateFilter::Serial(_) => {
            return Err(Error::invalid(
                "filter",
                "pending certificates take cn, name, owner or authority",
            ));
        }
        filter => filter,
    };
    let (sort, descending) = sort(
        query.sort_by.as_deref(),
        query.sort_dir.as_deref(),
        PENDING_SORTS,
    )?;
    Ok(PendingListQuery {
        filter,
        sort,
        descending,
        page: page(Paging {
            page: query.page,
            count: query.count,
        })?,
    })
}

/// Lemur's `filter=field;value`.
fn parse_filter(filter: Option<&str>) -> Result<CertificateFilter> {
    Ok(match filter.map(|f| f.split_once(';')) {
        None => CertificateFilter::All,
        Some(Some(("cn", value))) => CertificateFilter::Cn(value.to_owned()),
        Some(Some(("name", value))) => CertificateFilter::Name(value.to_owned()),
        Some(Some(("san", value))) => CertificateFilter::San(value.to_ascii_lowercase()),
        Some(Some(("owner", value))) => CertificateFilter::Owner(value.to_owned()),
        Some(Some(("serial", value))) => {
            CertificateFilter::Serial(normalize_serial(value, "filter")?)
        }
        Some(Some(("authority", value))) => CertificateFilter::Authority(
            value
                .parse()
                .map_err(|_| Error::invalid("filter", "authority takes an id"))?,
        ),
        Some(_) => {
            return Err(Error::invalid(
                "filter",
                "use field;value with field one of cn, name, san, owner, serial, authority",
            ));
        }
    })
}

/// A serial number written in decimal, `0x` hex or colon-separated hex, as the inventory keeps
/// it: upper-case hex without leading zeros.
pub fn normalize_serial(text: &str, field: &str) -> Result<String> {
    let text = text.trim();
    let invalid = || {
        Error::invalid(
            field,
            "a serial number is decimal digits, 0x and hex digits, or hex pairs separated by colons",
        )
    };
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
        (hex.to_owned(), 16)
    } else if text.contains(':') {
        if !text.split(':').all(|pair| pair.len() == 2) {
            return Err(invalid());
        }
        (text.replace(':', ""), 16)
    } else {
        (text.to_owned(), 10)
    };
    if digits.is_empty() || digits.len() > 80 {
        return Err(invalid());
    }
    let value = BigUint::parse_bytes(digits.as_bytes(), radix).ok_or_else(invalid)?;
    Ok(value.to_str_radix(16).to_uppercase())
}

fn key_name(sort: SortKey) -> &'static str {
    match sort {
        SortKey::Id => "id",
        SortKey::NotAfter => "notAfter",
        SortKey::Cn => "cn",
        SortKey::Name => "name",
        SortKey::Owner => "owner",
    }
}

/// The row's value of the sort key.
fn sort_value(record: &CertificateRecord, sort: SortKey) -> SortValue {
    match sort {
        SortKey::Id => SortValue::Id,
        SortKey::NotAfter => SortValue::Int(record.not_after),
        SortKey::Cn => SortValue::Text(record.cn.clone()),
        SortKey::Name => SortValue::Text(record.name.clone()),
        SortKey::Owner => SortValue::Text(record.owner.clone()),
    }
}

/// The cursor of the page after `last`: `key~dir~value~id`, the value hex-encoded when it is
/// text, so the cursor needs no escaping in a URL.
pub fn cursor_after(last: &CertificateRecord, query: &ListQuery) -> String {
    let value = match sort_value(last, query.sort) {
        SortValue::Id => String::new(),
        SortValue::Int(value) => value.to_string(),
        SortValue::Text(text) => crate::ca::x509::hex(text.as_bytes()),
    };
    let direction = if query.descending { "desc" } else { "asc" };
    format!("{}~{direction}~{value}~{}", key_name(query.sort), last.id)
}

/// The row a cursor points after, checked against the list's sort.
fn decode_cursor(cursor: &str, sort: SortKey, descending: bool) -> Result<(SortValue, i64)> {
    let invalid = |reason: &str| Error::invalid("cursor", reason);
    let parts: Vec<&str> = cursor.split('~').collect();
    let [key, direction, value, id] = parts[..] else {
        return Err(invalid("is not a cursor this list gave out"));
    };
    let expected = if descending { "desc" } else { "asc" };
    if key != key_name(sort) || direction != expected {
        return Err(invalid(
            "belongs to a list sorted otherwise; keep sortBy and sortDir",
        ));
    }
    let id = id
        .parse()
        .map_err(|_| invalid("is not a cursor this list gave out"))?;
    let value = match sort {
        SortKey::Id => SortValue::Id,
        SortKey::NotAfter => SortValue::Int(
            value
                .parse()
                .map_err(|_| invalid("is not a cursor this list gave out"))?,
        ),
        SortKey::Cn | SortKey::Name | SortKey::Owner => SortValue::Text(
            unhex(value).ok_or_else(|| invalid("is not a cursor this list gave out"))?,
        ),
    };
    Ok((value, id))
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    // No stored name holds a control character; one in a cursor is not one this list gave out.
    String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.chars().any(char::is_control))
}

/// The items per page of a list query.
pub fn page_size(query: &ListQuery) -> i64 {
    match &query.start {
        PageStart::Page(Page { count, .. }) | PageStart::After { count, .. } => *count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_reads_the_same_in_each_spelling() {
        let hex = normalize_serial("0x00ab12", "serial").unwrap();
        assert_eq!(hex, "AB12");
        assert_eq!(normalize_serial("43794", "serial").unwrap(), hex);
        assert_eq!(normalize_serial("00:AB:12", "serial").unwrap(), hex);
        assert!(normalize_serial("AB:1", "serial").is_err());
        assert!(normalize_serial("12z", "serial").is_err());
        assert!(normalize_serial("", "serial").is_err());
    }

    #[test]
    fn a_cursor_reads_back_only_under_its_own_sort() {
        let query = ListQuery {
            filter: CertificateFilter::All,
            sort: SortKey::Cn,
            descending: false,
            start: PageStart::Page(Page { page: 1, count: 10 }),
        };
        let record = CertificateRecord {
            id: 7,
            cn: "Web~1.Example.com".into(),
            ..CertificateRecord::for_tests("o@example.com")
        };
        let cursor = cursor_after(&record, &query);
        assert_eq!(
            decode_cursor(&cursor, SortKey::Cn, false).unwrap(),
            (SortValue::Text("Web~1.Example.com".into()), 7)
        );
        assert!(decode_cursor(&cursor, SortKey::Cn, true).is_err());
        assert!(decode_cursor(&cursor, SortKey::Owner, false).is_err());
        assert!(decode_cursor("garbage", SortKey::Cn, false).is_err());
        assert!(
            decode_cursor("cn~asc~00~7", SortKey::Cn, false).is_err(),
            "a NUL in a cursor is refused, not sent to the database"
        );
    }
}
