//! Hot reload: a plug-in whose files change is compiled again and swapped in between calls.
//!
//! - [`HotPlugin`] (this file): one live instance of a plug-in loaded from a file, called from
//!   any thread (`&self`). [`HotPlugin::check`] looks at the files and, if their bytes
//!   changed, compiles the new code and swaps it in; [`HotPlugin::call`] also checks on its
//!   own, at most every [`check_interval`](HotPlugin::with_check_interval). The new code
//!   gets the old instance's vars; a call in flight finishes on the old code.
//! - [`Reload`]: what a check did (nothing, a swap to a new generation, or a failure that
//!   left the old code running), so that a host can show it.
//! - `watch.rs`: stamps (a `stat` per file, to tell cheaply that nothing changed) and
//!   snapshots (every byte read once and hashed, to tell for sure and to compile from), so
//!   that touching a file or writing the same bytes again does not reload.
//! - `live.rs`: the running generation (compiled code, instance, vars) behind the lock that
//!   calls take, and the swap to the next one.
//!
//! A check holds its own lock while it reads and compiles, never the calls' lock: calls keep
//! running on the old code meanwhile, and take the calls' lock only for the swap itself.
//!
//! ```no_run
//! use plinth::reload::{HotPlugin, Reload};
//! let hot = HotPlugin::open("mods/greeter.wasm", |b| b.with_wasi(false))?
//!     .with_check_interval(None); // check only when told to, between ticks
//! loop {
//!     match hot.check()? {
//!         Reload::Unchanged => {}
//!         Reload::Swapped { generation } => println!("greeter reloaded: generation {generation}"),
//!         Reload::Failed(e) => println!("greeter not reloaded, the old code runs: {e}"),
//!     }
//!     let out: String = hot.call("on_tick", "tick")?;
//! #   let _ = out;
//! }
//! # Ok::<(), plinth::Error>(())
//! ```

mod live;
mod watch;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use plinth_convert::{FromBytesOwned, ToBytes};

use crate::concurrency::guard::Holding;
use crate::{CompiledPlugin, Error, PluginBuilder, Result};
use live::{Live, Next};
use watch::Stamps;

/// How often [`HotPlugin::call`] looks at the files by default.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// What a [`HotPlugin::check`] did.
#[derive(Debug)]
pub enum Reload {
    /// The files hold the bytes already loaded (or already tried): nothing to do.
    Unchanged,
    /// New code was compiled and swapped in; calls from now on run it.
    Swapped {
        /// The new code's generation (the first load is 1).
        generation: u64,
    },
    /// The files changed but the new code cannot run (unreadable, not wasm, a manifest error,
    /// a missing required export, a start function that traps, ...): the old code keeps
    /// running. The same error is kept in [`HotPlugin::last_error`] until a reload succeeds.
    /// The same bytes are not tried again until they change (or [`HotPlugin::reload`]).
    Failed(Arc<Error>),
}

type Configure = dyn Fn(PluginBuilder) -> PluginBuilder + Send + Sync;

/// A plug-in that follows its file: edit the file, and the next check swaps the new code in.
///
/// `HotPlugin` is `Send + Sync`: calls from many threads take turns on one instance, as with
/// [`SharedPlugin`](crate::SharedPlugin), so that its vars are one store. A host function
/// that calls back into the same `HotPlugin` fails with [`Error::Reentrant`].
///
/// What carries over to new code: the vars. What does not: the instance's memory and globals
/// (the new code starts fresh, with its start function run) and config, which comes from the
/// new manifest. The new code's start function runs before the vars are moved over.
pub struct HotPlugin {
    path: PathBuf,
    configure: Box<Configure>,
    required: Vec<String>,
    check_interval: Option<Duration>,
    /// When [`call`](Self::call) checks next, in ns since `epoch`.
    next_check: AtomicU64,
    epoch: Instant,
    /// Held for a whole check, reading and compiling included; calls never wait for it.
    watch: Mutex<Watch>,
    /// The running code; held by each call and by the swap.
    live: Mutex<Live>,
    generation: AtomicU64,
    last_error: Mutex<Option<Arc<Error>>>,
    id: Arc<str>,
}

/// What the last check saw.
struct Watch {
    stamps: Stamps,
    /// The snapshot last tried, loaded or not: the same bytes are not tried twice.
    tried: [u8; 32],
}

