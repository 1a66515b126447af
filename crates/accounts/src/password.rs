//! Argon2id password hashing on a small dedicated pool of threads, with a
//! bounded queue in front of it.
//!
//! Each hash needs 19 MiB and ≈ 25–45 ms of one core. Allocating that per call
//! makes glibc keep the memory and lets a burst of logins take gigabytes, and
//! running hashes on the shared blocking pool lets a login flood take every
//! core from the request workers. So:
//! - `max_concurrent` threads (default: the core count) do all the hashing,
//!   each reusing one buffer it allocates on first use: memory is flat at
//!   19 MiB per thread;
//! - at most `queue_limit` hashes wait for a thread. When that many already
//!   wait, [`HashError::Busy`] comes back at once (the server answers 503 with
//!   `Retry-After`) instead of queueing without bound;
//! - callers block until their hash is done (they run on a blocking pool).
//!
//! Admission is counted, not left to the channel: a hash gives its place
//! back before its caller is answered, so a login that follows an answered
//! one never finds the place still taken (with a rendezvous channel the
//! thread would still be on its way back to `recv`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

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
    /// Every hashing thread is busy and the queue is full: try again later.
    #[error("password hashing is at capacity; retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u32 },
}

/// One hash to compute on a pool thread, with that thread's buffer.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct PasswordHasher {
    params: Params,
    jobs: SyncSender<Job>,
    threads: usize,
    queue_limit: usize,
    /// Hashes running or waiting; at most `threads + queue_limit`.
    admitted: Arc<AtomicUsize>,
    /// Unix second of the last "at capacity" warning.
    last_busy_warning: AtomicU64,
    /// A real hash of a random password, verified against when the user does
    /// not exist so that both paths cost one Argon2 run.
    dummy_hash: OnceLock<String>,
}

const OUTPUT_LEN: usize = 32;

impl PasswordHasher {
    /// `max_concurrent` hashing threads (at least 1) and room for
    /// `queue_limit` waiting hashes. The threads end when the hasher is dropped.
    pub fn new(
        cost: HashCost,
        max_concurrent: usize,
        queue_limit: usize,
    ) -> Result<Self, HashError> {
        let params = Params::new(
            cost.memory_kib,
            cost.iterations,
            cost.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|_| HashError::Params)?;
        let threads = max_concurrent.max(1);
        // Room for everything admitted, so sending never blocks.
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads + queue_limit);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&queue))
                .map_err(|_| HashError::Hash)?;
        }
        Ok(Self {
            params,
            jobs,
            threads,
            queue_limit,
            admitted: Arc::new(AtomicUsize::new(0)),
            last_busy_warning: AtomicU64::new(0),
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
        let out = self.compute(
            self.params.clone(),
            Algorithm::Argon2id,
            Version::V0x13,
            password,
            salt.as_str(),
            OUTPUT_LEN,
        )??;
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
    /// final comparison is constant-time (`Output`'s equality). `Err` only
    /// when no hashing thread could take the work ([`HashError::Busy`]).
    pub fn verify(&self, candidate: &str, phc: &str) -> Result<bool, HashError> {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Ok(false);
        };
        let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(&parsed),
            parsed.salt,
            parsed.hash,
        ) else {
            return Ok(false);
        };
        let version = parsed
            .version
            .and_then(|v| Version::try_from(v).ok())
            .unwrap_or_default();
        let computed = self.compute(
            params,
            algorithm,
            version,
            candidate,
            salt.as_str(),
            expected.len(),
        )?;
        Ok(computed.is_ok_and(|out| Output::new(&out).is_ok_and(|o| o == expected)))
    }

    /// Spends the same work as [`verify`](Self::verify) against a real hash,
    /// and always fails. Used when the login names no known user.
    pub fn verify_dummy(&self, candidate: &str) -> Result<bool, HashError> {
        let dummy = match self.dummy_hash.get() {
            Some(dummy) => dummy,
            None => {
                let mut random = [0u8; 24];
                SystemRandom::new()
                    .fill(&mut random)
                    .map_err(|_| HashError::Random)?;
                let secret: String = crate::secrets::hex(&random);
                // Kept only once made: a busy pool must not leave an empty
                // dummy behind, which would make unknown users cost nothing.
                let made = self.hash(&secret)?;
                self.dummy_hash.get_or_init(|| made)
            }
        };
        self.verify(candidate, dummy)?;
        Ok(false)
    }

    /// Runs one Argon2 computation on a pool thread and waits for it. The
    /// outer `Err` is "busy"; the inner one is Argon2's own failure.
    fn compute(
        &self,
        params: Params,
        algorithm: Algorithm,
        version: Version,
        password: &str,
        salt: &str,
        output_len: usize,
    ) -> Result<Result<Vec<u8>, HashError>, HashError> {
        let password = SecretString::from(password.to_owned());
        let salt = salt.to_owned();
        let same_size = params.block_count() == self.params.block_count();
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= self.threads + self.queue_limit {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            self.warn_busy();
            return Err(HashError::Busy {
                retry_after_secs: self.retry_after_secs(),
            });
        }
        let admitted = Arc::clone(&self.admitted);
        let (done, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |buffer: &mut Vec<Block>| {
            let argon2 = Argon2::new(algorithm, version, params.clone());
            let (pwd, salt) = (password.expose_secret().as_bytes(), salt.as_bytes());
            let mut out = vec![0u8; output_len];
            let computed = if same_size {
                if buffer.len() != params.block_count() {
                    *buffer = vec![Block::new(); params.block_count()];
                }
                argon2.hash_password_into_with_memory(pwd, salt, &mut out, &mut buffer[..])
            } else {
                // A hash made under another cost setting (rare: until the
                // user's next password change); the kept buffer has the wrong size.
                argon2.hash_password_into(pwd, salt, &mut out)
            };
            // The place is free before the caller hears back.
            admitted.fetch_sub(1, Ordering::SeqCst);
            let _ = done.send(computed.map(|()| out).map_err(|_| HashError::Hash));
        });
        if let Err(e) = self.jobs.try_send(job) {
            // Not run, so not given back by the job. Full can't happen (the
            // channel holds everything admitted); Disconnected: threads gone.
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                TrySendError::Full(_) => HashError::Busy {
                    retry_after_secs: self.retry_after_secs(),
                },
                TrySendError::Disconnected(_) => HashError::Hash,
            });
        }
        Ok(result.recv().unwrap_or(Err(HashError::Hash)))
    }

    /// Logs the overload at most every 10 s (refusals can come by the thousand).
    fn warn_busy(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_busy_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_busy_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                threads = self.threads,
                queue = self.queue_limit,
                "password hashing at capacity: refusing logins with 503 + Retry-After"
            );
        }
    }

    /// A full queue drains in about `queue / threads` hash times (tens of
    /// milliseconds each): one second is ample, and the smallest value
    /// `Retry-After` can say.
    fn retry_after_secs(&self) -> u32 {
        let rounds = self.queue_limit.div_ceil(self.threads) as u32 + 1;
        // ≈ 50 ms per hash at most on slow cores; at least 1 s.
        (rounds / 20).max(1)
    }
}

