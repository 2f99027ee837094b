//! Finding certificates in an inventory: sorting, keyset cursors, substring and DNS-name search,
//! serials in their three spellings, Lemur's statistics and the dashboard's, and the expiration
//! scan behind `lemur notify expirations`.

use crate::on_both_databases;
use crate::support::{Appliance, Db};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Issued per test: enough for several pages of 4.
const CERTIFICATES: usize = 11;

/// A Lemur date `days` days and `minutes` minutes from now.
#[allow(clippy::disallowed_methods)] // the daemon checks dates against the real clock
fn in_days(days: i64, minutes: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    (time::OffsetDateTime::now_utc()
        + time::Duration::days(days)
        + time::Duration::minutes(minutes))
    .format(&format)
    .unwrap()
}

/// Issues the inventory: certificate `n` for `host-n.team{n%3}.example.com`, owned by team
/// `n % 3`, expiring in `10 + 7n` days; number 4 expires inside its 30-day notification window;
/// one wildcard for `*.wild.example.com`.
fn populate(app: &Appliance, authority: i64) -> Vec<Value> {
    let mut issued: Vec<Value> = (0..CERTIFICATES)
        .map(|n| {
            let cn = format!("Host-{n}.team{}.example.com", n % 3);
            let days = if n == 4 {
                30
            } else {
                10 + 7 * i64::try_from(n).unwrap()
            };
            let reply = app.post(
                "/api/1/certificates",
                &json!({
                    "owner": format!("team{}@example.com", n % 3), "commonName": cn,
                    "authority": { "id": authority }, "keyType": "ECCPRIME256V1",
                    "validityStart": in_days(0, -5), "validityEnd": in_days(days, 60),
                }),
            );
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body
        })
        .collect();
    let wildcard = app.post(
        "/api/1/certificates",
        &json!({
            "owner": "team0@example.com", "commonName": "*.wild.example.com",
            "authority": { "id": authority }, "keyType": "ECCPRIME256V1",
        }),
    );
    assert_eq!(wildcard.status, 200, "{}", wildcard.text);
    issued.push(wildcard.body);
    issued
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

fn list(app: &Appliance, query: &str) -> Value {
    let reply = app.get(&format!("/api/1/certificates?{query}"));
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    reply.body
}

/// Every page of `query` by cursor, then by page number: the same certificates in the same
/// order, each once.
fn walk(app: &Appliance, query: &str) -> Vec<i64> {
    let mut by_cursor = Vec::new();
    let mut page = list(app, &format!("{query}&count=4"));
    loop {
        by_cursor.extend(ids(&page));
        let Some(next) = page["next"].as_str() else {
            break;
        };
        page = list(app, &format!("{query}&count=4&cursor={next}"));
    }
    let mut by_number = Vec::new();
    for number in 1.. {
        let page = ids(&list(app, &format!("{query}&count=4&page={number}")));
        if page.is_empty() {
            break;
        }
        by_number.extend(page);
    }
    assert_eq!(by_cursor, by_number, "{query}");
    let distinct: HashSet<&i64> = by_cursor.iter().collect();
    assert_eq!(
        distinct.len(),
        by_cursor.len(),
        "{query}: a certificate twice"
    );
    by_cursor
}

fn inventory(db: Db) {
    let app = Appliance::start(db);
    let authority = app.root("inventory", "ECCPRIME256V1")["id"]
        .as_i64()
        .unwrap();
    let issued = populate(&app, authority);
    // Sorted and paged: by id (newest first), by expiry, by CN (case-insensitive).
    let newest_first = walk(&app, "sortBy=id");
    assert!(
        newest_first.windows(2).all(|pair| pair[0] > pair[1]),
        "{newest_first:?}"
    );
    let by_expiry = walk(&app, "sortBy=notAfter&sortDir=asc");
    let expiries: Vec<String> = by_expiry
        .iter()
        .map(|id| {
            app.get(&format!("/api/1/certificates/{id}")).body["notAfter"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        expiries.windows(2).all(|pair| pair[0] <= pair[1]),
        "{expiries:?}"
    );
    let by_cn = walk(&app, "sortBy=cn&sortDir=desc");
    assert_eq!(by_cn.len(), by_expiry.len());
    // Owners repeat: ties are broken by id, page after page.
    assert_eq!(
        walk(&app, "sortBy=owner&sortDir=desc").len(),
        by_expiry.len()
    );
    assert_eq!(walk(&app, "sortBy=owner").len(), by_expiry.len());
    let total = list(&app, "count=1")["total"].as_i64().unwrap();
    assert_eq!(
        usize::try_from(total).unwrap(),
        by_expiry.len(),
        "total is exact"
    );

    // Filters: a CN substring whatever its case, one owner, a DNS name (and the wildcard
    // covering it), and LIKE's wildcards taken literally.
    let team1: Vec<i64> = walk(&app, "filter=cn;TEAM1.example");
    assert_eq!(team1.len(), 4, "hosts 1, 4, 7, 10");
    assert_eq!(walk(&app, "filter=owner;team1@example.com"), team1);
    assert!(
        walk(&app, "filter=cn;host-%").is_empty(),
        "% is not a wildcard"
    );
    assert!(
        walk(&app, "filter=cn;host_1").is_empty(),
        "_ is not a wildcard"
    );
    let host = &issued[5];
    let by_name = ids(&list(&app, "filter=san;HOST-5.team2.example.com"));
    assert_eq!(by_name, [host["id"].as_i64().unwrap()]);
    let wildcard = issued.last().unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        ids(&list(&app, "filter=san;www.wild.example.com")),
        [wildcard]
    );

    // A serial in decimal, 0x hex and colon hex finds the same certificate.
    let serial = host["serial"].as_str().unwrap();
    let value: u128 = serial.parse().unwrap();
    let hex = format!("{value:X}");
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.clone()
    };
    let colons: Vec<String> = padded
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    for spelling in [
        serial.to_owned(),
        format!("0x{}", hex.to_lowercase()),
        colons.join(":"),
    ] {
        assert_eq!(
            ids(&list(&app, &format!("serial={spelling}"))),
            [host["id"].as_i64().unwrap()],
            "{spelling}"
        );
    }

    // What a bad query gets: 400 naming the parameter.
    let first = list(&app, "count=2&sortBy=notAfter");
    let cursor = first["next"].as_str().unwrap();
    for (query, field) in [
        (format!("count=2&cursor={cursor}"), "cursor"),
        (
            format!("count=2&sortBy=notAfter&page=2&cursor={cursor}"),
            "cursor",
        ),
        ("cursor=not-a-cursor".to_owned(), "cursor"),
        ("sortBy=body".to_owned(), "sortBy"),
        ("sortDir=up".to_owned(), "sortDir"),
        ("serial=12:3".to_owned(), "serial"),
        ("filter=san".to_owned(), "filter"),
    ] {
        let reply = app.get(&format!("/api/1/certificates?{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert!(
            reply.body["reasons"][field].is_string(),
            "{query}: {}",
            reply.text
        );
    }

    // Lemur's statistics.
    let bits = app.get("/api/1/certificates/stats?metric=bits");
    assert_eq!(bits.status, 200, "{}", bits.text);
    let labels = bits.body["items"]["labels"].as_array().unwrap();
    let at = labels.iter().position(|label| label == 256).unwrap();
    assert!(
        bits.body["items"]["values"][at].as_i64().unwrap() >= i64::try_from(CERTIFICATES).unwrap()
    );
    assert_eq!(
        bits.body["total"].as_i64().unwrap(),
        i64::try_from(labels.len()).unwrap()
    );
    let expiring = app.get("/api/1/certificates/stats?metric=not_after");
    assert_eq!(expiring.status, 200, "{}", expiring.text);
    let counted: i64 = expiring.body["items"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    // Within 32 weeks: every host (the latest in 80 days), and the wildcard if the authority's
    // default validity is that short.
    let wildcard_soon =
        issued.last().unwrap()["notAfter"].as_str().unwrap()[..10] < in_days(7 * 32, 0)[..10];
    assert_eq!(
        counted,
        i64::try_from(CERTIFICATES).unwrap() + i64::from(wildcard_soon)
    );
    let unknown = app.get("/api/1/certificates/stats?metric=colour");
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(unknown.body["reasons"]["metric"].is_string());
    dashboard(&app, &issued);

    // The expiration scan finds host 4 (30 days out) and tells its owner; nothing else is in
    // a window of 30, 15 or 2 days.
    let scan = |args: &[&str]| app.daemon.command().args(args).output().unwrap();
    let dry = scan(&["notify", "expirations", "--dry-run"]);
    let report = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let host4 = issued[4]["name"].as_str().unwrap();
    assert!(
        report.contains(&format!("team1@example.com: 1 certificate(s): {host4}")),
        "{report}"
    );
    assert!(report.contains("1 certificates of 1 owners"), "{report}");
    let excluded = scan(&["notify", "expirations", "--dry-run", "-e", "Host-4"]);
    assert!(String::from_utf8_lossy(&excluded.stdout).contains("0 certificates of 0 owners"));
    let for_real = scan(&["notify", "expirations"]);
    assert!(!for_real.status.success());
    assert!(String::from_utf8_lossy(&for_real.stderr).contains("--dry-run"));
}

/// A statistic's labels and values.
fn stats(app: &Appliance, metric: &str) -> (Vec<Value>, Vec<i64>) {
    let reply = app.get(&format!("/api/1/certificates/stats?metric={metric}"));
    assert_eq!(reply.status, 200, "{metric}: {}", reply.text);
    let items = &reply.body["items"];
    let values = items["values"].as_array().unwrap();
    (
        items["labels"].as_array().unwrap().clone(),
        values.iter().map(|v| v.as_i64().unwrap()).collect(),
    )
}

/// The dashboard's statistics by time, once host 0 (10 days out) is revoked: it expires for
/// no one any more.
fn dashboard(app: &Appliance, issued: &[Value]) {
    let host0 = issued[0]["id"].as_i64().unwrap();
    let revoked = app.daemon.put(
        &format!("/api/1/certificates/{host0}/revoke"),
        Some(&app.token),
        &json!({ "crlReason": "superseded" }),
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let wildcard_expiry = &issued.last().unwrap()["notAfter"].as_str().unwrap()[..10];
    let wildcard_within = |days| i64::from(wildcard_expiry < &in_days(days, 0)[..10]);

    // Hosts 1 and 2 (17 and 24 days) within 30; host 4's 30 days and an hour is not; every
    // host but the revoked within 90.
    let (labels, values) = stats(app, "expiring");
    assert_eq!(labels, [json!(7), json!(30), json!(90)]);
    assert_eq!(values, [0, 2, 10 + wildcard_within(89)]);

    // A year of weeks from today: host 1 in the third (17 days), host 10 in the twelfth (80).
    let (labels, values) = stats(app, "expires_per_week");
    assert_eq!(labels.len(), 53);
    assert_eq!(labels[0], json!(in_days(0, 0)[..10]));
    assert_eq!(labels[1], json!(in_days(7, 0)[..10]));
    assert!(values[2] >= 1 && values[11] >= 1, "{values:?}");
    assert_eq!(values.iter().sum::<i64>(), 10 + wildcard_within(370));

    // The last 30 days, today last: every certificate of the inventory (the CA's own too)
    // entered it in them.
    let (labels, values) = stats(app, "issued_per_day");
    assert_eq!(labels.len(), 30);
    assert_eq!(labels[29], json!(in_days(0, 0)[..10]));
    assert_eq!(labels[0], json!(in_days(-29, 0)[..10]));
    let total = list(app, "count=1")["total"].as_i64().unwrap();
    assert_eq!(values.iter().sum::<i64>(), total);
}

on_both_databases!(
    an_inventory_is_sorted_paged_searched_counted_and_scanned,
    inventory
);
