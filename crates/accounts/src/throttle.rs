//! Rate limits shared by every instance on one database.
//!
//! Each limit is a GCRA (generic cell rate algorithm) over a row in the
//! `throttles` table: `limit` events per `period`, in bursts of up to
//! `limit`, after which one more event is allowed every `period / limit`.
//! Nothing ever locks an account for good: the allowance comes back as time
//! passes, whatever an attacker does. GCRA is a handful of arithmetic; the
//! crates that implement it (governor) keep their state in process memory,
//! which would make every instance count on its own — the state has to be in
//! the database the instances share.
//!
//! Keys are HMACs of the limit's name and its subject under a server secret,
//! so the table holds no addresses, login names or IPs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use diesel::Connection;
use ring::hmac;
use storage::repo::{lock_key, throttles};
use storage::{DbPool, StorageError};

use crate::error::AccountsError;
use crate::service::Accounts;

/// `limit` events per `period`; `limit == 0` switches the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub period: Duration,
}

impl Rate {
    pub const OFF: Rate = Rate {
        limit: 0,
        period: Duration::ZERO,
    };

    /// Time one event costs: `period / limit`.
    fn interval_ms(self) -> i64 {
        (self.period.as_millis() / u128::from(self.limit.max(1))) as i64
    }

    /// How far ahead of now the arrival time may run: the burst.
    fn tolerance_ms(self) -> i64 {
        self.interval_ms() * i64::from(self.limit.saturating_sub(1))
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `"5/15m"`, `"30/1h"`, `"10/30s"`, `"100/1d"`, or `"off"`.
    fn from_str(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Rate::OFF);
        }
        let wrong = || {
            format!("{text:?} is not a rate like 5/15m (events/period with s, m, h or d) or off")
        };
        let (limit, period) = text.split_once('/').ok_or_else(wrong)?;
        let limit: u32 = limit.trim().parse().map_err(|_| wrong())?;
        let period = period.trim();
        let unit_at = period.len().checked_sub(1).ok_or_else(wrong)?;
        let (amount, unit) = period.split_at(unit_at);
        let amount: u64 = amount.parse().map_err(|_| wrong())?;
        let seconds = match unit {
            "s" => amount,
            "m" => amount * 60,
            "h" => amount * 3600,
            "d" => amount * 86_400,
            _ => return Err(wrong()),
        };
        if limit == 0 || seconds == 0 {
            return Err(format!("{text:?}: use off to switch a limit off"));
        }
        Ok(Rate {
            limit,
            period: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.limit == 0 {
            return f.write_str("off");
        }
        write!(f, "{}/{}s", self.limit, self.period.as_secs())
    }
}

/// What is limited. The subject (an address, an IP, a login name) goes
/// with it in each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Failed logins for one login name, known or not (so the limit says
    /// nothing about which accounts exist).
    LoginFailuresPerAccount,
    /// Failed logins from one client IP.
    LoginFailuresPerIp,
    /// Code and link attempts (email codes, reset codes) from one IP.
    CodeAttemptsPerIp,
    /// Mail-sending requests (signup, forgot password, codes, registrations,
    /// activation resends) for one address.
    MailPerAddress,
    /// Mail-sending requests from one IP.
    MailPerIp,
    /// Second-factor codes (TOTP, recovery codes) tried for one account.
    MfaAttemptsPerAccount,
    /// Passkey sign-ins begun from one IP (each stores a ceremony until it
    /// is finished or expires).
    PasskeyCeremoniesPerIp,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Self::LoginFailuresPerAccount => "login-account",
            Self::LoginFailuresPerIp => "login-ip",
            Self::CodeAttemptsPerIp => "code-ip",
            Self::MailPerAddress => "mail-address",
            Self::MailPerIp => "mail-ip",
            Self::MfaAttemptsPerAccount => "mfa-account",
            Self::PasskeyCeremoniesPerIp => "passkey-ip",
        }
    }
}

/// The configured rate of each [`Limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleRates {
    pub login_failures_per_account: Rate,
    pub login_failures_per_ip: Rate,
    pub code_attempts_per_ip: Rate,
    pub mail_per_address: Rate,
    pub mail_per_ip: Rate,
    pub mfa_attempts_per_account: Rate,
    pub passkey_ceremonies_per_ip: Rate,
}

impl Default for ThrottleRates {
    fn default() -> Self {
        let rate = |limit, minutes: u64| Rate {
            limit,
            period: Duration::from_secs(minutes * 60),
        };
        ThrottleRates {
            login_failures_per_account: rate(5, 15),
            login_failures_per_ip: rate(50, 15),
            code_attempts_per_ip: rate(30, 15),
            mail_per_address: rate(5, 60),
            mail_per_ip: rate(30, 60),
            mfa_attempts_per_account: rate(10, 15),
            passkey_ceremonies_per_ip: rate(60, 15),
        }
    }
}

