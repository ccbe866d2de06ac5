//! Vars: values the plug-in keeps across calls, stored by the host.

use crate::{abi, Error, FromBytesOwned, Memory, ToMemory};

/// The var `key`, decoded, or `None` when it is not set.
pub fn get<T: FromBytesOwned>(key: impl AsRef<str>) -> Result<Option<T>, Error> {
    let key = Memory::from_bytes(key.as_ref())?;
    // var_get frees the key.
    let value = unsafe { abi::var_get(key.offset()) };
    let Some(mem) = Memory::find(value) else {
        return Ok(None);
    };
    let bytes = mem.to_vec();
    mem.free();
    Ok(Some(T::from_bytes_owned(&bytes)?))
}

/// Sets the var `key` to `value` encoded. The host takes (and frees) the value's block, so a
/// [`Memory`] passed here must not be used again.
pub fn set(key: impl AsRef<str>, value: impl ToMemory) -> Result<(), Error> {
    let value = value.to_memory()?;
    let key = Memory::from_bytes(key.as_ref())?;
    unsafe { abi::var_set(key.offset(), value.offset()) };
    Ok(())
}

/// Removes the var `key`.
pub fn remove(key: impl AsRef<str>) -> Result<(), Error> {
    let key = Memory::from_bytes(key.as_ref())?;
    unsafe { abi::var_set(key.offset(), 0) };
    Ok(())
}
