//! Group commit: writes that arrive together are done by one writer in one
//! transaction, and each caller is answered only after the commit that
//! holds its write (or with that transaction's error).
//!
//! There is no writer thread. A caller queues its job; if no batch is being
//! written, it becomes the writer (the leader): it takes everything queued
//! (up to `max_batch`), runs it, hands out the answers and wakes the others.
//! Jobs queued meanwhile wait for the next batch, which one of their callers
//! leads. So a lone request runs at once, and under load each transaction
//! carries every request that arrived while the previous one ran.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::AccountsError;

type Answer<R> = Result<R, AccountsError>;

struct State<J, R> {
    queue: VecDeque<(u64, J)>,
    answers: HashMap<u64, Answer<R>>,
    next_ticket: u64,
    leading: bool,
}

/// A queue of jobs `J`, written in batches, each answered with `R`.
pub(crate) struct GroupCommit<J, R> {
    state: Mutex<State<J, R>>,
    answered: Condvar,
    max_batch: usize,
}

impl<J, R> GroupCommit<J, R> {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                answers: HashMap::new(),
                next_ticket: 0,
                leading: false,
            }),
            answered: Condvar::new(),
            max_batch: max_batch.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
        // The state is consistent whenever the lock is released, panic or not.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` and blocks until a batch holding it was written by
    /// `write`, which gets the batch in arrival order and must return one
    /// answer per job, in the same order. A panic in `write` answers each
    /// job of that batch with [`AccountsError::BackgroundTask`].
    pub(crate) fn submit(&self, job: J, write: impl Fn(Vec<J>) -> Vec<Answer<R>>) -> Answer<R> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push_back((ticket, job));
        loop {
            if let Some(answer) = state.answers.remove(&ticket) {
                return answer;
            }
            if state.leading {
                state = self.answered.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.leading = true;
            let take = state.queue.len().min(self.max_batch);
            let (tickets, jobs): (Vec<u64>, Vec<J>) = state.queue.drain(..take).unzip();
            drop(state);
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(jobs)));
            let answers = match written {
                Ok(answers) if answers.len() == tickets.len() => answers,
                Ok(_) => {
                    tracing::error!("group commit: a batch answered the wrong number of jobs");
                    tickets
                        .iter()
                        .map(|_| Err(AccountsError::BackgroundTask))
                        .collect()
                }
                Err(_) => {
                    tracing::error!("group commit: writing a batch panicked");
                    tickets
                        .iter()
                        .map(|_| Err(AccountsError::BackgroundTask))
                        .collect()
                }
            };
            state = self.lock();
            state.leading = false;
            state.answers.extend(tickets.into_iter().zip(answers));
            self.answered.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn every_job_is_answered_with_its_own_answer_once() {
        let group = Arc::new(GroupCommit::<usize, usize>::new(8));
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (group, batches) = (group.clone(), batches.clone());
                std::thread::spawn(move || {
                    group.submit(i, |jobs| {
                        assert!(!jobs.is_empty() && jobs.len() <= 8);
                        batches.fetch_add(1, Ordering::SeqCst);
                        jobs.into_iter().map(|j| Ok(j * 2)).collect()
                    })
                })
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            assert_eq!(thread.join().unwrap().unwrap(), i * 2);
        }
        assert!(batches.load(Ordering::SeqCst) <= 32);
    }

    #[test]
    fn a_panicking_batch_answers_its_jobs_with_an_error_and_the_next_batch_runs() {
        let group = GroupCommit::<u8, u8>::new(4);
        let answer = group.submit(1, |_| panic!("boom"));
        assert!(matches!(answer, Err(AccountsError::BackgroundTask)));
        assert_eq!(
            group
                .submit(2, |jobs| jobs.into_iter().map(Ok).collect())
                .unwrap(),
            2
        );
    }
}
