//! Group commit: writes that arrive together are done by one writer in one
//! transaction, and each caller is answered only after the commit that
//! holds its write (or with that transaction's error).
//!
//! A caller queues its job with a one-shot channel for the answer. If no
//! writer is running, the caller starts one ([`GroupCommit::enqueue`] says
//! so); the writer takes everything queued (up to `max_batch`), writes it,
//! sends each answer, and goes on while jobs are waiting, then stops. So a
//! lone request is written at once, and under load each transaction carries
//! every request that arrived while the previous one ran.
//!
//! Async callers wait on the channel without holding a thread: there is one
//! blocking thread per writer, not one per waiting request, and a finished
//! batch wakes exactly its own callers. (An earlier version parked every
//! caller on a blocking thread and woke them all after each batch: on two
//! cores, ≈ 25 context switches per refresh.)

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::error::AccountsError;

pub(crate) type Answer<R> = Result<R, AccountsError>;

struct State<J, R> {
    queue: VecDeque<(J, oneshot::Sender<Answer<R>>)>,
    writing: bool,
}

/// A queue of jobs `J`, written in batches, each answered with `R`.
pub(crate) struct GroupCommit<J, R> {
    state: Mutex<State<J, R>>,
    max_batch: usize,
}

/// Where a queued job's answer will arrive.
pub(crate) struct Queued<R> {
    pub(crate) answer: oneshot::Receiver<Answer<R>>,
    /// No writer was running: the caller must start one
    /// ([`GroupCommit::write_queued`]), or the job is never written.
    pub(crate) start_writer: bool,
}

/// The answer of a writer that stopped without sending one (it panicked
/// outside a batch, or its thread was lost).
pub(crate) fn lost<R>(_: oneshot::error::RecvError) -> Answer<R> {
    tracing::error!("group commit: a queued job was dropped unanswered");
    Err(AccountsError::BackgroundTask)
}

impl<J, R> GroupCommit<J, R> {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                writing: false,
            }),
            max_batch: max_batch.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
        // The state is consistent whenever the lock is released, panic or not.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`. When the answer says `start_writer`, this caller is
    /// now responsible for running [`write_queued`](Self::write_queued).
    pub(crate) fn enqueue(&self, job: J) -> Queued<R> {
        let (sender, answer) = oneshot::channel();
        let mut state = self.lock();
        state.queue.push_back((job, sender));
        let start_writer = !std::mem::replace(&mut state.writing, true);
        Queued {
            answer,
            start_writer,
        }
    }

    /// The writer: writes batches with `write`, which gets a batch in
    /// arrival order and must return one answer per job, in the same order,
    /// until the queue is empty. A panic in `write` answers each job of that
    /// batch with [`AccountsError::BackgroundTask`]; the next batch runs.
    pub(crate) fn write_queued(&self, write: impl Fn(Vec<J>) -> Vec<Answer<R>>) {
        loop {
            let (jobs, senders): (Vec<J>, Vec<oneshot::Sender<Answer<R>>>) = {
                let mut state = self.lock();
                if state.queue.is_empty() {
                    state.writing = false;
                    return;
                }
                let take = state.queue.len().min(self.max_batch);
                state.queue.drain(..take).unzip()
            };
            let count = senders.len();
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(jobs)));
            let answers = match written {
                Ok(answers) if answers.len() == count => answers,
                Ok(_) => {
                    tracing::error!("group commit: a batch answered the wrong number of jobs");
                    (0..count)
                        .map(|_| Err(AccountsError::BackgroundTask))
                        .collect()
                }
                Err(_) => {
                    tracing::error!("group commit: writing a batch panicked");
                    (0..count)
                        .map(|_| Err(AccountsError::BackgroundTask))
                        .collect()
                }
            };
            for (sender, answer) in senders.into_iter().zip(answers) {
                // A caller that stopped waiting (its request was cancelled)
                // still had its write committed; nobody is left to tell.
                let _ = sender.send(answer);
            }
        }
    }

    /// [`enqueue`](Self::enqueue) and wait on this thread, writing the
    /// queue here when no writer runs: for callers outside async code.
    pub(crate) fn submit_blocking(
        &self,
        job: J,
        write: impl Fn(Vec<J>) -> Vec<Answer<R>>,
    ) -> Answer<R> {
        let queued = self.enqueue(job);
        if queued.start_writer {
            self.write_queued(write);
        }
        queued.answer.blocking_recv().unwrap_or_else(lost)
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
                    group.submit_blocking(i, |jobs| {
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
    fn jobs_queued_while_a_batch_is_written_go_into_one_later_batch() {
        let group = GroupCommit::<usize, usize>::new(256);
        let first = group.enqueue(0);
        assert!(first.start_writer);
        let waiting: Vec<_> = (1..=5).map(|i| group.enqueue(i)).collect();
        assert!(waiting.iter().all(|q| !q.start_writer));
        let sizes = Mutex::new(Vec::new());
        group.write_queued(|jobs| {
            sizes.lock().unwrap().push(jobs.len());
            jobs.into_iter().map(|j| Ok(j + 100)).collect()
        });
        assert_eq!(*sizes.lock().unwrap(), vec![6]);
        for (i, mut queued) in std::iter::once(first).chain(waiting).enumerate() {
            assert_eq!(queued.answer.try_recv().unwrap().unwrap(), i + 100);
        }
        // The writer stopped with the queue: the next job starts a new one.
        assert!(group.enqueue(7).start_writer);
    }

    #[test]
    fn a_panicking_batch_answers_its_jobs_with_an_error_and_the_next_batch_runs() {
        let group = GroupCommit::<u8, u8>::new(4);
        let answer = group.submit_blocking(1, |_| panic!("boom"));
        assert!(matches!(answer, Err(AccountsError::BackgroundTask)));
        assert_eq!(
            group
                .submit_blocking(2, |jobs| jobs.into_iter().map(Ok).collect())
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn async_callers_wait_without_a_thread_each() {
        let group = Arc::new(GroupCommit::<usize, usize>::new(4));
        let queued: Vec<_> = (0..10).map(|i| group.enqueue(i)).collect();
        assert_eq!(queued.iter().filter(|q| q.start_writer).count(), 1);
        let writer = group.clone();
        std::thread::spawn(move || {
            writer.write_queued(|jobs| jobs.into_iter().map(|j| Ok(j * 3)).collect())
        });
        for (i, queued) in queued.into_iter().enumerate() {
            assert_eq!(queued.answer.await.unwrap().unwrap(), i * 3);
        }
    }
}
