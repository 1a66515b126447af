//! Refresh-token rotation, written by group commit ([`crate::group_commit`]).
//!
//! Rotations that arrive together are claimed, checked and inserted in one
//! transaction by one writer: one `BEGIN`…`COMMIT` for the whole batch, and
//! on PostgreSQL one multi-row statement per step (lock-and-read, claim,
//! touch, insert, roles and permissions) instead of a statement per
//! rotation. Each caller is answered only after the commit that holds its
//! rotation; the access token is signed by the caller afterwards, outside
//! the writer.
//!
//! The rules are those of one rotation at a time, applied in arrival order
//! inside the batch: the batch reads (and on PostgreSQL locks) every token
//! it was given with its session and user, then decides each rotation in
//! turn against that state as the earlier rotations of the batch left it (a
//! token claimed, a session revoked), exactly as if they had committed one
//! after the other. So the one-winner race, reuse detection and the grace
//! window keep their meaning within a batch and across batches. A token
//! presented with another session or on the wrong channel is not spent.
//!
//! One live chain: a sibling issued within the grace window is a second live
//! token in the session, and without more each would rotate on by itself —
//! a stolen copy refreshed together with the owner's would then never be
//! caught as reuse. So the sibling marks its session forked (`forked_at`),
//! and the next rotation that claims an unspent token of a forked session
//! spends every other unspent token of it
//! ([`refresh_tokens::spend_other_branches`]), each as of the moment its
//! branch was forked ([`refresh_tokens::branch_spent_at`]). Presented within the
//! grace window of that fork, such a token gets a sibling like any other
//! duplicate (a client repeating its own refresh); later, it is reuse and
//! the session is revoked — at once, however soon after the spending it
//! comes: a window counted from the spending would let a second holder
//! present its copy right after each of the owner's rotations and keep a
//! chain of its own forever. Rotations of unforked sessions, all but a
//! racing few, pay nothing for this.
//!
//! A failed batch commits nothing: each of its rotations is then written
//! alone, so every caller gets its own answer (one failing rotation can't
//! fail the others), and none is told of a rotation that was not committed.
//! A batch of one is written again too, and a rotation written alone is
//! tried up to three times while the database refuses it: the usual
//! failure is PostgreSQL ending one of two instances' batches that wait on
//! each other's rows (the branches, sessions and user of a forked session),
//! and the next try finds the other committed.
//! When the database is unreachable every caller gets that answer at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use storage::StorageError;
use storage::models::{RefreshTokenRow, SessionRow, UserRow};
use storage::repo::{refresh_tokens, sessions};

use crate::audit::{AuditContext, AuditEvent, events};
use crate::blocking::spawn_detached;
use crate::error::AccountsError;
use crate::group_commit::{GroupCommit, lost};
use crate::secrets::{new_opaque_token, token_hash};
use crate::service::{Accounts, Channel, ClientInfo, IssuedTokens, RevokedSession, now};
use crate::types::UserStatus;

type Result<T> = std::result::Result<T, AccountsError>;

/// Most rotations written in one transaction.
const MAX_BATCH: usize = 256;

/// One rotation asked for.
pub(crate) struct RotationJob {
    /// SHA-256 of the presented token.
    hash: String,
    /// The session the token must belong to, when the caller knows it.
    session_id: Option<String>,
    channel: Channel,
    client: ClientInfo,
    /// SHA-256 of the new token (the caller keeps the token itself).
    new_hash: String,
}

impl RotationJob {
    /// The job for `presented`, and the new token it will install (the
    /// caller keeps the token; the job carries only its hash).
    fn new(
        presented: &SecretString,
        session_id: Option<&str>,
        channel: Channel,
        client: &ClientInfo,
    ) -> (SecretString, Self) {
        let token = new_opaque_token();
        let job = RotationJob {
            hash: token_hash(presented.expose_secret()),
            session_id: session_id.map(str::to_owned),
            channel,
            client: client.clone(),
            new_hash: token_hash(token.expose_secret()),
        };
        (token, job)
    }
}

