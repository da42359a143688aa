//! The process-wide budget for bytes held on clients' behalf.
//!
//! Every WebSocket session keeps an [`Account`] of what it holds for its peer: decoded
//! messages waiting for the app, the message being received (decompressed so far) and input
//! read but not decoded yet. The accounts add up to [`BufferBudget::used`]. A session asks its
//! account for [`Account::room`] before it decodes more:
//!
//! - up to three quarters of the limit (the *soft* mark) anyone may grow;
//! - past it only connections holding less than [`SMALL_SHARE`] may grow, up to it: the
//!   connections holding the most stop reading first, and the band between the soft mark and
//!   the limit stays for clients with little in flight, which keep being served;
//! - at the limit nobody grows until apps drain their queues.
//!
//! A session that got no room stops reading its socket (TCP then pushes back on the client)
//! and registers with [`Account::wait`]; it is woken when the total falls below the soft mark.
//! Each account has one registration slot (replaced on every wait, removed when the account is
//! dropped), so closed connections leave no wakers behind.
//! Grants are checked, not reserved, so two threads may each take the same room at once: the
//! total can pass the limit by at most one decoding step per worker thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

/// The most a connection may hold and still grow once the total is past the
/// soft mark: enough for ordinary messages in flight.
pub(crate) const SMALL_SHARE: usize = 64 * 1024;

/// The shared budget (one per server).
#[derive(Debug)]
pub(crate) struct BufferBudget {
    limit: usize,
    /// Three quarters of `limit`.
    soft: usize,
    used: AtomicUsize,
    /// Sessions that found no room, by account, to wake when the total falls below the soft
    /// mark. (`used` and `waiting` are accessed `SeqCst`: a release that reads `waiting` as
    /// false must be ordered before the waiter's own check of `used`, or both miss the wake.)
    waiters: Mutex<HashMap<u64, Waker>>,
    /// Whether `waiters` is non-empty (checked without the lock on every release).
    waiting: AtomicBool,
    /// The next account's id (its key in `waiters`).
    next_id: AtomicU64,
}

impl BufferBudget {
    /// A budget of `limit` bytes; zero means unlimited.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        Arc::new(BufferBudget {
            limit,
            soft: limit / 4 * 3,
            used: AtomicUsize::new(0),
            waiters: Mutex::new(HashMap::new()),
            waiting: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        })
    }

    /// Bytes held on clients' behalf right now, over all connections.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// How many more bytes a connection that holds `held` may take now: up
    /// to the soft mark for anyone, and up to [`SMALL_SHARE`] for a
    /// connection holding less, but never past the limit.
    #[inline]
    fn room(&self, held: usize) -> usize {
        let used = self.used();
        if used >= self.limit {
            return 0;
        }
        let below_soft = self.soft.saturating_sub(used);
        below_soft
            .max(SMALL_SHARE.saturating_sub(held))
            .min(self.limit - used)
    }

    fn wake_waiters(&self) {
        let waiters = {
            let mut w = self.lock_waiters();
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut *w)
        };
        waiters.into_values().for_each(Waker::wake);
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        // Nothing panics under this lock; recover rather than propagate.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Changes smaller than this are not published to the shared total (except
/// a release to zero): a connection passing small messages through never
/// touches the shared counters, which every worker thread writes. The total
/// can therefore be short by up to this much per connection.
const PUBLISH_STEP: usize = 4096;

/// What one connection holds, kept in the shared total. Dropping it releases everything.
#[derive(Debug)]
pub(crate) struct Account {
    budget: Arc<BufferBudget>,
    /// What the connection holds now.
    held: usize,
    /// What the shared total counts for it.
    published: usize,
    /// This account's key in the budget's waiters.
    id: u64,
    /// Whether it may have a waker registered there (cleared on drop).
    registered: bool,
}

impl Account {
    pub(crate) fn new(budget: Arc<BufferBudget>) -> Self {
        let id = budget.next_id.fetch_add(1, Ordering::Relaxed);
        Account {
            budget,
            held: 0,
            published: 0,
            id,
            registered: false,
        }
    }

    /// The connection now holds `n` bytes.
    #[inline]
    pub(crate) fn set(&mut self, n: usize) {
        if n == self.held {
            return;
        }
        self.held = n;
        let release = n == 0 && self.published != 0;
        if n.abs_diff(self.published) < PUBLISH_STEP && !release {
            return;
        }
        self.publish(n);
    }

