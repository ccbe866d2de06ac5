//! Sharing one plug-in between threads.
//!
//! - [`guard::Holding`]: marks that this thread holds a plug-in, so that a host function that
//!   calls back into the plug-in that called it fails with `Error::Reentrant` instead of
//!   waiting for itself for ever. The one re-entrancy guard; both sharing types and `HotPlugin` use it.
//! - [`SharedPlugin`]: one instance behind a lock, with `with` (wait), `try_with` (don't) and
//!   `close`. The primitive that the C API and the Node and Python SDKs build on.
//! - [`PluginPool`]: many instances of one compiled plug-in, for calls on many threads at once.

pub(crate) mod guard;
mod pool;
mod shared;

pub use pool::{PluginPool, MAX_POOL_INSTANCES};
pub use shared::SharedPlugin;
