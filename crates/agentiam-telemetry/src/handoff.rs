//! The bounded queue between the callers of [`crate::AuditLog`] and its writer thread.
//!
//! A channel wakes its receiver on every send that finds it asleep, and once the writer is
//! faster than its callers that is every send: a futex system call on the caller's thread per
//! record. Here the writer is woken only by the first item into an empty queue, then lingers
//! (a timed wait that callers do not interrupt) while more arrive, and drains them as one
//! batch. Callers wake it early only for an urgent item (someone is waiting for the writer)
//! or a queue half full. A full queue makes callers wait (backpressure, never loss).
//!
//! Each item carries a payload (an event's serialized bytes), copied into one buffer that the
//! writer takes whole with the batch and gives back empty: no allocation per item on either
//! side. Per-item `String`s allocated by callers and freed by the writer made the allocator
//! coalesce and consolidate its free lists on every batch, and the callers waited on its lock.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the writer is doing, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Working on a batch, or about to look at the queue: nobody needs to wake it.
    Busy,
    /// Asleep on an empty queue: the next item wakes it.
    Idle,
    /// Waiting for more items after the first: only urgency or a half-full queue wakes it.
    Lingering,
}

#[derive(Debug)]
struct State<T> {
    /// Items with the range of their payload in `bytes`.
    items: VecDeque<(T, Range<usize>)>,
    bytes: Vec<u8>,
    /// Leading bytes of `bytes` whose items the writer has taken (after a partial take).
    consumed: usize,
    writer: Writer,
    /// An item in the queue has someone waiting for it (no lingering).
    urgent: bool,
    /// The writer has stopped: sends fail.
    closed: bool,
}

/// The queue (shared by the log handle and the writer thread through an `Arc`).
#[derive(Debug)]
pub(crate) struct HandOff<T> {
    state: Mutex<State<T>>,
    to_writer: Condvar,
    to_senders: Condvar,
    capacity: usize,
    linger: Duration,
}

/// What [`HandOff::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Items were moved into the batch, in the order they were sent.
    Batch,
    /// Nothing arrived within the writer's tick.
    Timeout,
}

/// The writer has stopped.
#[derive(Debug)]
pub(crate) struct Closed;

