//! The open-file limit: raised at start as far as the hard limit allows, and `--max-connections`
//! capped to what it leaves, so that connections can never take the descriptors the journal and
//! the sinks need (a new segment, a rotated sink file, an exec run's pipes).

/// Descriptors kept for everything but connections: the listener, may's event descriptors, the
/// journal's segments and directory, the checkpoint and key files, each sink's file or an exec
/// run's three pipes per worker, the dead-letter file, stdio and the logger.
pub(super) const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard one; returns the soft limit in force after it
/// (`None` if it cannot be read).
#[allow(unsafe_code)]
pub(super) fn raise_open_files() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Some(limit.rlim_cur)
}

/// `--max-connections` within an open-file limit of `limit` descriptors: at most `limit` minus
/// [`RESERVED_DESCRIPTORS`] (and at least 1).
pub(super) fn connections_within(max_connections: usize, limit: u64) -> usize {
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_the_reserve() {
        assert_eq!(connections_within(10_000, 1024), 896);
        assert_eq!(connections_within(100, 1024), 100);
        assert_eq!(connections_within(10_000, 64), 1);
        assert_eq!(connections_within(10_000, u64::MAX), 10_000);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let soft = raise_open_files().expect("getrlimit");
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(read, 0);
        assert_eq!(soft, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
