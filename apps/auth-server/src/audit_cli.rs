//! `auth-server audit …`: operator checks on the audit log.

use anyhow::{Context, Result, bail};
use storage::audit::{self, ChainCheck};

/// `auth-server audit verify`: prints "audit log intact: N rows" and returns
/// Ok, or returns an error naming the first bad row ("audit log broken at row
/// ID: REASON") so the exit status tells scripts and monitoring.
pub fn verify(pool: &storage::DbPool) -> Result<()> {
    let mut conn = pool.get().context("connecting to the database")?;
    match audit::verify_chain(&mut conn).context("reading the audit log")? {
        ChainCheck::Intact { rows } => {
            println!("audit log intact: {rows} rows");
            Ok(())
        }
        ChainCheck::Broken { row_id, reason } => {
            bail!("audit log broken at row {row_id}: {reason}")
        }
    }
}
