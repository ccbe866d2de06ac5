//! `Pool`: plug-in instances made on demand up to a bound and lent to one caller at a time,
//! with Extism's API.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::convert::{FromBytesOwned, ToBytes};
use crate::{Error, Plugin};

/// Configures a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    /// How many instances may exist at once; by default the number of CPUs.
    pub max_instances: usize,
}

impl PoolBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_max_instances(mut self, n: usize) -> Self {
        self.max_instances = n;
        self
    }

    /// A pool whose instances `source` makes.
    pub fn build<F: 'static + Fn() -> Result<Plugin, Error> + Send + Sync>(
        self,
        source: F,
    ) -> Pool {
        Pool::new_from_builder(source, self)
    }
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            max_instances: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

type Source = dyn Fn() -> Result<Plugin, Error> + Send + Sync;

struct Shared {
    source: Box<Source>,
    max: usize,
    state: Mutex<State>,
    /// Signalled when an instance comes back or a slot frees up.
    returned: Condvar,
    exists: RwLock<HashMap<String, bool>>,
}

struct State {
    idle: Vec<Plugin>,
    /// Instances made and not dropped, lent or idle, plus ones being made.
    count: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Instances of one plug-in for many threads: [`Pool::get`] lends one, made on demand up to
/// `max_instances`, and waits (up to a timeout) when all are lent. Clones share the pool.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool with the default [`PoolBuilder`].
    pub fn new<F: 'static + Fn() -> Result<Plugin, Error> + Send + Sync>(source: F) -> Self {
        Self::new_from_builder(source, PoolBuilder::default())
    }

    pub fn new_from_builder<F: 'static + Fn() -> Result<Plugin, Error> + Send + Sync>(
        source: F,
        builder: PoolBuilder,
    ) -> Self {
        Pool {
            shared: Arc::new(Shared {
                source: Box::new(source),
                max: builder.max_instances,
                state: Mutex::new(State {
                    idle: Vec::new(),
                    count: 0,
                }),
                returned: Condvar::new(),
                exists: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// How many instances exist, lent or idle.
    pub fn count(&self) -> usize {
        self.shared.state().count
    }

    /// Lends an instance: an idle one, else a new one if the pool is below its bound, else the
    /// first one given back within `timeout`. `Ok(None)` when the wait timed out; `Err` when
    /// making an instance failed.
    pub fn get(&self, timeout: Duration) -> Result<Option<PoolPlugin>, Error> {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        let mut state = shared.state();
        loop {
            if let Some(plugin) = state.idle.pop() {
                return Ok(Some(self.lend(plugin)));
            }
            if state.count < shared.max {
                state.count += 1;
                drop(state);
                // Made outside the lock: compiling may take a while, and other callers may
                // meanwhile take instances given back.
                return match (shared.source)() {
                    Ok(plugin) => Ok(Some(self.lend(plugin))),
                    Err(e) => {
                        shared.state().count -= 1;
                        shared.returned.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            state = shared
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lend(&self, plugin: Plugin) -> PoolPlugin {
        PoolPlugin {
            plugin: Some(plugin),
            pool: Arc::downgrade(&self.shared),
        }
    }

    /// Runs `f` on a lent instance; `Ok(None)` when none was free within `timeout`.
    pub fn with_plugin<T>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Plugin) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self.get(timeout)? {
            Some(mut plugin) => f(&mut plugin).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the plug-in exports `name` (remembered after the first answer). `Ok(false)` also
    /// when no instance was free within `timeout` to ask.
    pub fn function_exists(&self, name: &str, timeout: Duration) -> Result<bool, Error> {
        let known = self
            .shared
            .exists
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(exists) = known.get(name) {
            return Ok(*exists);
        }
        drop(known);
        let Some(plugin) = self.get(timeout)? else {
            return Ok(false);
        };
        let exists = plugin.function_exists(name);
        self.shared
            .exists
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), exists);
        Ok(exists)
    }
}

/// An instance lent by a [`Pool`]; it goes back to the pool when dropped. Derefs to
/// [`Plugin`].
pub struct PoolPlugin {
    /// `Some` until dropped.
    plugin: Option<Plugin>,
    /// Weak, so that dropping the pool while instances are lent frees it.
    pool: Weak<Shared>,
}

impl std::fmt::Debug for PoolPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolPlugin")
            .field("plugin", &self.plugin.as_ref().map(|p| p.id))
            .finish()
    }
}

impl PoolPlugin {
    /// Calls `name`; the output is decoded into an owned value, since the instance goes back.
    pub fn call<'a, Input: ToBytes<'a>, Output: FromBytesOwned>(
        &mut self,
        name: impl AsRef<str>,
        input: Input,
    ) -> Result<Output, Error> {
        let plugin: &mut Plugin = self;
        plugin.call(name, input)
    }

    pub fn id(&self) -> uuid::Uuid {
        let plugin: &Plugin = self;
        plugin.id
    }
}

impl std::ops::Deref for PoolPlugin {
    type Target = Plugin;
    fn deref(&self) -> &Plugin {
        self.plugin
            .as_ref()
            .expect("a lent plug-in is present until dropped")
    }
}

impl std::ops::DerefMut for PoolPlugin {
    fn deref_mut(&mut self) -> &mut Plugin {
        self.plugin
            .as_mut()
            .expect("a lent plug-in is present until dropped")
    }
}

impl Drop for PoolPlugin {
    fn drop(&mut self) {
        let (Some(plugin), Some(pool)) = (self.plugin.take(), self.pool.upgrade()) else {
            return;
        };
        pool.state().idle.push(plugin);
        pool.returned.notify_one();
    }
}