/// A hashing thread: takes jobs until the hasher is dropped, reusing one buffer.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut buffer: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next job.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(&mut buffer),
            Err(_) => return, // the hasher was dropped
        }
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
            16,
        )
        .unwrap()
    }

    #[test]
    fn hash_then_verify() {
        let h = cheap();
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", &phc).unwrap());
        assert!(!h.verify("correct horse batterY", &phc).unwrap());
        assert!(
            !h.verify("correct horse battery", "not a phc string")
                .unwrap()
        );
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
            4,
        )
        .unwrap();
        assert!(h.verify("pw-under-old-cost", &old).unwrap());
        assert!(!h.verify("wrong", &old).unwrap());
    }

    #[test]
    fn default_cost_is_the_owasp_one() {
        let h = PasswordHasher::new(HashCost::default(), 1, 4).unwrap();
        let phc = h.hash("x").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[test]
    fn dummy_never_matches() {
        assert!(!cheap().verify_dummy("").unwrap());
    }

    #[test]
    fn concurrent_hashes_all_succeed() {
        let h = std::sync::Arc::new(cheap());
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || {
                    h.verify(&i.to_string(), &h.hash(&i.to_string()).unwrap())
                        .unwrap()
                })
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
    }

    #[test]
    fn a_full_queue_answers_busy_at_once() {
        // One thread, room for one waiting hash.
        let h = PasswordHasher::new(
            HashCost {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
            1,
        )
        .unwrap();
        let phc = h.hash("pw").unwrap();
        // Occupy the thread until released, then fill the one queue place:
        // two jobs holding both places, as admitted hashes would.
        h.admitted.fetch_add(2, Ordering::SeqCst);
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let admitted = Arc::clone(&h.admitted);
        h.jobs
            .try_send(Box::new(move |_| {
                started_tx.send(()).unwrap();
                let _ = released.recv();
                admitted.fetch_sub(1, Ordering::SeqCst);
            }))
            .unwrap();
        started.recv().unwrap();
        let admitted = Arc::clone(&h.admitted);
        h.jobs
            .try_send(Box::new(move |_| {
                admitted.fetch_sub(1, Ordering::SeqCst);
            }))
            .unwrap();
        match h.verify("pw", &phc) {
            Err(HashError::Busy { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected Busy, got {other:?}"),
        }
        assert!(matches!(h.verify_dummy("x"), Err(HashError::Busy { .. })));
        release.send(()).unwrap();
        // Wait (blocking send) until the queue has drained through a marker job.
        let (drained_tx, drained) = mpsc::channel();
        h.jobs
            .send(Box::new(move |_| drained_tx.send(()).unwrap()))
            .unwrap();
        drained.recv().unwrap();
        // Drained: works again, and the dummy hash was not poisoned by the refusal.
        assert!(h.verify("pw", &phc).unwrap());
        assert!(!h.verify_dummy("x").unwrap());
        assert!(!h.dummy_hash.get().unwrap().is_empty());
    }

    #[test]
    fn a_hash_after_an_answered_one_is_never_refused() {
        // One thread and no queue: the tightest setting. Each hash is asked
        // for only after the previous one was answered, so none may be
        // refused; with the place given back after answering, the thread
        // was often still on its way back and the next one got Busy.
        let h = PasswordHasher::new(
            HashCost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            1,
            0,
        )
        .unwrap();
        let phc = h.hash("pw").unwrap();
        for i in 0..300 {
            assert!(h.verify("pw", &phc).unwrap(), "hash {i} refused or wrong");
        }
    }
}
