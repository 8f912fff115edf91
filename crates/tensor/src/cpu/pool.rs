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
//! 0 disables); beyond that the least recently returned buffers are freed. Buffers below
//! [`MIN_LEN`] elements are left to malloc, which handles small sizes well.
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

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: BTreeMap::new(),
    order: BTreeMap::new(),
    held_bytes: 0,
    next_stamp: 0,
});

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
        let mut p = pool();
        if let Some(list) = p.free.get_mut(&len) {
            if let Some((stamp, buf)) = list.pop() {
                if list.is_empty() {
                    p.free.remove(&len);
                }
                p.order.remove(&stamp);
                p.held_bytes -= len * 4;
                drop(p);
                return poison_in_debug(buf);
            }
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

/// Returns a buffer for reuse (or frees it, when small, or when it would not fit the capacity).
pub(crate) fn give(buf: Vec<f32>) {
    let len = buf.len();
    let bytes = len * 4;
    let cap = capacity_bytes();
    // Only buffers whose allocation is exactly `len` floats are pooled, so that what `take`
    // hands out never carries hidden spare capacity.
    if len < MIN_LEN || bytes > cap || buf.capacity() != len {
        return;
    }
    let mut evicted = Vec::new();
    {
        let mut p = pool();
        while p.held_bytes + bytes > cap {
            let Some((stamp, old_len)) = p.order.pop_first() else {
                break;
            };
            let list = p.free.get_mut(&old_len).expect("order and free agree");
            let at = list
                .iter()
                .position(|(s, _)| *s == stamp)
                .expect("stamp is listed");
            evicted.push(list.remove(at).1);
            if list.is_empty() {
                p.free.remove(&old_len);
            }
            p.held_bytes -= old_len * 4;
        }
        let stamp = p.next_stamp;
        p.next_stamp += 1;
        p.order.insert(stamp, len);
        p.free.entry(len).or_default().push((stamp, buf));
        p.held_bytes += bytes;
    }
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
}
