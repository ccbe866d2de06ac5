//! Blocks of Extism memory, the place where data crosses to and from the host.

use anyhow::anyhow;
use plinth_convert::{FromBytesOwned, ToBytes};

use crate::{abi, Error};

/// A handle to a block of Extism memory: its offset and length.
///
/// Blocks live until freed or until the current call ends, whichever is first. A `Memory` is
/// a plain handle: copying it does not copy the block, and dropping it does not free it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Memory {
    offset: u64,
    len: u64,
}

impl Memory {
    /// The null handle: no block, no bytes.
    pub const fn null() -> Memory {
        Memory { offset: 0, len: 0 }
    }

    /// A new block of `len` bytes. An empty block is the null handle.
    pub fn alloc(len: u64) -> Result<Memory, Error> {
        if len == 0 {
            return Ok(Memory::null());
        }
        let offset = unsafe { abi::alloc(len) };
        if offset == 0 {
            return Err(anyhow!(
                "cannot allocate {len} bytes of Extism memory: the plug-in's memory budget is used up"
            ));
        }
        Ok(Memory { offset, len })
    }

    /// A new block holding `value` encoded.
    pub fn new<'a, T: ToBytes<'a>>(value: &T) -> Result<Memory, Error> {
        let bytes = value.to_bytes()?;
        Memory::from_bytes(bytes)
    }

    /// A new block holding these bytes.
    pub fn from_bytes(data: impl AsRef<[u8]>) -> Result<Memory, Error> {
        let data = data.as_ref();
        #[cfg(feature = "bulk-copy")]
        if !data.is_empty() {
            // Written in full just below, so the block need not be cleared first.
            let len = data.len() as u64;
            let offset = unsafe { abi::alloc_uninit(len) };
            if offset == 0 {
                return Err(anyhow!(
                    "cannot allocate {len} bytes of Extism memory: the plug-in's memory budget is used up"
                ));
            }
            let mem = Memory { offset, len };
            mem.store(data);
            return Ok(mem);
        }
        let mem = Memory::alloc(data.len() as u64)?;
        mem.store(data);
        Ok(mem)
    }

    /// The block that starts at `offset`, if it is an allocated block.
    pub fn find(offset: u64) -> Option<Memory> {
        if offset == 0 {
            return None;
        }
        let len = unsafe { abi::length(offset) };
        (len > 0).then_some(Memory { offset, len })
    }

    /// The part of the block from byte `start` on (empty when `start` is past its end).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn tail(&self, start: u64) -> Memory {
        let start = start.min(self.len);
        Memory {
            offset: self.offset + start,
            len: self.len - start,
        }
    }

    /// The handle as the ABI sees it.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The block's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the block has no bytes (the null handle).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Releases the block. Handles that the host took over (output, error, arguments of
    /// `var::set`, logs, ...) must not be freed again.
    pub fn free(self) {
        if self.offset != 0 {
            unsafe { abi::free(self.offset) }
        }
    }

    /// Copies the block's first `buf.len()` bytes into `buf` (at most the block's length).
    pub fn load(&self, buf: &mut [u8]) {
        let n = buf.len().min(self.len as usize);
        #[cfg(feature = "bulk-copy")]
        unsafe {
            abi::read(self.offset, buf.as_mut_ptr(), n as u32)
        };
        #[cfg(not(feature = "bulk-copy"))]
        read_into(
            &mut buf[..n],
            self.offset,
            |a| unsafe { abi::load_u64(a) },
            |a| unsafe { abi::load_u8(a) },
        );
    }

    /// Writes `data` at the start of the block (at most the block's length).
    pub fn store(&self, data: impl AsRef<[u8]>) {
        let data = data.as_ref();
        let data = &data[..data.len().min(self.len as usize)];
        #[cfg(feature = "bulk-copy")]
        {
            unsafe { abi::write(self.offset, data.as_ptr(), data.len() as u32) };
            return;
        }
        #[allow(unreachable_code)]
        let mut chunks = data.chunks_exact(8);
        let mut addr = self.offset;
        for chunk in chunks.by_ref() {
            let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
            unsafe { abi::store_u64(addr, word) };
            addr += 8;
        }
        for &b in chunks.remainder() {
            unsafe { abi::store_u8(addr, b) };
            addr += 1;
        }
    }

    /// The block's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        #[cfg(feature = "bulk-copy")]
        {
            // No zeroing first: the copy fills every byte (or traps).
            let n = self.len as usize;
            let mut buf = Vec::with_capacity(n);
            unsafe {
                abi::read(self.offset, buf.as_mut_ptr(), n as u32);
                buf.set_len(n);
            }
            buf
        }
        #[cfg(not(feature = "bulk-copy"))]
        {
            let mut buf = vec![0; self.len as usize];
            self.load(&mut buf);
            buf
        }
    }

    /// The block as UTF-8 text.
    pub fn to_string(&self) -> Result<String, Error> {
        Ok(String::from_utf8(self.to_vec())?)
    }

    /// Decodes the block.
    pub fn to<T: FromBytesOwned>(&self) -> Result<T, Error> {
        Ok(T::from_bytes_owned(&self.to_vec())?)
    }
}

