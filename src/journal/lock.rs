//! Taking a std [`Mutex`] whatever a panicking holder left behind.
//!
//! Every lock of the journal (the append queue, a batch's records, the waiters filed for a
//! waker, the segment list) is taken through [`lock`], so one panic while a lock is held does not
//! become a panic in every later caller: in particular the writer's guard (`writer.rs`) must
//! still take the queue after the writer panicked, to fail every batch in it. It is its own
//! module because `append.rs`, `wake.rs` and `writer.rs` all need it and none of them owns it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking it as it is if a holder panicked (see the module docs).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
