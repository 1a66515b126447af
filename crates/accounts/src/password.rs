//! Argon2id password hashing with bounded concurrency and reused memory.
//!
//! Each hash needs 19 MiB. Allocating that per call makes glibc keep the
//! memory forever and lets a burst of logins take gigabytes; instead a fixed
//! number of buffers is kept and callers wait for one. The number of buffers
//! is also the number of hashes that run at once (default: the core count),
//! which is the most the CPU can do anyway.

use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};

/// Argon2id cost parameters (OWASP's m=19 MiB, t=2, p=1 by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters")]
    Params,
    #[error("argon2 failed")]
    Hash,
    #[error("the system random source failed")]
    Random,
}

pub struct PasswordHasher {
    params: Params,
    buffers: Mutex<BufferPool>,
    returned: Condvar,
    /// A real hash of a random password, verified against when the user does
    /// not exist so that both paths cost one Argon2 run.
    dummy_hash: OnceLock<String>,
}

struct BufferPool {
    free: Vec<Vec<Block>>,
    /// Buffers that may still be created before callers have to wait.
    unborn: usize,
}

const OUTPUT_LEN: usize = 32;

impl PasswordHasher {
    pub fn new(cost: HashCost, max_concurrent: usize) -> Result<Self, HashError> {
        let params = Params::new(
            cost.memory_kib,
            cost.iterations,
            cost.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|_| HashError::Params)?;
        Ok(Self {
            params,
            buffers: Mutex::new(BufferPool {
                free: Vec::new(),
                unborn: max_concurrent.max(1),
            }),
            returned: Condvar::new(),
            dummy_hash: OnceLock::new(),
        })
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=…`).
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| HashError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| HashError::Hash)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        let mut out = [0u8; OUTPUT_LEN];
        self.with_buffer(|blocks| {
            argon2.hash_password_into_with_memory(
                password.as_bytes(),
                salt.as_str().as_bytes(),
                &mut out,
                blocks,
            )
        })
        .map_err(|_| HashError::Hash)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: (&self.params).try_into().map_err(|_| HashError::Hash)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|_| HashError::Hash)?),
        };
        Ok(phc.to_string())
    }

    /// Checks a candidate against a stored PHC string, using the parameters
    /// recorded in it (so hashes made under older costs keep working). The
    /// final comparison is constant-time (`Output`'s equality).
    pub fn verify(&self, candidate: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(&parsed),
            parsed.salt,
            parsed.hash,
        ) else {
            return false;
        };
        let version = parsed
            .version
            .and_then(|v| Version::try_from(v).ok())
            .unwrap_or_default();
        let same_size = params.block_count() == self.params.block_count();
        let argon2 = Argon2::new(algorithm, version, params);
        let (pwd, salt) = (candidate.as_bytes(), salt.as_str().as_bytes());
        let mut out = vec![0u8; expected.len()];
        let computed = if same_size {
            self.with_buffer(|blocks| {
                argon2.hash_password_into_with_memory(pwd, salt, &mut out, blocks)
            })
        } else {
            // A hash made under another cost setting (rare: until the user's
            // next password change). Our buffers have the wrong size for it.
            argon2.hash_password_into(pwd, salt, &mut out)
        };
        computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
    }

    /// Spends the same work as [`verify`](Self::verify) against a real hash,
    /// and always fails. Used when the login names no known user.
    pub fn verify_dummy(&self, candidate: &str) -> bool {
        let dummy = self.dummy_hash.get_or_init(|| {
            let mut random = [0u8; 24];
            let _ = SystemRandom::new().fill(&mut random);
            let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
            self.hash(&secret).unwrap_or_default()
        });
        let _ = self.verify(candidate, dummy);
        false
    }

    fn with_buffer<R>(&self, work: impl FnOnce(&mut [Block]) -> R) -> R {
        let mut blocks = {
            let mut pool = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(buffer) = pool.free.pop() {
                    break buffer;
                }
                if pool.unborn > 0 {
                    pool.unborn -= 1;
                    break vec![Block::new(); self.params.block_count()];
                }
                pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = work(&mut blocks);
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(blocks);
        self.returned.notify_one();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        // Small cost so unit tests stay fast; the default cost is covered by
        // the integration tests.
        PasswordHasher::new(
            HashCost {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[test]
    fn hash_then_verify() {
        let h = cheap();
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", &phc));
        assert!(!h.verify("correct horse batterY", &phc));
        assert!(!h.verify("correct horse battery", "not a phc string"));
    }

    #[test]
    fn salts_differ() {
        let h = cheap();
        assert_ne!(h.hash("same").unwrap(), h.hash("same").unwrap());
    }

    #[test]
    fn verifies_hashes_made_under_another_cost() {
        let old = cheap().hash("pw-under-old-cost").unwrap();
        let h = PasswordHasher::new(
            HashCost {
                memory_kib: 2048,
                iterations: 1,
                parallelism: 1,
            },
            1,
        )
        .unwrap();
        assert!(h.verify("pw-under-old-cost", &old));
        assert!(!h.verify("wrong", &old));
    }

    #[test]
    fn default_cost_is_the_owasp_one() {
        let h = PasswordHasher::new(HashCost::default(), 1).unwrap();
        let phc = h.hash("x").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[test]
    fn dummy_never_matches() {
        assert!(!cheap().verify_dummy(""));
    }

    #[test]
    fn concurrent_hashes_share_few_buffers() {
        let h = std::sync::Arc::new(cheap());
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    h.verify(&i.to_string(), &h.hash(&i.to_string()).unwrap())
                })
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
        let pool = h.buffers.lock().unwrap();
        assert!(pool.free.len() <= 2 && pool.unborn + pool.free.len() == 2);
    }
}
