//! How far apart the machine's first two CPUs are, measured: the time for a cache line to go
//! from CPU 0 to CPU 1 and back.
//!
//! On a VM that time is not a constant. This project's 2-vCPU EPYC VM shows two states, and the
//! host switches between them every few seconds to every few minutes: both vCPUs on cores that
//! share an L3 cache (a round trip of about 45 ns: **near**), or on cores of different L3s
//! (about 380 ns: **far**). Anything that hands data from one thread to another pays for it:
//! in the far state the dedup ring's two-thread rate drops from about 32 to 18 M inserts/s, the
//! receiver's requests/s by about a quarter, the bare HTTP ceiling by less. So the benches that
//! compare a multi-threaded contender against a baseline measure the state around every round
//! and report their ratios for each state apart, next to the overall medians.
//!
//! The probe: two threads pinned to CPU 0 and CPU 1 pass a counter back and forth through one
//! cache line; the fastest of a few short runs counts (a run that the scheduler interrupts only
//! ever reads slower). It takes 1-10 ms and restores the calling thread's CPU set afterwards.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Round trips above this are the far state (the two states measure about 45 and 380 ns).
pub(crate) const FAR_NS: f64 = 200.0;
/// Round trips per run, and runs per probe.
const ROUND_TRIPS: u64 = 2_000;
const RUNS: usize = 5;

/// Where the first two CPUs stood around a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cores {
    /// Sharing a cache before and after.
    Near,
    /// Apart before and after.
    Far,
    /// The state changed during the measurement, or could not be measured.
    Mixed,
}

impl Cores {
    /// The state from probes taken before and after a measurement.
    pub(crate) fn around(before: Option<f64>, after: Option<f64>) -> Cores {
        match (before, after) {
            (Some(a), Some(b)) if a < FAR_NS && b < FAR_NS => Cores::Near,
            (Some(a), Some(b)) if a >= FAR_NS && b >= FAR_NS => Cores::Far,
            _ => Cores::Mixed,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cores::Near => "near",
            Cores::Far => "far",
            Cores::Mixed => "mixed",
        }
    }
}

#[repr(align(128))]
struct Line(AtomicU64);

/// The CPU 0 ↔ CPU 1 round trip in ns, or `None` on a machine with fewer than two usable CPUs
/// (or where pinning fails).
pub(crate) fn round_trip_ns() -> Option<f64> {
    let original = affinity()?;
    // SAFETY: CPU_ISSET reads the set, whose size is that of cpu_set_t.
    if unsafe { !libc::CPU_ISSET(0, &original) || !libc::CPU_ISSET(1, &original) } {
        return None;
    }
    let line = Line(AtomicU64::new(0));
    let line = &line;
    let best = std::thread::scope(|scope| {
        let peer = scope.spawn(move || {
            if !pin(1) {
                line.0.store(u64::MAX, Ordering::Release);
                return;
            }
            for i in 0..RUNS as u64 * ROUND_TRIPS {
                loop {
                    match line.0.load(Ordering::Acquire) {
                        v if v == 2 * i + 1 => break,
                        u64::MAX => return,
                        _ => std::hint::spin_loop(),
                    }
                }
                line.0.store(2 * i + 2, Ordering::Release);
            }
        });
        let mut best = f64::MAX;
        if !pin(0) {
            // Before the first hand-over, so the peer sees this and nothing else: it stops.
            line.0.store(u64::MAX, Ordering::Release);
            let _ = peer.join();
            return best;
        }
        let mut i = 0;
        'runs: for _ in 0..RUNS {
            let start = Instant::now();
            for _ in 0..ROUND_TRIPS {
                // The peer stores `u64::MAX` only before the first hand-over (it could not pin).
                if line.0.swap(2 * i + 1, Ordering::AcqRel) == u64::MAX {
                    line.0.store(u64::MAX, Ordering::Release);
                    best = f64::MAX;
                    break 'runs;
                }
                loop {
                    match line.0.load(Ordering::Acquire) {
                        v if v == 2 * i + 2 => break,
                        u64::MAX => {
                            best = f64::MAX;
                            break 'runs;
                        }
                        _ => std::hint::spin_loop(),
                    }
                }
                i += 1;
            }
            best = best.min(start.elapsed().as_nanos() as f64 / ROUND_TRIPS as f64);
        }
        let _ = peer.join();
        best
    });
    set_affinity(&original);
    (best < f64::MAX).then_some(best)
}

fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0).then_some(set)
    }
}

fn set_affinity(set: &libc::cpu_set_t) -> bool {
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> bool {
    // SAFETY: as in `affinity`; CPU_SET writes inside the set.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    };
    set_affinity(&set)
}