impl<T> HandOff<T> {
    pub(crate) fn new(capacity: usize, linger: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: Vec::new(),
                consumed: 0,
                writer: Writer::Busy,
                urgent: false,
                closed: false,
            }),
            to_writer: Condvar::new(),
            to_senders: Condvar::new(),
            capacity: capacity.max(1),
            linger,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the queue consistent (every update is a single
        // push, drain or flag), so a poisoned lock is taken over rather than propagated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an item with its payload, waiting while the queue is full. `urgent`: the caller
    /// will wait for the writer's answer, so the writer is woken now instead of lingering.
    pub(crate) fn send(&self, item: T, payload: &[u8], urgent: bool) -> Result<(), Closed> {
        self.send_all(std::iter::once((item, payload)), urgent)
    }

    /// Queues items in order, together (no other caller's item comes between them), waiting
    /// while the queue is full; the queue may then exceed its capacity by these items.
    pub(crate) fn send_all<'p>(
        &self,
        items: impl IntoIterator<Item = (T, &'p [u8])>,
        urgent: bool,
    ) -> Result<(), Closed> {
        let mut st = self.lock();
        while !st.closed && st.items.len() >= self.capacity {
            st = self.to_senders.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.closed {
            return Err(Closed);
        }
        for (item, payload) in items {
            let start = st.bytes.len();
            st.bytes.extend_from_slice(payload);
            let end = st.bytes.len();
            st.items.push_back((item, start..end));
        }
        st.urgent |= urgent;
        let wake = match st.writer {
            Writer::Busy => false,
            Writer::Idle => !st.items.is_empty(),
            Writer::Lingering => st.urgent || st.items.len() >= self.capacity.div_ceil(2),
        };
        if wake {
            st.writer = Writer::Busy;
            drop(st);
            self.to_writer.notify_one();
        }
        Ok(())
    }

    /// The writer's side: moves up to `max` items into `batch` and their payloads into
    /// `bytes` (both emptied first; the writer keeps them, so a batch allocates nothing), after
    /// lingering for more once the first arrives; [`Taken::Timeout`] when the queue stayed
    /// empty for `tick`. Each item's range is into `bytes`.
    pub(crate) fn take(
        &self,
        tick: Duration,
        max: usize,
        batch: &mut Vec<(T, Range<usize>)>,
        bytes: &mut Vec<u8>,
    ) -> Taken {
        batch.clear();
        bytes.clear();
        let mut st = self.lock();
        let mut linger_until: Option<Instant> = None;
        loop {
            if st.items.is_empty() {
                if linger_until.is_some() {
                    // Only a drain empties the queue, and only this thread drains.
                    linger_until = None;
                    continue;
                }
                st.writer = Writer::Idle;
                let (next, timeout) = self
                    .to_writer
                    .wait_timeout(st, tick)
                    .unwrap_or_else(|p| p.into_inner());
                st = next;
                if timeout.timed_out() && st.items.is_empty() {
                    st.writer = Writer::Busy;
                    return Taken::Timeout;
                }
                continue;
            }
            let half_full = st.items.len() >= self.capacity.div_ceil(2);
            if !st.urgent && !half_full && !self.linger.is_zero() {
                let now = Instant::now();
                let until = *linger_until.get_or_insert(now + self.linger);
                if now < until {
                    st.writer = Writer::Lingering;
                    let (next, _) = self
                        .to_writer
                        .wait_timeout(st, until - now)
                        .unwrap_or_else(|p| p.into_inner());
                    st = next;
                    continue;
                }
            }
            st.writer = Writer::Busy;
            let n = st.items.len().min(max.max(1));
            batch.extend(st.items.drain(..n));
            if st.items.is_empty() {
                st.urgent = false;
                // The whole buffer goes to the writer (the ranges hold: a consumed prefix
                // is just skipped); its emptied one comes back.
                std::mem::swap(&mut st.bytes, bytes);
                st.consumed = 0;
            } else {
                // More than a batch is queued: copy out only the batch's payloads, and move
                // the rest down once the dead prefix is half the buffer (amortized: each
                // byte moves at most once per halving).
                let (from, to) = (st.consumed, batch.last().map_or(0, |(_, r)| r.end));
                bytes.extend_from_slice(st.bytes.get(from..to).unwrap_or_default());
                for (_, r) in batch.iter_mut() {
                    *r = r.start.saturating_sub(from)..r.end.saturating_sub(from);
                }
                st.consumed = to;
                if st.consumed > st.bytes.len() / 2 {
                    let cut = st.consumed.min(st.bytes.len());
                    st.bytes.drain(..cut);
                    for (_, r) in &mut st.items {
                        *r = r.start.saturating_sub(cut)..r.end.saturating_sub(cut);
                    }
                    st.consumed = 0;
                }
            }
            drop(st);
            self.to_senders.notify_all();
            return Taken::Batch;
        }
    }

    /// Marks the writer stopped: waiting and later senders get [`Closed`]. Items still queued
    /// are dropped (their reply channels close, so their callers see the log closed).
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.items.clear();
        st.bytes = Vec::new();
        st.consumed = 0;
        drop(st);
        self.to_senders.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;
    use std::sync::Arc;

    type Batch = Vec<(u32, Range<usize>)>;

    fn payloads(batch: &Batch, bytes: &[u8]) -> Vec<(u32, String)> {
        batch
            .iter()
            .map(|(i, r)| (*i, String::from_utf8(bytes[r.clone()].to_vec()).unwrap()))
            .collect()
    }

    fn numbered(range: Range<u32>) -> Vec<(u32, String)> {
        range.map(|i| (i, format!("payload {i}"))).collect()
    }

    #[test]
    fn items_come_out_in_order_with_their_payloads_in_batches() {
        let q = HandOff::new(1024, Duration::from_millis(5));
        for (i, p) in numbered(0..100) {
            q.send(i, p.as_bytes(), false).unwrap();
        }
        let (mut b, mut bytes) = (Vec::new(), Vec::new());
        // Partial takes copy the batch's payloads out: the first leaves a dead prefix, the
        // second moves the rest down, and a whole take after a partial one skips the prefix.
        for (max, expected) in [(30, 0..30), (30, 30..60), (20, 60..80)] {
            assert_eq!(
                q.take(Duration::from_secs(1), max, &mut b, &mut bytes),
                Taken::Batch
            );
            assert_eq!(payloads(&b, &bytes), numbered(expected));
        }
        q.send(100, b"payload 100", false).unwrap();
        assert_eq!(
            q.take(Duration::from_secs(1), 60, &mut b, &mut bytes),
            Taken::Batch
        );
        assert_eq!(payloads(&b, &bytes), numbered(80..101));
        let items: Vec<(u32, String)> = numbered(101..104);
        q.send_all(items.iter().map(|(i, p)| (*i, p.as_bytes())), false)
            .unwrap();
        assert_eq!(
            q.take(Duration::from_secs(1), 60, &mut b, &mut bytes),
            Taken::Batch
        );
        assert_eq!(payloads(&b, &bytes), items);
        assert_eq!(
            q.take(Duration::from_millis(2), 60, &mut b, &mut bytes),
            Taken::Timeout
        );
        assert!(b.is_empty() && bytes.is_empty());
    }

    #[test]
    fn the_writer_lingers_for_ordinary_items_but_not_for_urgent_ones() {
        let linger = Duration::from_millis(300);
        let q = Arc::new(HandOff::new(1024, linger));
        let writer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut waits = Vec::new();
                for _ in 0..2 {
                    let start = Instant::now();
                    let (mut b, mut bytes) = (Vec::new(), Vec::new());
                    assert_eq!(
                        q.take(Duration::from_secs(10), 1024, &mut b, &mut bytes),
                        Taken::Batch
                    );
                    let ids: Vec<u32> = b.iter().map(|(i, _)| *i).collect();
                    waits.push((ids, start.elapsed()));
                }
                waits
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let sent = Instant::now();
        q.send(1, b"a", false).unwrap();
        q.send(2, b"b", false).unwrap();
        // Send the urgent item only once the first batch is surely taken: sent while the
        // writer lingers, it would (rightly) end the linger early.
        while sent.elapsed() < linger + Duration::from_millis(50) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let urgent_sent = Instant::now();
        q.send(3, b"c", true).unwrap();
        let waits = writer.join().unwrap();
        assert_eq!(waits[0].0, vec![1, 2], "both ordinary items in one batch");
        assert!(
            waits[0].1 >= linger,
            "the writer took ordinary items before lingering: {:?}",
            waits[0].1
        );
        assert_eq!(waits[1].0, vec![3]);
        assert!(
            urgent_sent.elapsed() < linger,
            "an urgent item waited out the linger"
        );
    }

    #[test]
    fn a_half_full_queue_ends_the_linger() {
        let linger = Duration::from_secs(30);
        let q = Arc::new(HandOff::new(8, linger));
        let writer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let (mut b, mut bytes) = (Vec::new(), Vec::new());
                let start = Instant::now();
                q.take(Duration::from_secs(60), 1024, &mut b, &mut bytes);
                (b.len(), start.elapsed())
            })
        };
        for i in 0..4 {
            q.send(i, b"x", false).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        let (taken, waited) = writer.join().unwrap();
        assert!(taken >= 4, "took {taken} of 4");
        assert!(
            waited < linger,
            "the writer lingered with half the queue full"
        );
    }

    #[test]
    fn a_full_queue_makes_senders_wait_and_close_releases_them() {
        let q = Arc::new(HandOff::new(2, Duration::ZERO));
        q.send(1, b"", false).unwrap();
        q.send(2, b"", false).unwrap();
        let blocked = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.send(3, b"", false))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!blocked.is_finished(), "a send into a full queue returned");
        q.close();
        assert!(blocked.join().unwrap().is_err());
        assert!(q.send(4, b"", false).is_err());
    }
}
