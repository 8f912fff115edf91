//! Keeping rayon's workers awake through a stretch of many small parallel ops.
//!
//! rayon parks a worker that finds no work for a few microseconds, and waking a parked one costs
//! 30–100 µs on the 2-vCPU VMs this project is measured on. A training step issues hundreds of
//! forks of 20–200 µs each, with serial gaps in between (small ops, graph bookkeeping), so a
//! parked partner often arrives after the forking thread has done both halves itself. Measured
//! there: `rayon::join` of two 50 µs spins took a median 51 µs right after another join, but
//! 78–99 µs after a serial gap of 50 µs–1 ms. OpenMP runtimes (PyTorch's) spin their workers for
//! a while instead of parking them; `run_with_workers_polling` does the same for one call.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How many empty polls (about 0.1 µs each) a worker makes in a row before it polls at
/// `IDLE_POLL` instead, so a long serial stretch (or a wait on a GPU) does not hold a core at
/// full load.
const IDLE_SPINS: u32 = 20_000;
/// The polling period of a worker after `IDLE_SPINS` empty polls.
const IDLE_POLL: Duration = Duration::from_micros(50);

/// Runs `f` on a worker of rayon's global pool (inline when already on a worker) while, if `f`
/// was started from outside the pool, every other worker polls the pool for work until `f`
/// returns, so that each fork `f` makes is picked up at once. Within a worker, forks and joins
/// also skip the hand-off that a call from outside the pool makes for every parallel op.
pub fn run_with_workers_polling<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let caller = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            let done = &done;
            s.spawn(move |_| poll_until(done, caller));
        }
        // Set however `f` ends: on a panic the scope waits for the pollers before unwinding.
        let _stop = SetOnDrop(&done);
        f()
    })
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs the pool's pending work as it appears until `done`.
fn poll_until(done: &AtomicBool, caller: Option<usize>) {
    // The caller's worker can pop this job itself while it waits in a join; polling there would
    // never return, as `done` is only set once the caller's `f`, further down this stack, ends.
    if rayon::current_thread_index() == caller {
        return;
    }
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => idle = 0,
            _ if idle < IDLE_SPINS => {
                idle += 1;
                std::hint::spin_loop()
            }
            _ => std::thread::sleep(IDLE_POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_on_a_worker_and_returns_the_result() {
        let (on_worker, sum) = run_with_workers_polling(|| {
            let sum: u64 = (0..100_000u64).into_par_iter().sum();
            (rayon::current_thread_index().is_some(), sum)
        });
        assert!(on_worker);
        assert_eq!(sum, 99_999 * 100_000 / 2);
        // Nested: runs inline.
        let inner =
            run_with_workers_polling(|| run_with_workers_polling(rayon::current_thread_index));
        assert!(inner.is_some());
    }

    #[test]
    fn a_panic_in_f_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            run_with_workers_polling(|| {
                (0..1000).into_par_iter().for_each(|_| {});
                panic!("from f")
            })
        });
        assert!(caught.is_err());
    }
}
