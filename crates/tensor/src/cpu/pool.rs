//! Recycles the CPU backend's output buffers.
//!
//! Training repeats the same shapes thousands of times (SinGAN: batch 1, one scale for 2000
//! iterations), and every op returns a fresh buffer. Without reuse, each large allocation comes
//! from the kernel as untouched pages (a page fault and a page clear per 4 KiB on first write)
//! or from malloc's heap zeroed by `calloc`; together that measured 20–30 % of a SinGAN epoch.
//! Buffers of dropped CPU tensors come back here by exact length and are handed out again
//! without being cleared.
//!
//! Bounded: at most [`capacity_bytes`] are held (default 1 GiB, `TESSERA_CPU_POOL_MB` overrides,
//! 0 disables); beyond that the least recently returned buffers are freed, and so is any buffer
//! not taken again within `MAX_AGE` later returns. Buffers below `MIN_LEN` elements are left
//! to malloc, which handles small sizes well.
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Buffers shorter than this (16 KiB) are not pooled.
pub(crate) const MIN_LEN: usize = 4096;

struct Pool {
    /// Free buffers by length, each tagged with the stamp it was returned under (ascending).
    free: BTreeMap<usize, Vec<(u64, Vec<f32>)>>,
    /// Stamp → length of every free buffer: the eviction order.
    order: BTreeMap<u64, usize>,
    held_bytes: usize,
    next_stamp: u64,
}

/// A free buffer not taken again within this many later returns is freed: the shapes of a
/// finished phase (a SinGAN scale already trained) stop holding memory, while a training loop,
/// which returns the same shapes every step, keeps its buffers.
const MAX_AGE: u64 = 1 << 16;

impl Pool {
    const fn new() -> Self {
        Pool {
            free: BTreeMap::new(),
            order: BTreeMap::new(),
            held_bytes: 0,
            next_stamp: 0,
        }
    }

    fn take(&mut self, len: usize) -> Option<Vec<f32>> {
        let list = self.free.get_mut(&len)?;
        let (stamp, buf) = list.pop()?;
        if list.is_empty() {
            self.free.remove(&len);
        }
        self.order.remove(&stamp);
        self.held_bytes -= len * 4;
        Some(buf)
    }

    /// Removes the least recently returned buffer.
    fn evict_oldest(&mut self) -> Option<Vec<f32>> {
        let (stamp, len) = self.order.pop_first()?;
        let list = self.free.get_mut(&len).expect("order and free agree");
        let at = list
            .iter()
            .position(|(s, _)| *s == stamp)
            .expect("stamp is listed");
        let buf = list.remove(at).1;
        if list.is_empty() {
            self.free.remove(&len);
        }
        self.held_bytes -= len * 4;
        Some(buf)
    }

    /// Keeps `buf` within `cap` bytes; returns the buffers evicted (stale ones, then the oldest
    /// until `buf` fits).
    fn give(&mut self, buf: Vec<f32>, cap: usize) -> Vec<Vec<f32>> {
        let (len, bytes) = (buf.len(), buf.len() * 4);
        if bytes > cap {
            return vec![buf];
        }
        let mut evicted = Vec::new();
        while let Some((&oldest, _)) = self.order.first_key_value() {
            let stale = oldest + MAX_AGE < self.next_stamp;
            if !stale && self.held_bytes + bytes <= cap {
                break;
            }
            evicted.extend(self.evict_oldest());
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.order.insert(stamp, len);
        self.free.entry(len).or_default().push((stamp, buf));
        self.held_bytes += bytes;
        evicted
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // A panic while holding the lock leaves the maps consistent (no partial updates span a
    // panic point), so a poisoned lock is still usable.
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The most bytes the pool holds: `TESSERA_CPU_POOL_MB` (read once), default 1024 MiB.
pub fn capacity_bytes() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("TESSERA_CPU_POOL_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1024)
            .saturating_mul(1 << 20)
    })
}

/// A buffer of `len` floats whose contents are unspecified (stale values of an earlier tensor,
/// or zeros): callers must write every element before the buffer is read.
pub(crate) fn take(len: usize) -> Vec<f32> {
    if len >= MIN_LEN {
        let reused = pool().take(len);
        if let Some(buf) = reused {
            return poison_in_debug(buf);
        }
    }
    vec![0f32; len]
}

/// Debug builds (the test suite) hand out reused buffers full of NaN, so that a kernel which
/// leaves an element unwritten fails its tests instead of passing on stale values.
fn poison_in_debug(mut buf: Vec<f32>) -> Vec<f32> {
    if cfg!(debug_assertions) {
        buf.fill(f32::NAN);
    }
    buf
}

/// A buffer of `len` zeros.
pub(crate) fn take_zeroed(len: usize) -> Vec<f32> {
    let mut buf = take(len);
    buf.fill(0.0);
    buf
}

/// Returns a buffer for reuse (or frees it: when small, or when it would not fit the capacity).
pub(crate) fn give(buf: Vec<f32>) {
    // Only buffers whose allocation is exactly `len` floats are pooled, so that what `take`
    // hands out never carries hidden spare capacity.
    if buf.len() < MIN_LEN || buf.capacity() != buf.len() {
        return;
    }
    let evicted = pool().give(buf, capacity_bytes());
    // Freed outside the lock: returning large blocks to the OS can take a while.
    drop(evicted);
}

/// Frees every pooled buffer (for a program that is done with large tensors and wants the
/// memory back). Returns the bytes released.
pub fn trim() -> usize {
    let drained = {
        let mut p = pool();
        p.order.clear();
        let bytes = std::mem::take(&mut p.held_bytes);
        (std::mem::take(&mut p.free), bytes)
    };
    drained.1
}

/// Bytes currently held for reuse.
pub fn held_bytes() -> usize {
    pool().held_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_returned_buffer_and_bounds_what_it_holds() {
        // A length no other test in this binary uses, so parallel tests cannot take it.
        let len = MIN_LEN * 3 + 17;
        let mut buf = take(len);
        buf.fill(7.0);
        let ptr = buf.as_ptr();
        give(buf);
        let again = take(len);
        assert_eq!(again.as_ptr(), ptr, "the same allocation comes back");
        assert_eq!(again.len(), len);
        let zeroed = {
            give(again);
            take_zeroed(len)
        };
        assert!(zeroed.iter().all(|&v| v == 0.0));
        give(zeroed);
        assert!(held_bytes() <= capacity_bytes());
    }

    #[test]
    fn evicts_the_oldest_over_capacity_and_stale_buffers() {
        let mut p = Pool::new();
        let cap = 3 * MIN_LEN * 4;
        for _ in 0..3 {
            assert!(p.give(vec![0.0; MIN_LEN], cap).is_empty());
        }
        assert_eq!(p.held_bytes, cap);
        // A fourth buffer evicts the oldest; one too big for the capacity is not kept.
        assert_eq!(p.give(vec![1.0; MIN_LEN], cap).len(), 1);
        assert_eq!(p.give(vec![0.0; 4 * MIN_LEN], cap).len(), 1);
        assert_eq!(p.held_bytes, cap);
        // A size in steady use stays; the others age out.
        let mut evicted = 0;
        for _ in 0..MAX_AGE + 2 {
            let buf = p
                .take(MIN_LEN + 1)
                .unwrap_or_else(|| vec![0.0; MIN_LEN + 1]);
            evicted += p.give(buf, usize::MAX).len();
        }
        assert_eq!(evicted, 3);
        assert_eq!(p.held_bytes, (MIN_LEN + 1) * 4);
        assert!(p.take(MIN_LEN).is_none());
    }
}
