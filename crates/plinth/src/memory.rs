//! Extism memory: the block arena that plug-ins reach through `i64` handles.
//!
//! It lives on the host side (not in a wasm kernel module), so every ABI import is a direct
//! native call on a `Vec<u8>`; see ARCHITECTURE.md for the measurement behind that choice.
//! Handles are byte offsets into the arena. The first [`RESERVED`] bytes are never handed out,
//! so handle 0 always means "null".

/// Bytes at the start of the arena that no block uses, so that no handle is 0.
pub const RESERVED: u64 = 8;
/// The arena never grows past this (handles stay far from overflow).
pub const MAX_ARENA_BYTES: u64 = 4 << 30;
/// After a call used more than this, the arena gives its buffer back at the next reset.
const KEEP_CAPACITY: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    offset: u64,
    cap: u64,
    len: u64,
    free: bool,
}

/// Why an allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    /// The memory budget (`memory.max_pages`) would be exceeded.
    Budget,
    /// Larger than the arena can ever hold.
    TooLarge,
}

/// The arena. Blocks are bump-allocated, so `blocks` stays sorted by offset; freed blocks are
/// reused first-fit. Everything is released at once by [`ExtismMemory::reset`] before each call.
#[derive(Debug)]
pub struct ExtismMemory {
    data: Vec<u8>,
    blocks: Vec<Block>,
    free_blocks: usize,
}

impl Default for ExtismMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtismMemory {
    pub fn new() -> Self {
        ExtismMemory {
            data: vec![0; RESERVED as usize],
            blocks: Vec::new(),
            free_blocks: 0,
        }
    }

    /// Bytes the arena holds now (what counts against the memory budget).
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// All of the arena, including the reserved prefix.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Releases every block. Keeps the buffer unless the last call made it large.
    pub fn reset(&mut self) {
        self.blocks.clear();
        self.free_blocks = 0;
        self.data.truncate(RESERVED as usize);
        if self.data.capacity() > KEEP_CAPACITY {
            self.data.shrink_to(KEEP_CAPACITY);
        }
    }

    fn find(&self, handle: u64) -> Option<usize> {
        self.blocks.binary_search_by_key(&handle, |b| b.offset).ok()
    }

    /// Allocates `n` bytes. `budget` says whether the arena may grow to a given total size.
    /// Returns the handle, or `Ok(0)` for `n == 0`.
    pub fn alloc(
        &mut self,
        n: u64,
        budget: impl FnOnce(u64) -> bool,
    ) -> Result<u64, AllocError> {
        if n == 0 {
            return Ok(0);
        }
        if self.free_blocks > 0 {
            if let Some(b) = self.blocks.iter_mut().find(|b| b.free && b.cap >= n) {
                b.free = false;
                b.len = n;
                self.free_blocks -= 1;
                let start = b.offset as usize;
                // A reused block must not show the previous owner's bytes.
                self.data[start..start + n as usize].fill(0);
                return Ok(b.offset);
            }
        }
        let offset = self.bump_offset();
        let end = offset.checked_add(n).ok_or(AllocError::TooLarge)?;
        if end > MAX_ARENA_BYTES {
            return Err(AllocError::TooLarge);
        }
        if !budget(end) {
            return Err(AllocError::Budget);
        }
        self.data.resize(end as usize, 0);
        self.blocks.push(Block {
            offset,
            cap: n,
            len: n,
            free: false,
        });
        Ok(offset)
    }

    /// Allocates a block holding a copy of `bytes` (one copy, no zero-fill first).
    pub fn alloc_bytes(
        &mut self,
        bytes: &[u8],
        budget: impl FnOnce(u64) -> bool,
    ) -> Result<u64, AllocError> {
        let n = bytes.len() as u64;
        if n == 0 {
            return Ok(0);
        }
        if self.free_blocks == 0 {
            let offset = self.bump_offset();
            let end = offset.checked_add(n).ok_or(AllocError::TooLarge)?;
            if end > MAX_ARENA_BYTES {
                return Err(AllocError::TooLarge);
            }
            if !budget(end) {
                return Err(AllocError::Budget);
            }
            self.data.resize(offset as usize, 0);
            self.data.extend_from_slice(bytes);
            self.blocks.push(Block {
                offset,
                cap: n,
                len: n,
                free: false,
            });
            return Ok(offset);
        }
        let h = self.alloc(n, budget)?;
        self.data[h as usize..(h + n) as usize].copy_from_slice(bytes);
        Ok(h)
    }

