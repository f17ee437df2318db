//! A bounded queue that one worker thread drains in batches.
//!
//! Producers never wake a worker that is awake: while records keep arriving, the worker takes
//! everything queued, handles it, and sleeps for a short linger before looking again, so a burst
//! of records costs one wake-up, not one per record (a futex wake and a context switch each,
//! most of what an audited request spent beyond deciding). Only after several empty lingers
//! does the worker park, and only then does the next producer unpark it.
//!
//! A full queue makes a producer wait, up to the time it was given, for the worker to make
//! room: a burst larger than the queue slows callers down instead of failing them, and a worker
//! that cannot keep up for that long is refused (the caller fails closed).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the worker sleeps between looks while it is busy or has just been.
pub(crate) const LINGER: Duration = Duration::from_micros(100);

/// Empty looks (one `LINGER` apart) before the worker parks until a producer unparks it.
const IDLE_LOOKS: u32 = 10;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Still full when the wait ran out.
    Full,
    /// The queue was closed; nothing will drain it.
    Closed,
}

struct State<T> {
    items: VecDeque<T>,
    /// The worker is parked: the next push must unpark it.
    parked: bool,
    closed: bool,
    /// Producers waiting for room.
    waiting: usize,
}

pub(crate) struct BatchQueue<T> {
    state: Mutex<State<T>>,
    room: Condvar,
    capacity: usize,
    worker: OnceLock<Thread>,
}

impl<T> std::fmt::Debug for BatchQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("BatchQueue")
            .field("queued", &state.items.len())
            .field("capacity", &self.capacity)
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

impl<T> BatchQueue<T> {
    /// A queue holding at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                parked: false,
                closed: false,
                waiting: 0,
            }),
            room: Condvar::new(),
            capacity: capacity.max(1),
            worker: OnceLock::new(),
        }
    }

    /// Names the thread that drains the queue (the one `next_batch` runs on).
    pub(crate) fn set_worker(&self, worker: Thread) {
        let _ = self.worker.set(worker);
        // A worker that parked before it was named would miss the pushes since: wake it.
        let mut state = self.lock();
        self.wake(&mut state);
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the queue half-changed (every change
        // is one VecDeque or flag operation), so the state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Unparks the worker if it is parked (and known; until it is, it stays marked parked and
    /// `set_worker` wakes it).
    fn wake(&self, state: &mut State<T>) {
        if state.parked
            && let Some(worker) = self.worker.get()
        {
            state.parked = false;
            worker.unpark();
        }
    }

    /// Queues `item`. While the queue is full it waits for room, up to `wait` (`None`: as long
    /// as it takes), then refuses with [`PushError::Full`].
    pub(crate) fn push(&self, item: T, wait: Option<Duration>) -> Result<(), PushError> {
        let deadline = wait.map(|w| Instant::now() + w);
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.items.len() < self.capacity {
                state.items.push_back(item);
                self.wake(&mut state);
                return Ok(());
            }
            // Full: make sure the worker is draining, then wait for it to make room.
            self.wake(&mut state);
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => r,
                    _ => return Err(PushError::Full),
                },
                None => Duration::from_secs(1),
            };
            state.waiting += 1;
            state = self
                .room
                .wait_timeout(state, remaining)
                .map_or_else(|p| p.into_inner().0, |(s, _)| s);
            state.waiting -= 1;
        }
    }

    /// The worker's next batch (at most `max` items, in order), lingering and then parking
    /// while the queue is empty; `None` once the queue is closed and empty.
    pub(crate) fn next_batch(&self, max: usize) -> Option<Vec<T>> {
        let mut empty_looks = 0;
        loop {
            let mut state = self.lock();
            if !state.items.is_empty() {
                let n = state.items.len().min(max.max(1));
                let batch: Vec<T> = state.items.drain(..n).collect();
                if state.waiting > 0 {
                    self.room.notify_all();
                }
                return Some(batch);
            }
            if state.closed {
                return None;
            }
            if empty_looks < IDLE_LOOKS {
                drop(state);
                empty_looks += 1;
                std::thread::sleep(LINGER);
                continue;
            }
            state.parked = true;
            drop(state);
            // A push between the unlock and here unparks first: park then returns at once.
            std::thread::park();
            empty_looks = 0;
        }
    }

    /// Refuses later pushes and wakes the worker, which drains what is queued and then stops.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.wake(&mut state);
        drop(state);
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

    use std::sync::Arc;

    use super::*;

    fn worker(queue: &Arc<BatchQueue<u32>>) -> std::thread::JoinHandle<Vec<Vec<u32>>> {
        let q = Arc::clone(queue);
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            tx.send(()).unwrap();
            let mut batches = Vec::new();
            while let Some(batch) = q.next_batch(64) {
                batches.push(batch);
            }
            batches
        });
        queue.set_worker(handle.thread().clone());
        rx.recv().unwrap();
        handle
    }

    #[test]
    fn every_item_arrives_once_in_order_in_batches_and_close_drains_first() {
        let queue = Arc::new(BatchQueue::new(1024));
        let handle = worker(&queue);
        for i in 0..5_000 {
            queue.push(i, None).unwrap();
            if i % 700 == 0 {
                // Let the worker go idle and park now and then: the next push must wake it.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        queue.close();
        assert_eq!(queue.push(1, None), Err(PushError::Closed));
        let batches = handle.join().unwrap();
        let all: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(all, (0..5_000).collect::<Vec<_>>());
        assert!(
            batches.len() < 5_000,
            "records arrive in batches, not one wake each"
        );
    }

    #[test]
    fn a_full_queue_waits_for_room_then_refuses_when_the_worker_never_drains() {
        // No worker: nothing drains, so the bounded wait runs out.
        let stuck: BatchQueue<u32> = BatchQueue::new(2);
        stuck.push(1, Some(Duration::ZERO)).unwrap();
        stuck.push(2, Some(Duration::ZERO)).unwrap();
        let started = Instant::now();
        assert_eq!(
            stuck.push(3, Some(Duration::from_millis(30))),
            Err(PushError::Full)
        );
        assert!(started.elapsed() >= Duration::from_millis(30));
        // With a worker, a burst far larger than the queue gets through by waiting.
        let queue = Arc::new(BatchQueue::new(4));
        let handle = worker(&queue);
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let q = Arc::clone(&queue);
                std::thread::spawn(move || {
                    for i in 0..1_000 {
                        q.push(p * 1_000 + i, Some(Duration::from_secs(10)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        queue.close();
        let mut all: Vec<u32> = handle.join().unwrap().into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..4_000).collect::<Vec<_>>());
    }
}
