//! The plug-in that called a host function, with the methods of Extism's `CurrentPlugin`.

use std::collections::BTreeMap;

use crate::convert::{FromBytes, MemoryHandle, ToBytes};
use crate::{Error, Manifest, Val};

/// The plug-in that called a host function: its Extism memory, vars, manifest and the host
/// context of the call. Host functions get it as `&mut CurrentPlugin`.
///
/// Unlike Extism's, this type has two lifetime parameters (it borrows Plinth's view of the
/// call); written as `&mut CurrentPlugin` in a signature they are elided, so host functions
/// written for Extism compile unchanged.
pub struct CurrentPlugin<'a, 'b> {
    inner: &'a mut plinth::CurrentPlugin<'b>,
    manifest: &'a Manifest,
}

pub(crate) fn uuid_of(id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(id).expect("Plinth plug-in ids are UUIDs")
}

impl<'a, 'b> CurrentPlugin<'a, 'b> {
    pub(crate) fn new(inner: &'a mut plinth::CurrentPlugin<'b>, manifest: &'a Manifest) -> Self {
        CurrentPlugin { inner, manifest }
    }

    /// Plinth's own view of the call, for what Extism's API does not have (config values,
    /// [`is_cancelled`](plinth::CurrentPlugin::is_cancelled), ...).
    pub fn plinth(&mut self) -> &mut plinth::CurrentPlugin<'b> {
        self.inner
    }

    /// The plug-in's id, the same as [`Plugin::id`](crate::Plugin::id).
    pub fn id(&self) -> uuid::Uuid {
        uuid_of(self.inner.id())
    }

    /// The block at `offs`; `Some(MemoryHandle::null())` for offset 0, `None` when no block
    /// starts there.
    pub fn memory_handle(&mut self, offs: u64) -> Option<MemoryHandle> {
        if offs == 0 {
            return Some(MemoryHandle::null());
        }
        self.inner.memory_handle(offs).map(MemoryHandle::from)
    }

    pub fn memory_str_mut(&mut self, handle: MemoryHandle) -> Result<&mut str, Error> {
        Ok(std::str::from_utf8_mut(self.memory_bytes_mut(handle)?)?)
    }

    pub fn memory_str(&mut self, handle: MemoryHandle) -> Result<&str, Error> {
        Ok(std::str::from_utf8(self.memory_bytes(handle)?)?)
    }

    /// A new block holding `t` encoded; the null handle when it encodes to no bytes.
    pub fn memory_new<'x, T: ToBytes<'x>>(&mut self, t: T) -> Result<MemoryHandle, Error> {
        let bytes = t.to_bytes()?;
        let bytes = bytes.as_ref();
        if bytes.is_empty() {
            return Ok(MemoryHandle::null());
        }
        Ok(self.inner.memory_new(bytes)?.into())
    }

    /// Decodes a block.
    pub fn memory_get<'x, T: FromBytes<'x>>(
        &'x mut self,
        handle: MemoryHandle,
    ) -> Result<T, Error> {
        T::from_bytes(self.memory_bytes(handle)?)
    }

    /// Decodes the block whose handle a host function argument holds (0 reads as no bytes).
    pub fn memory_get_val<'x, T: FromBytes<'x>>(&'x mut self, offs: &Val) -> Result<T, Error> {
        match self.memory_handle(offs.i64().unwrap_or(0) as u64) {
            Some(handle) => T::from_bytes(self.memory_bytes(handle)?),
            None => anyhow::bail!("{} invalid memory offset: {offs:?}", self.inner.id()),
        }
    }

    /// Encodes `data` into a new block and puts its handle in `offs`, a result slot.
    pub fn memory_set_val<'x, T: ToBytes<'x>>(
        &'x mut self,
        offs: &mut Val,
        data: T,
    ) -> Result<(), Error> {
        let handle = self.memory_new(data)?;
        *offs = Val::I64(handle.offset as i64);
        Ok(())
    }

    pub fn memory_bytes_mut(&mut self, handle: MemoryHandle) -> Result<&mut [u8], Error> {
        if handle.offset == 0 && handle.length == 0 {
            return Ok(&mut []);
        }
        Ok(self.inner.memory_bytes_mut(handle.into())?)
    }

    pub fn memory_bytes(&mut self, handle: MemoryHandle) -> Result<&[u8], Error> {
        if handle.offset == 0 && handle.length == 0 {
            return Ok(&[]);
        }
        Ok(self.inner.memory_bytes(handle.into())?)
    }

    /// The value given to [`Plugin::call_with_host_context`](crate::Plugin::call_with_host_context)
    /// for this call, if it has type `T`.
    pub fn host_context<T: 'static>(&mut self) -> Result<&mut T, Error> {
        self.inner.host_context::<T>().ok_or_else(|| {
            anyhow::anyhow!(
                "this call has no host context of type {}",
                std::any::type_name::<T>()
            )
        })
    }

    /// A new block of `n` zeroed bytes; the null handle for 0.
    pub fn memory_alloc(&mut self, n: u64) -> Result<MemoryHandle, Error> {
        if n == 0 {
            return Ok(MemoryHandle::null());
        }
        Ok(self.inner.memory_alloc(n)?.into())
    }

    pub fn memory_free(&mut self, handle: MemoryHandle) -> Result<(), Error> {
        self.inner.memory_free(handle.into());
        Ok(())
    }

    /// Length of the block at `offs`, 0 when there is none.
    pub fn memory_length(&mut self, offs: u64) -> Result<u64, Error> {
        Ok(self.inner.memory_length(offs))
    }

    /// The same as [`CurrentPlugin::memory_length`]: Plinth's length is cheap either way.
    pub fn memory_length_unsafe(&mut self, offs: u64) -> Result<u64, Error> {
        self.memory_length(offs)
    }

    pub fn vars(&self) -> &BTreeMap<String, Vec<u8>> {
        self.inner.vars()
    }

    pub fn vars_mut(&mut self) -> &mut BTreeMap<String, Vec<u8>> {
        self.inner.vars_mut()
    }

    /// The manifest the plug-in was loaded from.
    pub fn manifest(&self) -> &Manifest {
        self.manifest
    }

    /// The block whose handle an i64 argument holds, if there is one.
    pub fn memory_from_val(&mut self, offs: &Val) -> Option<MemoryHandle> {
        let offs = offs.i64()? as u64;
        self.inner.memory_handle(offs).map(MemoryHandle::from)
    }

    /// The value that passes `handle` to the plug-in, for a result slot.
    pub fn memory_to_val(&mut self, handle: MemoryHandle) -> Val {
        Val::I64(handle.offset as i64)
    }

    /// Clears the error of the current call.
    pub fn clear_error(&mut self) {
        self.inner.clear_error();
    }

    /// The error message set in the current call, if any.
    pub fn get_error(&mut self) -> Option<&str> {
        let handle = self.inner.error()?;
        std::str::from_utf8(self.inner.memory_bytes(handle).ok()?).ok()
    }

    /// Sets the error of the current call; the call fails with it when the plug-in returns.
    /// Returns the offset and length of the message block.
    #[doc(hidden)]
    pub fn set_error(&mut self, s: impl AsRef<str>) -> Result<(u64, u64), Error> {
        let handle = self.inner.set_error(s.as_ref())?;
        Ok((handle.offset, handle.length))
    }

    /// Time left before the call's `timeout_ms` ends it; `None` without a timeout.
    pub fn time_remaining(&self) -> Option<std::time::Duration> {
        self.inner.time_remaining()
    }
}