    fn bump_offset(&self) -> u64 {
        // 8-byte alignment keeps u64 loads of whole blocks on natural boundaries.
        (self.data.len() as u64 + 7) & !7
    }

    /// Frees the block at `handle`. Unknown handles and 0 are ignored; returns whether a block
    /// was freed.
    pub fn free(&mut self, handle: u64) -> bool {
        if handle == 0 {
            return false;
        }
        match self.find(handle) {
            Some(i) if !self.blocks[i].free => {
                if i + 1 == self.blocks.len() {
                    // The top block goes back to the bump pointer.
                    self.blocks.pop();
                    self.data.truncate(handle as usize);
                    while let Some(last) = self.blocks.last() {
                        if !last.free {
                            break;
                        }
                        self.data.truncate(last.offset as usize);
                        self.blocks.pop();
                        self.free_blocks -= 1;
                    }
                } else {
                    self.blocks[i].free = true;
                    self.free_blocks += 1;
                }
                true
            }
            _ => false,
        }
    }

    /// Used length of the active block starting at `handle`, or 0.
    pub fn length(&self, handle: u64) -> u64 {
        match self.find(handle) {
            Some(i) if !self.blocks[i].free => self.blocks[i].len,
            _ => 0,
        }
    }

    /// The bytes of the active block at `handle`, if any.
    pub fn block(&self, handle: u64) -> Option<&[u8]> {
        let i = self.find(handle)?;
        let b = self.blocks[i];
        if b.free {
            return None;
        }
        Some(&self.data[b.offset as usize..(b.offset + b.len) as usize])
    }

    /// Mutable bytes of the active block at `handle`, if any.
    pub fn block_mut(&mut self, handle: u64) -> Option<&mut [u8]> {
        let i = self.find(handle)?;
        let b = self.blocks[i];
        if b.free {
            return None;
        }
        Some(&mut self.data[b.offset as usize..(b.offset + b.len) as usize])
    }

    /// `len` bytes from `addr`, if that range lies inside the arena.
    pub fn range(&self, addr: u64, len: u64) -> Option<&[u8]> {
        let end = addr.checked_add(len)?;
        if addr < RESERVED || end > self.data.len() as u64 {
            return None;
        }
        Some(&self.data[addr as usize..end as usize])
    }

    #[inline]
    pub fn load_u8(&self, addr: u64) -> u8 {
        if addr < RESERVED {
            return 0;
        }
        self.data.get(addr as usize).copied().unwrap_or(0)
    }

    #[inline]
    pub fn load_u64(&self, addr: u64) -> u64 {
        if addr < RESERVED {
            return 0;
        }
        match self.data.get(addr as usize..(addr as usize).wrapping_add(8)) {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
            None => 0,
        }
    }

    #[inline]
    pub fn store_u8(&mut self, addr: u64, v: u8) {
        if addr >= RESERVED {
            if let Some(b) = self.data.get_mut(addr as usize) {
                *b = v;
            }
        }
    }