impl ThrottleRates {
    fn of(&self, limit: Limit) -> Rate {
        match limit {
            Limit::LoginFailuresPerAccount => self.login_failures_per_account,
            Limit::LoginFailuresPerIp => self.login_failures_per_ip,
            Limit::CodeAttemptsPerIp => self.code_attempts_per_ip,
            Limit::MailPerAddress => self.mail_per_address,
            Limit::MailPerIp => self.mail_per_ip,
            Limit::MfaAttemptsPerAccount => self.mfa_attempts_per_account,
            Limit::PasskeyCeremoniesPerIp => self.passkey_ceremonies_per_ip,
        }
    }
}

/// The shared rate limiter. Blocking (database): run it off the async workers.
pub struct Throttle {
    pool: DbPool,
    key: hmac::Key,
    rates: ThrottleRates,
}

impl Throttle {
    pub fn new(pool: DbPool, secret: &[u8], rates: ThrottleRates) -> Throttle {
        Throttle {
            pool,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            rates,
        }
    }

    pub fn rates(&self) -> &ThrottleRates {
        &self.rates
    }

    /// Counts one event against every limit, or — if any limit is
    /// exhausted — against none, answering `Err(Throttled)`. One atomic
    /// step under a lock per row ([`lock_rows`]), so parallel events — on
    /// this instance or another — can't slip past the limit.
    pub fn take(&self, events: &[(Limit, &str)]) -> Result<(), AccountsError> {
        let events = self.keyed(events);
        if events.is_empty() {
            return Ok(());
        }
        self.take_once(&events)
    }

    /// Takes back one event from every limit (an attempt that, after all,
    /// must not count: a login whose password was right). Never moves an
    /// allowance beyond full.
    pub fn refund(&self, events: &[(Limit, &str)]) -> Result<(), AccountsError> {
        let events: Vec<(Rate, String)> = self.keyed(events);
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().map_err(StorageError::from)?;
        let now = now_ms();
        conn.transaction(|c| {
            lock_rows(c, &events)?;
            for (rate, key) in &events {
                if let Some(tat) = throttles::tat_for_update(c, key)? {
                    throttles::set_tat(c, key, (tat - rate.interval_ms()).max(now))?;
                }
            }
            Ok::<_, StorageError>(())
        })?;
        Ok(())
    }

    /// Deletes rows with no recent events; returns how many.
    pub fn forget_idle(&self) -> Result<usize, AccountsError> {
        let mut conn = self.pool.get().map_err(StorageError::from)?;
        Ok(throttles::delete_idle(&mut conn, now_ms())?)
    }

    /// The configured rate and row key of each event; limits that are off
    /// are left out.
    fn keyed(&self, events: &[(Limit, &str)]) -> Vec<(Rate, String)> {
        events
            .iter()
            .map(|(limit, subject)| (self.rates.of(*limit), self.row_key(*limit, subject)))
            .filter(|(rate, _)| rate.limit > 0)
            .collect()
    }

    fn take_once(&self, events: &[(Rate, String)]) -> Result<(), AccountsError> {
        let mut conn = self.pool.get().map_err(StorageError::from)?;
        let now = now_ms();
        conn.transaction(|c| {
            lock_rows(c, events)?;
            let mut wait_ms = 0_i64;
            let mut next = Vec::with_capacity(events.len());
            for (rate, key) in events {
                let tat = throttles::tat_for_update(c, key)?.unwrap_or(now).max(now);
                // GCRA: the event fits if the arrival time, after it, runs
                // at most `tolerance` ahead of now.
                let over = tat - now - rate.tolerance_ms();
                if over > 0 {
                    wait_ms = wait_ms.max(over);
                }
                next.push((key, tat + rate.interval_ms()));
            }
            let refused = wait_ms > 0;
            if !refused {
                for (key, tat) in next {
                    throttles::set_tat(c, key, tat)?;
                }
            }
            if refused {
                // Whole seconds, rounded up: Retry-After has no fractions.
                let retry_after_secs = (wait_ms + 999) / 1000;
                return Ok(Err(AccountsError::Throttled { retry_after_secs }));
            }
            Ok::<_, StorageError>(Ok(()))
        })?
    }

    fn row_key(&self, limit: Limit, subject: &str) -> String {
        let message = format!("{}\n{}", limit.name(), subject.trim().to_lowercase());
        let tag = hmac::sign(&self.key, message.as_bytes());
        crate::secrets::hex(tag.as_ref())
    }
}

