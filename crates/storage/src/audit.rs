//! The audit log: append-only and hash-chained, so that editing or deleting
//! a stored row is detectable afterwards.
//!
//! Every row stores the hash of the row before it (`prev_hash`) and its own
//! `hash = hex(SHA-256(prev_hash || "\n" || canonical(row)))`, where
//! `canonical(row)` is the JSON array
//! `[at, actor, subject, organization_id, ip, user_agent, event, details]`
//! (`at` as `%Y-%m-%dT%H:%M:%S%.6fZ`, `null` for absent values, `details` as
//! its stored JSON text). The first row chains onto [`GENESIS`].
//! [`verify_chain`] recomputes everything; a changed row no longer matches its
//! hash, and a deleted row leaves its successor pointing at a hash that is no
//! longer there. Dropping rows from the *end* of the log is the one change
//! the chain itself can't reveal; anchoring the latest hash elsewhere would.

use chrono::{NaiveDateTime, SubsecRound};
use diesel::connection::{Connection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use ring::digest::{SHA256, digest};

use crate::connection::AnyConnection;
use crate::error::StorageError;
use crate::hex;
use crate::models::{AuditRow, NewAuditRow};
use crate::repo;
use crate::schema::audit_log;

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Key of the PostgreSQL advisory lock that serializes appends: the ASCII
/// bytes of "auditlog", so it can't collide with a lock taken elsewhere by
/// accident.
const APPEND_LOCK_KEY: i64 = 0x6175_6469_746c_6f67;

/// Rows read per query by [`verify_chain`], so memory stays flat however
/// long the log grows.
const VERIFY_BATCH: i64 = 1000;

/// One event to record. Everything here goes into the hash.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// UTC. [`append`] truncates it to microseconds, the precision both
    /// backends store, so the hash recomputed from the stored row matches.
    pub at: NaiveDateTime,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub organization_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub event: String,
    /// A JSON object, as text. Hashed as stored, so its key order is fixed
    /// once written.
    pub details: String,
}

/// `hex(SHA-256(prev_hash || "\n" || canonical(entry)))`.
pub fn canonical_hash(prev_hash: &str, entry: &AuditEntry) -> String {
    let at = entry.at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    // A tuple serializes as a JSON array, with `None` as `null`.
    let canonical = serde_json::to_string(&(
        at,
        &entry.actor,
        &entry.subject,
        &entry.organization_id,
        &entry.ip,
        &entry.user_agent,
        &entry.event,
        &entry.details,
    ))
    .expect("strings and nulls always serialize");
    let mut input = String::with_capacity(prev_hash.len() + 1 + canonical.len());
    input.push_str(prev_hash);
    input.push('\n');
    input.push_str(&canonical);
    hex(digest(&SHA256, input.as_bytes()).as_ref())
}

/// Appends `entry` to the chain and returns the stored row.
///
/// Must run inside the caller's transaction (so the record commits or rolls
/// back with the action it describes); outside one it fails with
/// `NotInTransaction`, because the lock below would be released at once.
/// Writers are serialized until that transaction ends — on PostgreSQL by a
/// transaction-scoped advisory lock, on SQLite by its database write lock —
/// so two appends can never chain onto the same previous row. Append late in
/// the transaction: the lock is held until commit.
///
/// PostgreSQL must be at READ COMMITTED (diesel's default), so the read of
/// the last row after the lock sees the previous writer's commit.
pub fn append(conn: &mut AnyConnection, entry: AuditEntry) -> Result<AuditRow, StorageError> {
    let depth =
        <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()?;
    if depth.is_none() {
        return Err(diesel::result::Error::NotInTransaction.into());
    }
    match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(APPEND_LOCK_KEY)
                .execute(pg)?;
        }
        // Normally already taken by the caller as its first statement; taking
        // it again is a no-op then, and makes a forgotten one wait here
        // instead of racing.
        AnyConnection::Sqlite(_) => repo::write_lock(conn)?,
    }

    let prev_hash = audit_log::table
        .select(audit_log::hash)
        .order(audit_log::id.desc())
        .first::<String>(conn)
        .optional()?
        .unwrap_or_else(|| GENESIS.to_owned());
    let entry = AuditEntry {
        at: entry.at.trunc_subsecs(6),
        ..entry
    };
    let hash = canonical_hash(&prev_hash, &entry);
    let row = NewAuditRow {
        at: entry.at,
        actor: entry.actor,
        subject: entry.subject,
        organization_id: entry.organization_id,
        ip: entry.ip,
        user_agent: entry.user_agent,
        event: entry.event,
        details: entry.details,
        prev_hash,
        hash,
    };
    // Only single columns can be RETURNed through the multi-backend
    // connection; everything else is already at hand.
    let id = diesel::insert_into(audit_log::table)
        .values(&row)
        .returning(audit_log::id)
        .get_result(conn)?;
    Ok(AuditRow {
        id,
        at: row.at,
        actor: row.actor,
        subject: row.subject,
        organization_id: row.organization_id,
        ip: row.ip,
        user_agent: row.user_agent,
        event: row.event,
        details: row.details,
        prev_hash: row.prev_hash,
        hash: row.hash,
    })
}

