//! The plug-in's config: string values the host sets in the manifest.

use crate::{abi, Error, Memory};

/// The value of config key `key`, or `None` when it is not set.
pub fn get(key: impl AsRef<str>) -> Result<Option<String>, Error> {
    let key = Memory::from_bytes(key.as_ref())?;
    // config_get frees the key.
    let value = unsafe { abi::config_get(key.offset()) };
    let Some(mem) = Memory::find(value) else {
        return Ok(None);
    };
    let text = mem.to_string();
    mem.free();
    Ok(Some(text?))
}