/// Serializes every transaction on these rows, including rows that don't
/// exist yet: `SELECT … FOR UPDATE` locks nothing when there is no row, and
/// under READ COMMITTED two first events would both read "no row" and the
/// later write would overwrite the earlier one. Keys are locked in sorted
/// order so two multi-key events can't deadlock.
fn lock_rows(
    conn: &mut storage::AnyConnection,
    events: &[(Rate, String)],
) -> Result<(), StorageError> {
    let mut keys: Vec<&str> = events.iter().map(|(_, key)| key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        lock_key(conn, &format!("throttle {key}"))?;
    }
    Ok(())
}

impl Accounts {
    /// The shared rate limiter (for its periodic clean-up, and callers that
    /// limit work of their own).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// A request that sends mail to `address` from `ip`: one event per
    /// address and per IP, or [`AccountsError::Throttled`] (and nothing is
    /// sent). Every operation that mails calls it first.
    pub(crate) fn admit_mail(&self, address: &str, ip: Option<&str>) -> Result<(), AccountsError> {
        let ip = ip_subject(ip);
        let events = [
            (Limit::MailPerIp, ip.as_str()),
            (Limit::MailPerAddress, address),
        ];
        self.limited("mail", self.throttle.take(&events))
    }

    /// A guess at a code (email verification, organization, password
    /// reset) from `ip`.
    pub(crate) fn admit_code_attempt(&self, ip: Option<&str>) -> Result<(), AccountsError> {
        let ip = ip_subject(ip);
        let events = [(Limit::CodeAttemptsPerIp, ip.as_str())];
        self.limited("code", self.throttle.take(&events))
    }

    /// Tells the observer about a refusal of `kind`, and passes it on.
    pub(crate) fn limited(
        &self,
        kind: &'static str,
        outcome: Result<(), AccountsError>,
    ) -> Result<(), AccountsError> {
        if let Err(AccountsError::Throttled { .. }) = &outcome {
            (self.on_throttled)(kind);
        }
        outcome
    }

    /// A password guess, counted against `limits` whatever the path (login,
    /// password change): the attempt takes its place before `verify` runs
    /// (so parallel guesses are cut off at the limit) and gives it back when
    /// the password was right, or when nothing was checked (`verify`
    /// failed, e.g. a full hashing queue).
    pub(crate) fn guess_password<E>(
        &self,
        limits: &[(Limit, &str)],
        verify: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, AccountsError>
    where
        AccountsError: From<E>,
    {
        self.limited("login", self.throttle.take(limits))?;
        let verified = verify();
        if !matches!(verified, Ok(false))
            && let Err(e) = self.throttle.refund(limits)
        {
            tracing::warn!(error = %e, "could not give back a password attempt");
        }
        Ok(verified?)
    }
}

/// What a per-IP limit counts: the address, except that IPv6 addresses
/// count per /64 (one subscriber's whole prefix: they get many addresses
/// each); requests without an address share one bucket.
pub(crate) fn ip_subject(ip: Option<&str>) -> String {
    match ip.map(|ip| ip.parse::<std::net::IpAddr>()) {
        Some(Ok(std::net::IpAddr::V6(v6))) if v6.to_ipv4_mapped().is_none() => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            format!("{}/64", std::net::Ipv6Addr::from(segments))
        }
        Some(Ok(std::net::IpAddr::V6(v6))) => v6.to_canonical().to_string(),
        Some(Ok(ip)) => ip.to_string(),
        Some(Err(_)) => ip.unwrap_or_default().to_owned(),
        None => "unknown".to_owned(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_refuse_nonsense() {
        assert_eq!(
            "5/15m".parse::<Rate>().unwrap(),
            Rate {
                limit: 5,
                period: Duration::from_secs(900)
            }
        );
        assert_eq!(
            " 30 / 1h ".parse::<Rate>().unwrap().period,
            Duration::from_secs(3600)
        );
        assert_eq!("OFF".parse::<Rate>().unwrap(), Rate::OFF);
        for bad in [
            "", "5", "5/", "/15m", "x/15m", "5/15", "5/15w", "0/1m", "5/0m", "-1/1m",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        assert_eq!(
            ip_subject(Some("2001:db8:1:2:aaaa::1")),
            ip_subject(Some("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            ip_subject(Some("2001:db8:1:2::1")),
            ip_subject(Some("2001:db8:1:3::1"))
        );
        assert_eq!(ip_subject(Some("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(ip_subject(Some("192.0.2.1")), "192.0.2.1");
        assert_eq!(ip_subject(None), "unknown");
    }

    #[test]
    fn gcra_burst_and_interval() {
        let rate: Rate = "5/15m".parse().unwrap();
        assert_eq!(rate.interval_ms(), 180_000);
        assert_eq!(rate.tolerance_ms(), 4 * 180_000);
    }
}