impl std::fmt::Debug for HotPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotPlugin")
            .field("path", &self.path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a host function during a call leaves nothing half-changed here.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HotPlugin {
    /// Loads the plug-in at `path` (a wasm binary, WAT text, or a manifest in JSON or TOML;
    /// told apart by content) and watches it: for a manifest, the manifest file and the module
    /// files it names. `configure` gets a fresh [`PluginBuilder`] at the first load and at
    /// every reload, so that each generation has the same host functions, WASI, fuel and
    /// other settings. Fails as [`PluginBuilder::build`] does when the first load fails.
    pub fn open(
        path: impl Into<PathBuf>,
        configure: impl Fn(PluginBuilder) -> PluginBuilder + Send + Sync + 'static,
    ) -> Result<HotPlugin> {
        let path = path.into();
        let configure: Box<Configure> = Box::new(configure);
        let snapshot = watch::snapshot(&path);
        let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let next = Next::prepare(&configure, snapshot.manifest?, &[], &id)?;
        let hot = HotPlugin {
            configure,
            required: Vec::new(),
            check_interval: Some(DEFAULT_CHECK_INTERVAL),
            next_check: AtomicU64::new(0),
            epoch: Instant::now(),
            watch: Mutex::new(Watch {
                stamps: snapshot.stamps,
                tried: snapshot.digest,
            }),
            live: Mutex::new(Live::first(next)),
            generation: AtomicU64::new(1),
            last_error: Mutex::new(None),
            id,
            path,
        };
        hot.schedule_check();
        Ok(hot)
    }

    /// How often [`call`](Self::call) looks at the files: at most once per `interval`
    /// (`Duration::ZERO`: before every call), or never with `None`, for hosts that call
    /// [`check`](Self::check) themselves at points of their choosing (a game between ticks).
    /// The default is [`DEFAULT_CHECK_INTERVAL`]. A look costs one `stat` per watched file
    /// while nothing changed; a call that finds a change compiles the new code before it
    /// runs (other threads' calls meanwhile run the old code).
    pub fn with_check_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.check_interval = interval.into();
        self.schedule_check();
        self
    }

    /// Exports every new version must have: a reload whose code lacks one of them fails with
    /// [`Error::FunctionNotFound`] and the old code keeps running. Fails the same way now if
    /// the code already loaded lacks one.
    pub fn require_exports<S: AsRef<str>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        self.required = names.into_iter().map(|s| s.as_ref().to_string()).collect();
        live::check_exports(&lock(&self.live).compiled, &self.required)?;
        Ok(self)
    }

    /// Looks at the files now and, if their bytes changed, compiles the new code and swaps it
    /// in once the call in flight (if any) has finished. Deterministic: whatever was written
    /// before this call is seen. Concurrent checks take turns. Fails only with
    /// [`Error::Reentrant`], when called from a host function during a call of this plug-in
    /// (the swap would wait for that call for ever); a reload that fails is
    /// [`Reload::Failed`], not an error.
    pub fn check(&self) -> Result<Reload> {
        self.guard_reentry("")?;
        Ok(self.check_with(lock(&self.watch), false))
    }

    /// Compiles and swaps in the files' current bytes even if they did not change (after a
    /// failure that was not the files' fault, say, or to pick up what `configure` reads).
    pub fn reload(&self) -> Result<Reload> {
        self.guard_reentry("")?;
        Ok(self.check_with(lock(&self.watch), true))
    }

    /// Calls `function` with `input` and decodes its output, on the code loaded now. Checks
    /// the files first when [`check_interval`](Self::with_check_interval) has passed; a
    /// failed reload is logged and kept in [`last_error`](Self::last_error), and the call
    /// runs on the old code.
    pub fn call<'a, I: ToBytes<'a>, O: FromBytesOwned>(
        &self,
        function: impl AsRef<str>,
        input: I,
    ) -> Result<O> {
        self.call_inner(function.as_ref(), input, None)
    }

    /// Like [`call`](Self::call), with a value that host functions reach through
    /// [`CurrentPlugin::host_context`](crate::CurrentPlugin::host_context) during this call.
    pub fn call_with_host_context<'a, I: ToBytes<'a>, O: FromBytesOwned, T: Any + Send>(
        &self,
        function: impl AsRef<str>,
        input: I,
        context: T,
    ) -> Result<O> {
        self.call_inner(function.as_ref(), input, Some(Box::new(context)))
    }

    fn call_inner<'a, I: ToBytes<'a>, O: FromBytesOwned>(
        &self,
        function: &str,
        input: I,
        context: Option<Box<dyn Any + Send>>,
    ) -> Result<O> {
        let bytes = input.to_bytes()?;
        self.guard_reentry(function)?;
        self.check_if_due();
        let mut live = lock(&self.live);
        Holding::check_call(self.key(), function)?;
        let _holding = Holding::enter(self.key());
        live.call(function, bytes.as_ref(), context)?;
        Ok(O::from_bytes_owned(live.output())?)
    }

    /// The generation of the code running: 1 at the first load, one more at each swap.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Why the last reload failed; cleared when one succeeds.
    pub fn last_error(&self) -> Option<Arc<Error>> {
        lock(&self.last_error).clone()
    }

    /// Fuel the last call used (on whichever thread it ran); `None` without a fuel limit.
    pub fn fuel_consumed(&self) -> Option<u64> {
        lock(&self.live).fuel_consumed()
    }

    /// The path the plug-in was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files watched: the path opened and, for a manifest, the module files it names (as
    /// of the last check).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        lock(&self.watch).stamps.paths()
    }

    /// The compiled code running now (for more instances of it, or its exports).
    pub fn compiled(&self) -> CompiledPlugin {
        lock(&self.live).compiled.clone()
    }

    /// Whether the code running now has `name` as a callable export.
    pub fn function_exists(&self, name: &str) -> bool {
        lock(&self.live).compiled.function_exists(name)
    }

    /// A var the plug-in stored.
    pub fn var_get(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.live).vars().map.get(key).cloned()
    }

    /// Sets or removes a var, within the manifest's `memory.max_var_bytes`.
    pub fn var_set(&self, key: impl Into<String>, value: Option<&[u8]>) -> Result<()> {
        let mut live = lock(&self.live);
        let limit = live.compiled.inner.settings.max_var_bytes;
        live.vars_mut()
            .set(key.into(), value.map(<[u8]>::to_vec), limit)
    }

    fn key(&self) -> usize {
        self as *const HotPlugin as usize
    }

    fn guard_reentry(&self, function: &str) -> Result<()> {
        Holding::check_call(self.key(), function)
    }

    fn schedule_check(&self) {
        let next = match self.check_interval {
            Some(interval) => self.epoch.elapsed().saturating_add(interval),
            None => Duration::MAX,
        };
        let ns = u64::try_from(next.as_nanos()).unwrap_or(u64::MAX);
        self.next_check.store(ns, Ordering::Relaxed);
    }

    /// The check inside `call`: one thread at a time, and never waiting for a check that
    /// another thread is running (that thread swaps the new code in when it is ready).
    fn check_if_due(&self) {
        let Some(interval) = self.check_interval else {
            return;
        };
        let now = self.epoch.elapsed();
        let due = self.next_check.load(Ordering::Relaxed);
        if (now.as_nanos() as u64) < due {
            return;
        }
        let next = u64::try_from(now.saturating_add(interval).as_nanos()).unwrap_or(u64::MAX);
        if self
            .next_check
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        match self.watch.try_lock() {
            Ok(watch) => drop(self.check_with(watch, false)),
            Err(TryLockError::Poisoned(p)) => drop(self.check_with(p.into_inner(), false)),
            Err(TryLockError::WouldBlock) => {}
        }
    }

    fn check_with(&self, mut watch: MutexGuard<'_, Watch>, force: bool) -> Reload {
        if !force && watch.stamps.unchanged() {
            return Reload::Unchanged;
        }
        let snapshot = watch::snapshot(&self.path);
        watch.stamps = snapshot.stamps;
        if !force && snapshot.digest == watch.tried {
            return Reload::Unchanged;
        }
        watch.tried = snapshot.digest;
        // Read and compiled outside the calls' lock: calls go on with the old code meanwhile.
        let prepared = snapshot
            .manifest
            .and_then(|m| Next::prepare(&self.configure, m, &self.required, &self.id));
        match prepared {
            Ok(next) => {
                let (generation, old) = {
                    let mut live = lock(&self.live);
                    let old = live.swap(next);
                    self.generation.store(live.generation, Ordering::Release);
                    (live.generation, old)
                };
                // The old instance is dropped outside the lock.
                drop(old);
                *lock(&self.last_error) = None;
                tracing::info!(
                    path = %self.path.display(),
                    generation,
                    "hot reload: new code swapped in"
                );
                Reload::Swapped { generation }
            }
            Err(e) => {
                let e = Arc::new(e);
                tracing::warn!(
                    path = %self.path.display(),
                    generation = self.generation(),
                    "hot reload failed, the old code keeps running: {e}"
                );
                *lock(&self.last_error) = Some(e.clone());
                Reload::Failed(e)
            }
        }
    }
}