/// What the writer decided and committed for one rotation.
pub(crate) enum Rotation {
    Rotated {
        user: Box<UserRow>,
        session: Box<SessionRow>,
        roles: Vec<String>,
        perms: Vec<String>,
        refresh_expires_in: i64,
        at: DateTime<Utc>,
    },
    Invalid,
    /// The user may no longer log in: the session was ended.
    Ended(Vec<RevokedSession>),
    Reused(Vec<RevokedSession>),
}

/// The queue of rotations of one [`Accounts`].
pub(crate) struct Rotations(GroupCommit<RotationJob, Rotation>);

impl Default for Rotations {
    fn default() -> Self {
        Self(GroupCommit::new(MAX_BATCH))
    }
}

/// A rotation decided, waiting for the batch's roles and permissions.
enum Decided {
    Done(Rotation),
    Rotate {
        user: Box<UserRow>,
        session: Box<SessionRow>,
        refresh_expires_in: i64,
    },
}

impl Accounts {
    /// Rotates a refresh token: the presented one is spent, a new one returned,
    /// and the access token re-reads the user's current roles and permissions.
    /// The token must belong to a session of `channel` (and to `session_id`
    /// when given), or nothing is spent.
    ///
    /// Reuse: a spent token presented again within `reuse_grace_secs` of its
    /// first use gets a fresh sibling token (two racing refreshes from one
    /// client both succeed; each new token is itself single-use). Later than
    /// that, the session is revoked and [`AccountsError::RefreshTokenReused`]
    /// returned. Siblings don't make lasting chains: the first of them to be
    /// rotated spends the others, which are then reuse once their own grace
    /// window has passed.
    ///
    /// Blocks this thread until the group commit holding this rotation has
    /// committed (writing it here when no writer runs): for callers outside
    /// async code; servers use [`rotate_async`](Self::rotate_async).
    pub(crate) fn rotate(
        &self,
        presented: &SecretString,
        session_id: Option<&str>,
        channel: Channel,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let (token, job) = RotationJob::new(presented, session_id, channel, client);
        let rotation = self
            .rotations
            .0
            .submit_blocking(job, |jobs| self.write_rotations(jobs))?;
        self.answer(rotation, token)
    }

    /// [`rotate`](Self::rotate), waiting for the commit without holding a
    /// thread. The first caller to find no writer running starts one on the
    /// blocking pool; the access token is signed here, after the commit.
    pub(crate) async fn rotate_async(
        self: &Arc<Self>,
        presented: &SecretString,
        session_id: Option<&str>,
        channel: Channel,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let (token, job) = RotationJob::new(presented, session_id, channel, client);
        let queued = self.rotations.0.enqueue(job);
        if queued.start_writer {
            let accounts = Arc::clone(self);
            spawn_detached(
                tracing::info_span!(parent: None, "refresh_token_writer"),
                move || {
                    accounts
                        .rotations
                        .0
                        .write_queued(|jobs| accounts.write_rotations(jobs))
                },
            );
        }
        let rotation = queued.answer.await.unwrap_or_else(lost)?;
        self.answer(rotation, token)
    }

    /// The caller's answer for its committed rotation: on success, a new
    /// access token beside the new refresh token `token`.
    fn answer(&self, rotation: Rotation, token: SecretString) -> Result<IssuedTokens> {
        match rotation {
            Rotation::Rotated {
                user,
                session,
                roles,
                perms,
                refresh_expires_in,
                at,
            } => self.issue(
                &user,
                &session,
                roles,
                perms,
                (token, refresh_expires_in),
                at,
            ),
            Rotation::Invalid => Err(AccountsError::InvalidRefreshToken),
            Rotation::Ended(revoked) => {
                self.published(revoked);
                Err(AccountsError::InvalidRefreshToken)
            }
            Rotation::Reused(revoked) => Err(AccountsError::RefreshTokenReused(
                self.published(revoked).into_iter().next(),
            )),
        }
    }

