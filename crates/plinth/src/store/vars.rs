//! [`Vars`]: the var store of one plug-in, with a byte cap on keys plus values.

use std::collections::BTreeMap;

use crate::Error;

/// Per-plug-in var store with a byte cap on keys plus values.
#[derive(Default, Debug, Clone)]
pub(crate) struct Vars {
    pub map: BTreeMap<String, Vec<u8>>,
    pub bytes: u64,
    /// The host changed `map` directly (`CurrentPlugin::vars_mut`): `bytes` is stale.
    pub recount: bool,
}

impl Vars {
    pub fn set(&mut self, key: String, value: Option<Vec<u8>>, limit: u64) -> Result<(), Error> {
        if self.recount {
            self.recount = false;
            self.bytes = self
                .map
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum();
        }
        let old = self.map.get(&key).map_or(0, |v| key.len() + v.len()) as u64;
        match value {
            None => {
                self.map.remove(&key);
                self.bytes -= old;
            }
            Some(v) => {
                let needed = self.bytes - old + (key.len() + v.len()) as u64;
                if needed > limit {
                    return Err(Error::VarStoreFull { needed, limit });
                }
                self.bytes = needed;
                self.map.insert(key, v);
            }
        }
        Ok(())
    }
}
