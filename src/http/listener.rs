//! The listening socket and the accept loop: bind exclusively, cap open connections, back off
//! when the process runs out of descriptors, spawn one coroutine per connection, and stop.
//!
//! * The socket is bound without `SO_REUSEPORT` (may's own `bind` sets it), so a second server
//!   on the same address fails to start instead of silently taking half the connections.
//! * Over [`Config::max_connections`](super::Config) a connection is closed as soon as it is
//!   accepted: no coroutine, no buffer.
//! * `accept` failing for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) fails
//!   at once on every call while the condition lasts; the loop sleeps [`ACCEPT_BACKOFF`] instead
//!   of spinning a core, and logs it at most once per [`ACCEPT_LOG_INTERVAL`].
//! * Stopping: `shutdown(2)` on the listening socket wakes the parked `accept` with an error and
//!   the loop ends; then every connection waiting for a request is shut for reading (its loop
//!   sees end-of-stream and closes), while connections in the middle of a request finish it and
//!   close after their answer.
//!
//! Invariant (descriptor reuse): a connection's registry entry is removed, under the registry
//! lock, before its socket is closed, and [`Server::close_idle`] shuts sockets only under the same
//! lock; so a shutdown can only ever reach the connection that registered the descriptor.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use may::coroutine::JoinHandle;
use socket2::{Domain, SockRef, Socket, Type};

use super::{conn, socket, Budget, Config, Counters, Service};

/// Pending connections the kernel queues before `accept`.
const BACKLOG: i32 = 1024;
/// Pause after `accept` failed for want of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this interval about failing `accept`s.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// State shared by the accept loop and every connection.
#[derive(Debug)]
pub(super) struct State {
    pub(super) config: Config,
    pub(super) budget: Budget,
    pub(super) counters: Counters,
    /// Set once the server stops: connections close after their current answer.
    pub(super) stopping: AtomicBool,
    open: AtomicUsize,
    /// Open connections by socket descriptor, with the flag each sets while idle.
    registry: Mutex<HashMap<RawFd, Arc<AtomicBool>>>,
}

impl State {
    fn registry(&self) -> MutexGuard<'_, HashMap<RawFd, Arc<AtomicBool>>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The layer's counters, readable while it runs (a cheap handle to share).
#[derive(Debug, Clone)]
pub struct Stats(Arc<State>);

impl Stats {
    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }

    /// Connections closed at once because `max_connections` were open.
    pub fn connections_refused(&self) -> u64 {
        self.0.counters.refused.load(Ordering::Relaxed)
    }

    /// Requests (or idle connections) that ran out of time.
    pub fn timed_out(&self) -> u64 {
        self.0.counters.timed_out.load(Ordering::Relaxed)
    }

    /// `accept` calls that failed for want of descriptors or memory.
    pub fn accept_errors(&self) -> u64 {
        self.0.counters.accept_errors.load(Ordering::Relaxed)
    }
}

/// A bound listening socket, then (after [`Server::start`]) an accepting server.
#[derive(Debug)]
pub struct Server {
    state: Arc<State>,
    listener: Arc<may::net::TcpListener>,
    acceptor: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` exclusively; an address another process listens on fails with
    /// `AddrInUse`, "address already in use by another process".
    pub fn bind(addr: SocketAddr, config: Config) -> io::Result<Server> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        // Lets a restarted server bind while old connections sit in TIME_WAIT; it does not let
        // two sockets listen on one address (only SO_REUSEPORT would).
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into()).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => {
                io::Error::new(io::ErrorKind::AddrInUse, "address already in use by another process")
            }
            _ => e,
        })?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr()?;
        let listener = socket::adopt_listener(listener);
        let state = Arc::new(State {
            config,
            budget: Budget { used: AtomicUsize::new(0), limit: config.body_budget },
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            registry: Mutex::new(HashMap::new()),
        });
        Ok(Server { state, listener: Arc::new(listener), acceptor: None, addr })
    }

    /// The bound address (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on the counters.
    pub fn stats(&self) -> Stats {
        Stats(Arc::clone(&self.state))
    }

    /// Starts accepting; `factory` makes one service per connection.
    pub fn start<S, F>(&mut self, factory: F) -> io::Result<()>
    where
        S: Service + Send + 'static,
        F: Fn() -> S + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let listener = Arc::clone(&self.listener);
        self.acceptor = Some(socket::spawn(0, move || accept_loop(&listener, &state, &factory))?);
        Ok(())
    }

    /// Stops accepting (new connections are refused by the kernel), tells open connections to
    /// close after their current answer, and closes those waiting for a request.
    pub fn stop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        let _ = SockRef::from(self.listener.inner()).shutdown(Shutdown::Both);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.close_idle();
    }

    /// Shuts reading on every connection that waits for the first byte of a request.
    fn close_idle(&self) {
        let registry = self.state.registry();
        for (&fd, idle) in registry.iter() {
            if idle.load(Ordering::SeqCst) {
                socket::shutdown_read(fd);
            }
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Waits until the accept loop ends (it ends only after [`Server::stop`]).
    pub fn wait(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A connection's place in the registry and the open count, given back on drop (before the
/// socket closes: see the module docs).
pub(super) struct Registration<'s> {
    state: &'s State,
    fd: RawFd,
}

impl<'s> Registration<'s> {
    /// The shared state (borrowed for as long as the registration lives).
    pub(super) fn state(&self) -> &'s State {
        self.state
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.state.registry().remove(&self.fd);
        self.state.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop<S, F>(listener: &may::net::TcpListener, state: &Arc<State>, factory: &F)
where
    S: Service + Send + 'static,
    F: Fn() -> S,
{
    let mut last_log: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) if state.stopping.load(Ordering::SeqCst) => return,
            Err(e) if out_of_resources(&e) => {
                state.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                if last_log.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL) {
                    log::error!(
                        "cannot accept connections: {e} (raise the open-file limit, LimitNOFILE=, above \
                         --max-connections); retrying every {} ms",
                        ACCEPT_BACKOFF.as_millis()
                    );
                    last_log = Some(Instant::now());
                }
                may::coroutine::sleep(ACCEPT_BACKOFF);
                continue;
            }
            // A connection reset before it was accepted, and the like: only that one is lost.
            Err(_) => continue,
        };
        if state.open.load(Ordering::SeqCst) >= state.config.max_connections {
            state.counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let fd = stream.as_raw_fd();
        let idle = Arc::new(AtomicBool::new(false));
        state.open.fetch_add(1, Ordering::SeqCst);
        state.registry().insert(fd, Arc::clone(&idle));
        let mut service = factory();
        let conn_state = Arc::clone(state);
        let spawned = socket::spawn(fd as usize, move || {
            let registration = Registration { state: &conn_state, fd };
            service.connected(peer);
            conn::serve(registration, stream, &mut service, &idle);
        });
        if spawned.is_err() {
            // The closure, and the stream in it, are gone: only the bookkeeping is left.
            state.registry().remove(&fd);
            state.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// `accept` errors that repeat at once until descriptors or memory are freed.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
