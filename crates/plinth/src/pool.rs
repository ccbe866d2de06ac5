//! Calls from many threads on one plug-in without a caller managing instances: a pool of
//! instances of one compiled plug-in that grows on demand up to a bound.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::{CompiledPlugin, Error, Plugin, Result, ToBytes};

/// A pool of instances of one [`CompiledPlugin`]. Cheap to clone; every clone shares the pool.
///
/// A call takes a free instance, or makes a new one while the pool holds fewer than its bound,
/// or else waits until one is free. It never waits while an instance is free. Each instance
/// has its own memory and vars (a var set by a call is seen only by later calls that happen to
/// get the same instance); all share the compiled plug-in's config. An instance costs its
/// linear memory plus a few KiB of bookkeeping, and stays in the pool once made.
#[derive(Clone)]
pub struct PluginPool {
    inner: Arc<Inner>,
}

struct Inner {
    compiled: CompiledPlugin,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Plugin>,
    /// Instances in the pool, idle or lent out (or being made).
    live: usize,
}

thread_local! {
    /// Pools this thread has an instance of, to refuse re-entrant calls from host functions.
    static HOLDING: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl PluginPool {
    /// A pool of at most `max_instances` instances (at least 1); none are made until needed.
    pub fn new(compiled: CompiledPlugin, max_instances: usize) -> Self {
        PluginPool {
            inner: Arc::new(Inner {
                compiled,
                max: max_instances.max(1),
                state: Mutex::new(State {
                    idle: Vec::new(),
                    live: 0,
                }),
                freed: Condvar::new(),
            }),
        }
    }

    /// Calls `function` on a free instance and returns its output.
    pub fn call<'a, I: ToBytes<'a>>(&self, function: &str, input: I) -> Result<Vec<u8>> {
        self.with(function, |p| {
            p.call::<I, &[u8]>(function, input).map(<[u8]>::to_vec)
        })
    }

    /// Runs `f` with an instance of its own. A host function that calls back into the same
    /// pool gets [`Error::Reentrant`]: with every instance busy it would wait for ever.
    pub fn with<R>(&self, function: &str, f: impl FnOnce(&mut Plugin) -> Result<R>) -> Result<R> {
        let key = Arc::as_ptr(&self.inner) as usize;
        if HOLDING.with(|h| h.borrow().contains(&key)) {
            return Err(Error::Reentrant {
                function: function.to_string(),
            });
        }
        let mut lent = self.take()?;
        HOLDING.with(|h| h.borrow_mut().push(key));
        let _holding = Holding(key);
        f(lent.plugin.as_mut().expect("a lent instance is present"))
    }

    /// How many instances the pool holds now.
    pub fn instances(&self) -> usize {
        self.state().live
    }

    /// The bound on instances.
    pub fn max_instances(&self) -> usize {
        self.inner.max
    }

    pub fn compiled(&self) -> &CompiledPlugin {
        &self.inner.compiled
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Result<Lent<'_>> {
        let mut state = self.state();
        loop {
            if let Some(plugin) = state.idle.pop() {
                return Ok(Lent {
                    pool: self,
                    plugin: Some(plugin),
                });
            }
            if state.live < self.inner.max {
                state.live += 1;
                drop(state);
                // Instantiated outside the lock, so that other callers are not held up.
                return match self.inner.compiled.instantiate() {
                    Ok(plugin) => Ok(Lent {
                        pool: self,
                        plugin: Some(plugin),
                    }),
                    Err(e) => {
                        self.state().live -= 1;
                        self.inner.freed.notify_one();
                        Err(e)
                    }
                };
            }
            state = self
                .inner
                .freed
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// An instance lent to one call; back to the pool when dropped.
struct Lent<'a> {
    pool: &'a PluginPool,
    plugin: Option<Plugin>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(plugin) = self.plugin.take() {
            self.pool.state().idle.push(plugin);
            self.pool.inner.freed.notify_one();
        }
    }
}

struct Holding(usize);

impl Drop for Holding {
    fn drop(&mut self) {
        HOLDING.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|k| *k == self.0) {
                h.remove(i);
            }
        });
    }
}
