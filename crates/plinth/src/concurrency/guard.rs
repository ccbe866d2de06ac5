//! The re-entrancy guard shared by [`SharedPlugin`](super::SharedPlugin),
//! [`PluginPool`](super::PluginPool) and [`HotPlugin`](crate::reload::HotPlugin).

use std::cell::RefCell;

use crate::Error;

thread_local! {
    /// The plug-ins (by address of their shared state) this thread holds now.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Proof that this thread holds the plug-in `key` until dropped.
pub(crate) struct Holding(usize);

impl Holding {
    /// Fails with [`Error::Reentrant`] if this thread holds `key` already: waiting for it
    /// would wait for ever.
    pub(crate) fn check(key: usize) -> Result<(), Error> {
        Self::check_call(key, "")
    }

    /// [`Holding::check`] for a call of `function`, which the error names.
    pub(crate) fn check_call(key: usize, function: &str) -> Result<(), Error> {
        if HELD.with(|h| h.borrow().contains(&key)) {
            return Err(Error::Reentrant {
                function: function.to_string(),
            });
        }
        Ok(())
    }

    /// Records that this thread now holds `key`.
    pub(crate) fn enter(key: usize) -> Holding {
        HELD.with(|h| h.borrow_mut().push(key));
        Holding(key)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|k| *k == self.0) {
                h.remove(i);
            }
        });
    }
}