/// Which rows [`page`] returns; `None` fields match everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub event: Option<String>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub organization_id: Option<String>,
}

/// Newest first: rows with `id < before` (all rows when `None`) that match
/// `filter`, at most `limit`. Pass the last row's id as the next `before`.
pub fn page(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, StorageError> {
    let mut query = audit_log::table
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    if let Some(event) = &filter.event {
        query = query.filter(audit_log::event.eq(event));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::actor.eq(actor));
    }
    if let Some(subject) = &filter.subject {
        query = query.filter(audit_log::subject.eq(subject));
    }
    if let Some(organization_id) = &filter.organization_id {
        query = query.filter(audit_log::organization_id.eq(organization_id));
    }
    Ok(query.load(conn)?)
}

/// The outcome of [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    Intact {
        rows: u64,
    },
    /// The first bad row, oldest first; rows after it aren't examined.
    Broken {
        row_id: i64,
        reason: String,
    },
}

const HASH_MISMATCH: &str = "hash does not match its contents";
const LINK_MISMATCH: &str = "prev_hash does not match the previous row";

/// Walks the whole chain oldest first, recomputing every hash, and reports
/// the first row that was altered or whose predecessor was deleted.
/// Concurrent appends are safe: they only add rows after the ones walked.
pub fn verify_chain(conn: &mut AnyConnection) -> Result<ChainCheck, StorageError> {
    let mut expected_prev = GENESIS.to_owned();
    let mut last_id: Option<i64> = None;
    let mut rows: u64 = 0;
    loop {
        let mut query = audit_log::table
            .select(AuditRow::as_select())
            .order(audit_log::id.asc())
            .limit(VERIFY_BATCH)
            .into_boxed();
        if let Some(last_id) = last_id {
            query = query.filter(audit_log::id.gt(last_id));
        }
        let batch: Vec<AuditRow> = query.load(conn)?;
        let Some(last) = batch.last() else {
            return Ok(ChainCheck::Intact { rows });
        };
        last_id = Some(last.id);
        for row in batch {
            // Contents first: an edited row is reported as edited even when
            // the edit was to its prev_hash.
            let recomputed = canonical_hash(&row.prev_hash, &entry_of(&row));
            if recomputed != row.hash {
                return Ok(broken(row.id, HASH_MISMATCH));
            }
            if row.prev_hash != expected_prev {
                return Ok(broken(row.id, LINK_MISMATCH));
            }
            expected_prev = row.hash;
            rows += 1;
        }
    }
}

fn broken(row_id: i64, reason: &str) -> ChainCheck {
    ChainCheck::Broken {
        row_id,
        reason: reason.to_owned(),
    }
}

fn entry_of(row: &AuditRow) -> AuditEntry {
    AuditEntry {
        at: row.at,
        actor: row.actor.clone(),
        subject: row.subject.clone(),
        organization_id: row.organization_id.clone(),
        ip: row.ip.clone(),
        user_agent: row.user_agent.clone(),
        event: row.event.clone(),
        details: row.details.clone(),
    }
}
