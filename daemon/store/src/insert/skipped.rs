//! Why a row the INSERT skipped was not stored, and what to try next: the same request made
//! before (by its idempotency key), a body a live certificate has, or a name taken. Only the
//! rows skipped are looked at, so a batch of new certificates costs no reads.

use super::{Attempt, Outcome, ToStore, in_list, rows_per_statement};
use crate::engine::{Arg, Statements, args};
use lemur_core::model::NewCertificate;
use lemur_core::{Error, Result};
use std::collections::HashMap;

/// For each row of `skipped` (indexes into `batch`) the INSERT left out, its outcome, or how to
/// try it next: a request made before with its idempotency key is a replay (or a reused key);
/// a body a live certificate has is a duplicate, or for a certificate that may repeat a body,
/// that one's twin; else its name was taken and the second is tried, once.
pub(super) async fn why_skipped(
    tx: &mut impl Statements,
    batch: &[ToStore<'_, '_>],
    skipped: &[usize],
    attempts: &mut [Attempt],
    outcomes: &mut [Option<Outcome>],
) -> Result<()> {
    for &i in skipped {
        outcomes[i] = earlier_request(tx, batch[i].new).await?;
    }
    let unexplained: Vec<usize> = skipped
        .iter()
        .copied()
        .filter(|&i| outcomes[i].is_none())
        .collect();
    let hashes: Vec<&str> = unexplained
        .iter()
        .filter(|&&i| attempts[i].duplicate_of.is_none())
        .map(|&i| batch[i].new.parsed.sha256.as_str())
        .collect();
    let holders = existing_bodies(tx, &hashes).await?;
    for i in unexplained {
        let attempt = &mut attempts[i];
        let holder = attempt
            .duplicate_of
            .is_none()
            .then(|| holders.get(&batch[i].new.parsed.sha256).copied())
            .flatten();
        match holder {
            Some(holder) if batch[i].unique_body => outcomes[i] = Some(Outcome::Duplicate(holder)),
            Some(holder) => attempt.duplicate_of = Some(holder),
            None if attempt.name == 0 => attempt.name = 1,
            None => outcomes[i] = Some(Outcome::NameTaken),
        }
    }
    Ok(())
}

/// The certificate an earlier request with `new`'s idempotency key made, if any: a replay when
/// the requests match, else a reused key.
async fn earlier_request(
    tx: &mut impl Statements,
    new: &NewCertificate<'_>,
) -> Result<Option<Outcome>> {
    let (Some(key), Some(user_id)) = (new.idempotency, new.user_id) else {
        return Ok(None);
    };
    let earlier: Option<(i64, Option<String>)> = tx
        .optional(
            "SELECT id, idempotency_fingerprint FROM certificates
             WHERE user_id = $1 AND idempotency_key = $2",
            args![user_id, key.key.as_str()],
            "looking up an idempotency key",
        )
        .await?;
    Ok(earlier.map(|(id, fingerprint)| {
        if fingerprint.as_deref() == Some(key.fingerprint.as_str()) {
            Outcome::Replayed(id)
        } else {
            Outcome::KeyReused
        }
    }))
}

/// Which of `hashes` (SHA-256 of certificate bodies) a live certificate (not a twin) has
/// already, in the caller's transaction: hash to id.
pub(crate) async fn existing_bodies(
    tx: &mut impl Statements,
    hashes: &[&str],
) -> Result<HashMap<String, i64>> {
    if hashes.is_empty() {
        return Ok(HashMap::new());
    }
    let mut hashes = hashes.to_vec();
    hashes.sort_unstable();
    hashes.dedup();
    let look_up = |list: &str| {
        format!(
            "SELECT body_sha256, id FROM certificates
             WHERE body_sha256 IN ({list}) AND deleted = FALSE AND duplicate_of IS NULL"
        )
    };
    let mut found = HashMap::new();
    for chunk in hashes.chunks(rows_per_statement(1)) {
        let rows: Vec<(String, i64)> = if tx.is_postgres() {
            // Planned for these hashes each time: a prepared statement's plan would scan the
            // table once per batch while a new database is imported into.
            let list = hex_literals(chunk)?;
            tx.all_unprepared(&look_up(&list), "looking for duplicates")
                .await?
        } else {
            let args: Vec<Arg<'_>> = chunk.iter().map(|&sha256| Arg::Text(sha256)).collect();
            let list = in_list(false, 0, chunk.len());
            tx.all(&look_up(&list), &args, "looking for duplicates")
                .await?
        };
        found.extend(rows);
    }
    Ok(found)
}

/// `hashes` as a list of SQL string literals, for a statement without parameters; refused
/// unless each is hex digits only, so nothing but those digits is written into the statement.
fn hex_literals(hashes: &[&str]) -> Result<String> {
    let mut list = String::with_capacity(hashes.len() * 68);
    for (index, sha256) in hashes.iter().enumerate() {
        if sha256.is_empty() || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(Error::Database {
                context: "looking for duplicates",
                source: format!("{sha256:?} is not a hash").into(),
            });
        }
        if index > 0 {
            list.push_str(", ");
        }
        list.push('\'');
        list.push_str(sha256);
        list.push('\'');
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::hex_literals;

    #[test]
    fn hashes_are_written_into_a_statement_only_as_hex_digits() {
        assert_eq!(hex_literals(&["0a1b", "ff"]).unwrap(), "'0a1b', 'ff'");
        for bad in ["", "0a'; DROP TABLE certificates; --", "0a 1b", "éé"] {
            assert!(
                hex_literals(&["0a1b", bad]).is_err(),
                "{bad:?} was let through"
            );
        }
    }
}