    /// Writes a batch; on failure each rotation alone (see the module doc).
    fn write_rotations(&self, jobs: Vec<RotationJob>) -> Vec<Result<Rotation>> {
        match self.write_batch(&jobs) {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(AccountsError::Unavailable(reason)) => jobs
                .iter()
                .map(|_| Err(AccountsError::Unavailable(reason.clone())))
                .collect(),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    rotations = jobs.len(),
                    "a batch of refresh-token rotations failed; writing each alone"
                );
                jobs.iter().map(|job| self.write_alone(job)).collect()
            }
        }
    }

    /// One rotation in a transaction of its own, tried again while the
    /// database ends it for waiting on another transaction (a deadlock with
    /// another instance's batch, which then goes on): each try commits
    /// nothing it does not answer.
    fn write_alone(&self, job: &RotationJob) -> Result<Rotation> {
        const TRIES: usize = 3;
        let mut tries = 1;
        loop {
            match self.write_batch(std::slice::from_ref(job)) {
                Ok(mut done) => return done.pop().ok_or(AccountsError::BackgroundTask),
                Err(AccountsError::Storage(StorageError::Query(
                    diesel::result::Error::DatabaseError(..),
                ))) if tries < TRIES => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// One transaction for all of `jobs`; one answer per job, in order.
    fn write_batch(&self, jobs: &[RotationJob]) -> Result<Vec<Rotation>> {
        let at = now();
        let now = at.naive_utc();
        let mut conn = self.conn()?;
        refresh_tokens::rotation_transaction(&mut conn, |c| -> Result<Vec<Rotation>> {
            // SQLite: the write lock first, so the reads below see what the
            // writes will change (see `write_lock`).
            storage::repo::write_lock(c)?;
            let mut hashes: Vec<String> = jobs.iter().map(|j| j.hash.clone()).collect();
            hashes.sort_unstable();
            hashes.dedup();
            let mut found: HashMap<String, refresh_tokens::Rotating> =
                refresh_tokens::lock_many_with_session_and_user(c, &hashes)?
                    .into_iter()
                    .map(|row| (row.0.token_hash.clone(), row))
                    .collect();
            // Sessions revoked by earlier rotations of this batch.
            let mut ended: HashSet<String> = HashSet::new();
            // Sessions this batch gives a second live token (a sibling
            // within the grace window), and forked sessions whose other
            // branches it spends (see "One live chain" in the module doc).
            let mut branched: HashSet<String> = HashSet::new();
            let mut rejoined: HashSet<String> = HashSet::new();
            let mut claims = Vec::new();
            let mut touched = Vec::new();
            let mut inserts = Vec::new();
            let mut decided = Vec::with_capacity(jobs.len());
            for job in jobs {
                // A missing session or user means an invalid token, as a
                // missing token does.
                let Some((token, session, user)) = found.get_mut(&job.hash) else {
                    decided.push(Decided::Done(Rotation::Invalid));
                    continue;
                };
                if job
                    .session_id
                    .as_deref()
                    .is_some_and(|expected| expected != token.session_id)
                    || !job.channel.admits(session)
                {
                    // Not spent: presented with another session's access
                    // token, or on the wrong channel.
                    decided.push(Decided::Done(Rotation::Invalid));
                    continue;
                }
                let claimed = token.used_at.is_none();
                if claimed {
                    token.used_at = Some(now);
                    claims.push(token.token_hash.clone());
                }
                let expired = token.expires_at <= now || session.expires_at <= now;
                if session.revoked_at.is_some() || ended.contains(&session.id) || expired {
                    decided.push(Decided::Done(Rotation::Invalid));
                    continue;
                }
                if !claimed {
                    let used_at = token.used_at.unwrap_or(now);
                    // A grace of 0 means no second use at all, even by a
                    // racer of the same instant.
                    let grace = self.sessions.reuse_grace_secs;
                    let within_grace = grace > 0 && now - used_at <= TimeDelta::seconds(grace);
                    if !within_grace {
                        let revoked =
                            self.revoke_session_in(c, &session.id, "refresh_token_reused", at)?;
                        ended.insert(session.id.clone());
                        AuditEvent::new(events::REFRESH_REUSED)
                            .subject(&session.user_id)
                            .detail("session_id", &session.id)
                            .record(c, &AuditContext::from(&job.client))?;
                        decided.push(Decided::Done(Rotation::Reused(revoked)));
                        continue;
                    }
                }
                if UserStatus::parse(&user.status) != Some(UserStatus::Active) {
                    let revoked =
                        self.revoke_session_in(c, &session.id, "account_not_active", at)?;
                    ended.insert(session.id.clone());
                    decided.push(Decided::Done(Rotation::Ended(revoked)));
                    continue;
                }
                let rejoin = if claimed {
                    let forked = branched.contains(&session.id)
                        || (session.forked_at.is_some() && !rejoined.contains(&session.id));
                    forked.then(|| session.id.clone())
                } else {
                    branched.insert(session.id.clone());
                    None
                };
                touched.push(session.id.clone());
                let idle_end = now + TimeDelta::seconds(self.sessions.refresh_idle_ttl_secs);
                let expires_at = idle_end.min(session.expires_at);
                inserts.push(RefreshTokenRow {
                    id: RefreshTokenRow::new_id(),
                    session_id: session.id.clone(),
                    token_hash: job.new_hash.clone(),
                    parent_id: Some(token.id.clone()),
                    created_at: now,
                    expires_at,
                    used_at: None,
                });
                decided.push(Decided::Rotate {
                    user: Box::new(user.clone()),
                    session: Box::new(session.clone()),
                    refresh_expires_in: (expires_at - now).num_seconds(),
                });
                if let Some(session_id) = rejoin {
                    // The session's other tokens are spent now, also for
                    // the rest of this batch, as of their fork (see
                    // `refresh_tokens::branch_spent_at`).
                    let branch =
                        |t: &RefreshTokenRow| t.session_id == session_id && t.used_at.is_none();
                    let parents: Vec<&str> = found
                        .values()
                        .filter(|(t, ..)| branch(t))
                        .filter_map(|(t, ..)| t.parent_id.as_deref())
                        .collect();
                    let forked_at = refresh_tokens::branch_spent_at(c, &parents)?;
                    for (other, ..) in found.values_mut().filter(|(t, ..)| branch(t)) {
                        let parent = other.parent_id.as_ref().and_then(|p| forked_at.get(p));
                        other.used_at =
                            Some(parent.copied().unwrap_or(refresh_tokens::BRANCH_SPENT_AT));
                    }
                    rejoined.insert(session_id);
                }
            }
            // Before the inserts, so the tokens this batch hands out live.
            let rejoined: Vec<String> = rejoined.into_iter().collect();
            let unreached = refresh_tokens::spend_other_branches(c, &rejoined, &claims)?;
            let forked: Vec<String> = branched.into_iter().chain(unreached).collect();
            let one_chain: Vec<String> = rejoined
                .into_iter()
                .filter(|id| !forked.contains(id))
                .collect();
            sessions::set_forked(c, &forked, Some(now))?;
            sessions::set_forked(c, &one_chain, None)?;
            touched.sort_unstable();
            touched.dedup();
            let mut user_ids: Vec<String> = decided
                .iter()
                .filter_map(|d| match d {
                    Decided::Rotate { user, .. } => Some(user.id.clone()),
                    Decided::Done(_) => None,
                })
                .collect();
            user_ids.sort_unstable();
            user_ids.dedup();
            // The rows are locked (PostgreSQL) or the write lock held
            // (SQLite): every claim decided above must succeed.
            let (claimed, grants) =
                refresh_tokens::write_rotations(c, &claims, &touched, &inserts, &user_ids, now)?;
            if claimed != claims.len() {
                tracing::error!(
                    expected = claims.len(),
                    claimed,
                    "refresh tokens changed under the batch's lock"
                );
                return Err(AccountsError::Storage(StorageError::Query(
                    diesel::result::Error::RollbackTransaction,
                )));
            }
            Ok(decided
                .into_iter()
                .map(|d| match d {
                    Decided::Done(rotation) => rotation,
                    Decided::Rotate {
                        user,
                        session,
                        refresh_expires_in,
                    } => {
                        let (roles, perms) = grants.get(&user.id).cloned().unwrap_or_default();
                        Rotation::Rotated {
                            user,
                            session,
                            roles,
                            perms,
                            refresh_expires_in,
                            at,
                        }
                    }
                })
                .collect())
        })
    }
}
