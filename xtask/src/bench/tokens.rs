//! Access tokens for the cold `/me` run: real server tokens (the bench
//! server's own signing key from its throw-away key folder, its issuer and
//! audience, the bench user's real session), each with a fresh `jti` and so
//! a different string the server has never verified. Minting them through
//! the API would take a refresh per token.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use auth_core::{ACCESS_TOKEN_TYP, AccessClaims, KeyDocument, KeySet, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `count` copies of `template` (an access token the server issued), each
/// with a new `jti`, signed with the newest unretired key in `keys_dir`.
pub fn mint(keys_dir: &Path, template: &str, count: usize) -> Result<Vec<String>> {
    let keys = load_keys(keys_dir)?;
    let payload = template
        .split('.')
        .nth(1)
        .context("the template is not a JWT")?;
    let claims: AccessClaims = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload)
            .context("template payload is not base64url")?,
    )
    .context("template payload is not access-token claims")?;
    // Two threads: signing is the slow part (Ed25519 ≈ 20 µs per token).
    let halves = [count / 2, count - count / 2];
    std::thread::scope(|scope| {
        let workers: Vec<_> = halves
            .iter()
            .map(|&n| {
                let (keys, claims) = (&keys, &claims);
                scope.spawn(move || -> Result<Vec<String>> {
                    (0..n)
                        .map(|_| {
                            let mut claims = claims.clone();
                            claims.jti = uuid::Uuid::new_v4().to_string();
                            keys.sign(ACCESS_TOKEN_TYP, &claims)
                                .map_err(|e| anyhow!("signing: {e}"))
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .map_err(|_| anyhow!("minting thread panicked"))??,
            );
        }
        Ok(all)
    })
}

fn load_keys(dir: &Path) -> Result<KeySet> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let doc: KeyDocument = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("{} is not a key document", path.display()))?;
            keys.push(SigningKey::from_document(&doc).map_err(|e| anyhow!("key: {e}"))?);
        }
    }
    keys.retain(|k| k.retired_at().is_none());
    keys.sort_by_key(|k| k.created_at());
    let active = keys
        .pop()
        .context("no signing key in the bench key folder")?;
    KeySet::new(active, Vec::new()).map_err(|e| anyhow!("key set: {e}"))
}