/// Fills `buf` from `base` with the 8-byte loads of the ABI, then single bytes for the tail.
#[cfg_attr(feature = "bulk-copy", allow(dead_code))]
pub(crate) fn read_into(
    buf: &mut [u8],
    base: u64,
    load_u64: impl Fn(u64) -> u64,
    load_u8: impl Fn(u64) -> u8,
) {
    let mut chunks = buf.chunks_exact_mut(8);
    let mut addr = base;
    for chunk in chunks.by_ref() {
        chunk.copy_from_slice(&load_u64(addr).to_le_bytes());
        addr += 8;
    }
    for b in chunks.into_remainder() {
        *b = load_u8(addr);
        addr += 1;
    }
}

/// Values that can be put in Extism memory: anything [`ToBytes`], and [`Memory`] itself
/// (which is passed as it is, without a copy).
pub trait ToMemory {
    /// The block holding the value.
    fn to_memory(&self) -> Result<Memory, Error>;

    /// Whether [`ToMemory::to_memory`] makes a new block that the caller owns.
    #[doc(hidden)]
    fn allocates(&self) -> bool {
        true
    }
}

impl<'a, T: ToBytes<'a>> ToMemory for T {
    fn to_memory(&self) -> Result<Memory, Error> {
        Memory::new(self)
    }
}

impl ToMemory for Memory {
    fn to_memory(&self) -> Result<Memory, Error> {
        Ok(*self)
    }
    fn allocates(&self) -> bool {
        false
    }
}

impl ToMemory for &Memory {
    fn to_memory(&self) -> Result<Memory, Error> {
        Ok(**self)
    }
    fn allocates(&self) -> bool {
        false
    }
}

/// Values that can be read from a block the host returned: anything [`FromBytesOwned`], and
/// [`Memory`] itself (the handle, unread).
pub trait FromMemory: Sized {
    /// Reads the value; a 0 handle reads as empty bytes.
    fn from_memory(handle: u64) -> Result<Self, Error>;

    /// Whether the block can be freed once read.
    #[doc(hidden)]
    fn consumes() -> bool {
        true
    }
}

impl<T: FromBytesOwned> FromMemory for T {
    fn from_memory(handle: u64) -> Result<T, Error> {
        let bytes = Memory::find(handle).map(|m| m.to_vec()).unwrap_or_default();
        Ok(T::from_bytes_owned(&bytes)?)
    }
}

impl FromMemory for Memory {
    fn from_memory(handle: u64) -> Result<Memory, Error> {
        Ok(Memory::find(handle).unwrap_or(Memory::null()))
    }
    fn consumes() -> bool {
        false
    }
}