    /// Put `n` into the shared total (and wake waiters if it fell enough).
    fn publish(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.published, n);
        let b = &*self.budget;
        if n >= old {
            b.used.fetch_add(n - old, Ordering::SeqCst);
            return;
        }
        let before = b.used.fetch_sub(old - n, Ordering::SeqCst);
        let after = before - (old - n);
        if after < b.soft && b.waiting.load(Ordering::SeqCst) {
            b.wake_waiters();
        }
    }

    /// How many more bytes this connection may take now (see the module docs).
    #[inline]
    pub(crate) fn room(&self) -> usize {
        self.budget.room(self.held)
    }

    /// Wake `cx`'s task once the total falls below the soft mark (call after `room` said 0).
    pub(crate) fn wait(&mut self, cx: &Context<'_>) {
        let b = &*self.budget;
        let mut w = b.lock_waiters();
        match w.get_mut(&self.id) {
            Some(old) if old.will_wake(cx.waker()) => {}
            Some(old) => old.clone_from(cx.waker()),
            None => {
                w.insert(self.id, cx.waker().clone());
            }
        }
        b.waiting.store(true, Ordering::SeqCst);
        drop(w);
        self.registered = true;
        // The total may have fallen between `room` and the registration.
        if b.used() < b.soft {
            b.wake_waiters();
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.set(0);
        if self.registered {
            self.budget.lock_waiters().remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    #[test]
    fn accounts_add_up_and_release_on_drop() {
        let b = BufferBudget::new(1 << 20);
        let mut a = Account::new(b.clone());
        let mut c = Account::new(b.clone());
        a.set(300_000);
        c.set(100_000);
        assert_eq!(b.used(), 400_000);
        a.set(50_000);
        assert_eq!(b.used(), 150_000);
        drop(c);
        assert_eq!(b.used(), 50_000);
        a.set(0);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn small_changes_stay_off_the_shared_total() {
        let b = BufferBudget::new(1 << 20);
        let mut a = Account::new(b.clone());
        for n in [64, 0, 4000, 100, 0] {
            a.set(n);
            assert_eq!(b.used(), 0, "{n}");
        }
        a.set(5000);
        assert_eq!(b.used(), 5000);
        a.set(4000); // a change under the step: not published
        assert_eq!(b.used(), 5000);
        a.set(0); // a release always is
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn past_the_soft_mark_only_small_holders_grow() {
        let b = BufferBudget::new(1 << 20); // soft mark 768 KiB
        let mut big = Account::new(b.clone());
        let mut small = Account::new(b.clone());
        assert_eq!(big.room(), 768 << 10, "up to the soft mark");
        big.set(700 << 10);
        small.set(10 << 10);
        // Below the soft mark: anyone may take up to it; a small holder
        // may also take up to its small share.
        assert_eq!(big.room(), 58 << 10);
        assert_eq!(small.room(), 58 << 10);
        big.set(800 << 10);
        // Past the soft mark the big one stops, the small one grows to 64 KiB.
        assert_eq!(big.room(), 0);
        assert_eq!(small.room(), 54 << 10);
        small.set(64 << 10);
        assert_eq!(small.room(), 0);
        // A newcomer still gets its share.
        let newcomer = Account::new(b.clone());
        assert_eq!(newcomer.room(), 64 << 10);
        // Never past the limit.
        big.set(1000 << 10);
        assert_eq!(newcomer.room(), 0, "at the limit nobody grows");
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn waiters_wake_when_the_total_falls_below_the_soft_mark() {
        let b = BufferBudget::new(1 << 20);
        let mut big = Account::new(b.clone());
        let mut waiter = Account::new(b.clone());
        big.set(1 << 20);
        assert_eq!(waiter.room(), 0);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        waiter.wait(&Context::from_waker(&waker));
        big.set(800 << 10); // still above the soft mark
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        big.set(100 << 10);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(waiter.room() > 0);
        // Registering when there is room already wakes at once.
        waiter.wait(&Context::from_waker(&waker));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_dropped_account_leaves_no_waker_behind() {
        let b = BufferBudget::new(1 << 20);
        let mut big = Account::new(b.clone());
        big.set(1 << 20);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        for _ in 0..100 {
            let mut waiter = Account::new(b.clone());
            // Registering twice keeps one slot.
            waiter.wait(&Context::from_waker(&waker));
            waiter.wait(&Context::from_waker(&waker));
            assert_eq!(b.lock_waiters().len(), 1);
        }
        assert!(b.lock_waiters().is_empty());
        big.set(0);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "nobody left to wake");
    }

    #[test]
    fn zero_means_unlimited() {
        let b = BufferBudget::new(0);
        let mut a = Account::new(b);
        a.set(usize::MAX / 2);
        assert!(a.room() > 0);
    }
}