    #[inline]
    pub fn store_u64(&mut self, addr: u64, v: u64) {
        if addr < RESERVED {
            return;
        }
        if let Some(b) = self
            .data
            .get_mut(addr as usize..(addr as usize).wrapping_add(8))
        {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Eight bytes of the block `[base, base+len)` at relative offset `off`, zero-filled past
    /// `len` so that nothing beyond the block is revealed.
    #[inline]
    pub fn load_u64_within(&self, base: u64, len: u64, off: u64) -> u64 {
        if off >= len {
            return 0;
        }
        let start = (base + off) as usize;
        if off + 8 <= len {
            return u64::from_le_bytes(self.data[start..start + 8].try_into().unwrap());
        }
        let mut buf = [0u8; 8];
        let n = (len - off) as usize;
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        u64::from_le_bytes(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: u64) -> bool {
        true
    }

    #[test]
    fn handles_are_never_zero_and_lengths_track_blocks() {
        let mut m = ExtismMemory::new();
        assert_eq!(m.alloc(0, any), Ok(0));
        let a = m.alloc(3, any).unwrap();
        let b = m.alloc(10, any).unwrap();
        assert!(a >= RESERVED && b > a);
        assert_eq!(b % 8, 0);
        assert_eq!(m.length(a), 3);
        assert_eq!(m.length(b), 10);
        assert_eq!(m.length(a + 1), 0, "inside a block is not a block");
        assert_eq!(m.length(0), 0);
    }

    #[test]
    fn freed_blocks_are_reused_and_zeroed() {
        let mut m = ExtismMemory::new();
        let a = m.alloc(16, any).unwrap();
        let _b = m.alloc(16, any).unwrap();
        m.store_u64(a, u64::MAX);
        assert!(m.free(a));
        assert!(!m.free(a), "double free is ignored");
        assert_eq!(m.length(a), 0);
        let c = m.alloc(8, any).unwrap();
        assert_eq!(c, a);
        assert_eq!(m.load_u64(c), 0);
        assert_eq!(m.length(c), 8);
    }

    #[test]
    fn freeing_the_top_block_shrinks_the_arena() {
        let mut m = ExtismMemory::new();
        let a = m.alloc(100, any).unwrap();
        let b = m.alloc(100, any).unwrap();
        m.free(a);
        m.free(b);
        assert_eq!(m.size(), RESERVED);
        assert_eq!(m.alloc(5, any).unwrap(), a);
    }

    #[test]
    fn loads_and_stores_out_of_bounds_are_harmless() {
        let mut m = ExtismMemory::new();
        let a = m.alloc(8, any).unwrap();
        m.store_u64(a, 0x0102030405060708);
        assert_eq!(m.load_u8(a), 8);
        assert_eq!(m.load_u64(a), 0x0102030405060708);
        assert_eq!(m.load_u64(a + 1), 0, "would cross the end");
        assert_eq!(m.load_u64(u64::MAX), 0);
        assert_eq!(m.load_u8(u64::MAX), 0);
        m.store_u64(u64::MAX - 3, 1);
        m.store_u8(1 << 40, 1);
        m.store_u8(0, 1);
        assert_eq!(m.load_u8(0), 0);
    }

    #[test]
    fn budget_refusal_leaves_the_arena_unchanged() {
        let mut m = ExtismMemory::new();
        assert_eq!(m.alloc(1 << 20, |end| end < 1000), Err(AllocError::Budget));
        assert_eq!(m.size(), RESERVED);
        assert_eq!(m.alloc(u64::MAX, any), Err(AllocError::TooLarge));
        assert_eq!(m.alloc(MAX_ARENA_BYTES, any), Err(AllocError::TooLarge));
    }

    #[test]
    fn relative_loads_zero_fill_past_the_block() {
        let mut m = ExtismMemory::new();
        let a = m.alloc_bytes(b"abcdefghij", any).unwrap();
        let _guard = m.alloc_bytes(b"SECRETSS", any).unwrap();
        assert_eq!(m.load_u64_within(a, 10, 0), u64::from_le_bytes(*b"abcdefgh"));
        assert_eq!(
            m.load_u64_within(a, 10, 8),
            u64::from_le_bytes([b'i', b'j', 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(m.load_u64_within(a, 10, 10), 0);
        assert_eq!(m.block(a), Some(&b"abcdefghij"[..]));
    }

    #[test]
    fn reset_releases_everything() {
        let mut m = ExtismMemory::new();
        let a = m.alloc(1 << 23, any).unwrap();
        m.reset();
        assert_eq!(m.length(a), 0);
        assert_eq!(m.size(), RESERVED);
        assert!(m.data.capacity() <= KEEP_CAPACITY);
    }
}
