//! Memory hints for the ring: its arrays allocated with a hint to back them with transparent
//! huge pages, and a prefetch of the cache lines a batch will touch.
//!
//! At the default capacity the ring is 24.5 MiB read at random: with 4 KiB pages nearly every
//! bucket a batch touches is also a TLB miss, and the page walks queue behind each other where
//! the cache misses would overlap. On Linux, `madvise(MADV_HUGEPAGE)` on the (2 MiB-aligned part
//! of the) allocation, before anything is written to it, lets the kernel fault it in as 2 MiB
//! pages when `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` or `always`. It is only
//! a hint: with huge pages off, or none free, the memory is ordinary pages and nothing else
//! changes. Memory use is the same either way: the arrays are written in full at creation.
//!
//! This file holds the dedup module's `unsafe` blocks (the `madvise` call and the prefetch
//! instruction); neither reads nor writes the memory itself.

#![allow(unsafe_code)]

/// Size of a transparent huge page on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// `len` default values in one allocation advised for huge pages (see the module docs).
pub(super) fn filled<T: Default>(len: usize) -> Box<[T]> {
    let mut items: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(items.as_ptr() as usize, len * std::mem::size_of::<T>());
    items.resize_with(len, T::default);
    items.into_boxed_slice()
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: usize, bytes: usize) {
    let begin = start.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end > begin {
        // SAFETY: `begin..end` lies inside the allocation `filled` just made (rounded inwards
        // to page boundaries, as madvise requires), and MADV_HUGEPAGE changes neither its
        // contents nor its validity: at worst the call fails, which changes nothing.
        unsafe { libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: usize, _bytes: usize) {}

/// Asks the processor to bring `word`'s cache line into its caches, without waiting for it (a
/// load that misses holds up every instruction behind it until it retires; a prefetch does not).
#[inline]
pub(super) fn prefetch(word: &std::sync::atomic::AtomicU64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it reads nothing into a register, writes nothing, and cannot
    // fault (not even on a bad address); `word` is a live reference anyway. SSE, which the
    // intrinsic is declared for, is part of every x86-64 processor.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(word.as_ptr().cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    std::hint::black_box(word.load(std::sync::atomic::Ordering::Relaxed));
}
