//! Extism memory: the blocks that plug-ins reach through `i64` handles.
//!
//! The bytes live in a wasm memory of the instance (fused into the plug-in by [`crate::fuse`],
//! or made by the host for modules that are not fused); this module keeps the block
//! bookkeeping and the bounds rules shared by the host functions and the fused code.
//! Handles are byte offsets. The first [`RESERVED`] bytes are never handed out, so handle 0
//! always means "null".

/// Bytes at the start of Extism memory that no block uses, so that no handle is 0. They hold
/// the current input's offset and length (little-endian u64s at 0 and 8) for fused code;
/// guests read them as 0 like any out-of-bounds address.
pub const RESERVED: u64 = 16;
/// Where, in the reserved bytes, the current input's handle is kept (for the fused kernels).
pub const INPUT_OFFSET_AT: u64 = 0;
/// Where, in the reserved bytes, the current input's length is kept.
pub const INPUT_LENGTH_AT: u64 = 8;
/// Extism memory is a 32-bit wasm memory.
pub const MAX_BYTES: u64 = 1 << 32;

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
    /// Larger than Extism memory can ever hold.
    TooLarge,
}

/// Where a new block goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A freed block is reused; the memory is big enough already.
    Reused(u64),
    /// At the bump pointer; memory must hold `end` bytes before [`Arena::commit`].
    Bump {
        /// Where the block starts.
        offset: u64,
        /// Where Extism memory's used part ends once the block is committed.
        end: u64,
    },
}

/// Block bookkeeping. Blocks are bump-allocated, so `blocks` stays sorted by offset; freed
/// blocks are reused best-fit (the smallest free block that holds the request, the lowest
/// such offset first), found in an index of free blocks by size, so that an allocation costs
/// O(log n) however many blocks a plug-in keeps (a linear scan made a plug-in's many small
/// allocations quadratic). Everything is released at once by [`Arena::reset`] before each call.
#[derive(Debug)]
pub struct Arena {
    blocks: Vec<Block>,
    /// Free blocks below the top, as (capacity, offset).
    free: std::collections::BTreeSet<(u64, u64)>,
    top: u64,
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

impl Arena {
    /// An empty arena: nothing allocated past the reserved bytes.
    pub fn new() -> Self {
        Arena {
            blocks: Vec::new(),
            free: std::collections::BTreeSet::new(),
            top: RESERVED,
        }
    }

    /// Releases every block.
    pub fn reset(&mut self) {
        self.blocks.clear();
        self.free.clear();
        self.top = RESERVED;
    }

    /// Bytes in use up to the bump pointer.
    pub fn used(&self) -> u64 {
        self.top
    }

    fn find(&self, handle: u64) -> Option<usize> {
        self.blocks.binary_search_by_key(&handle, |b| b.offset).ok()
    }

    /// Decides where `n > 0` bytes go. A reused block is taken at once; a bump placement is
    /// taken by [`Arena::commit`] once the memory is large enough.
    pub fn place(&mut self, n: u64) -> Result<Placement, AllocError> {
        debug_assert!(n > 0);
        if let Some(&(cap, offset)) = self.free.range((n, 0)..).next() {
            self.free.remove(&(cap, offset));
            let i = self.find(offset).expect("indexed free blocks exist");
            let b = &mut self.blocks[i];
            b.free = false;
            b.len = n;
            return Ok(Placement::Reused(offset));
        }
        // 8-byte alignment keeps u64 loads of whole blocks on natural boundaries.
        let offset = (self.top + 7) & !7;
        let end = offset.checked_add(n).ok_or(AllocError::TooLarge)?;
        if end > MAX_BYTES {
            return Err(AllocError::TooLarge);
        }
        Ok(Placement::Bump { offset, end })
    }

    /// Takes a bump placement.
    pub fn commit(&mut self, offset: u64, end: u64) {
        self.blocks.push(Block {
            offset,
            cap: end - offset,
            len: end - offset,
            free: false,
        });
        self.top = end;
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
                    // The top block goes back to the bump pointer, and free blocks under it too.
                    self.blocks.pop();
                    self.top = handle;
                    while let Some(last) = self.blocks.last() {
                        if !last.free {
                            break;
                        }
                        self.top = last.offset;
                        self.free.remove(&(last.cap, last.offset));
                        self.blocks.pop();
                    }
                    if self.blocks.is_empty() {
                        self.top = RESERVED;
                    }
                } else {
                    let b = &mut self.blocks[i];
                    b.free = true;
                    self.free.insert((b.cap, b.offset));
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
}

/// `len` bytes from `addr`, if that range lies inside Extism memory past the reserved bytes.
pub fn range(data: &[u8], addr: u64, len: u64) -> Option<&[u8]> {
    let end = addr.checked_add(len)?;
    if addr < RESERVED || end > data.len() as u64 {
        return None;
    }
    Some(&data[addr as usize..end as usize])
}

/// Mutable form of [`range`].
pub fn range_mut(data: &mut [u8], addr: u64, len: u64) -> Option<&mut [u8]> {
    let end = addr.checked_add(len)?;
    if addr < RESERVED || end > data.len() as u64 {
        return None;
    }
    Some(&mut data[addr as usize..end as usize])
}

#[inline]
/// `load_u8`: the byte at `addr`, or 0 outside memory or in the reserved bytes.
pub fn load_u8(data: &[u8], addr: u64) -> u8 {
    range(data, addr, 1).map_or(0, |b| b[0])
}

#[inline]
/// `load_u64`: the little-endian u64 at `addr`, or 0 when any of it is out of bounds.
pub fn load_u64(data: &[u8], addr: u64) -> u64 {
    range(data, addr, 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
}

#[inline]
/// `store_u8`: writes the byte at `addr`; out of bounds it does nothing.
pub fn store_u8(data: &mut [u8], addr: u64, v: u8) {
    if let Some(b) = range_mut(data, addr, 1) {
        b[0] = v;
    }
}

#[inline]
/// `store_u64`: writes the little-endian u64 at `addr`; out of bounds it does nothing.
pub fn store_u64(data: &mut [u8], addr: u64, v: u64) {
    if let Some(b) = range_mut(data, addr, 8) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

/// Eight bytes of the block `[base, base+len)` at relative offset `off`, zero-filled past
/// `len` so that nothing beyond the block is revealed.
#[inline]
pub fn load_u64_within(data: &[u8], base: u64, len: u64, off: u64) -> u64 {
    if off >= len {
        return 0;
    }
    let n = (len - off).min(8);
    // A base near u64::MAX must read as out of bounds, not overflow.
    let Some(bytes) = base.checked_add(off).and_then(|addr| range(data, addr, n)) else {
        return 0;
    };
    let mut buf = [0u8; 8];
    buf[..n as usize].copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(a: &mut Arena, n: u64) -> u64 {
        match a.place(n).unwrap() {
            Placement::Reused(h) => h,
            Placement::Bump { offset, end } => {
                a.commit(offset, end);
                offset
            }
        }
    }

    #[test]
    fn handles_are_never_zero_and_lengths_track_blocks() {
        let mut m = Arena::new();
        let a = alloc(&mut m, 3);
        let b = alloc(&mut m, 10);
        assert!(a >= RESERVED && b > a);
        assert_eq!(b % 8, 0);
        assert_eq!(m.length(a), 3);
        assert_eq!(m.length(b), 10);
        assert_eq!(m.length(a + 1), 0, "inside a block is not a block");
        assert_eq!(m.length(0), 0);
    }

    #[test]
    fn freed_blocks_are_reused() {
        let mut m = Arena::new();
        let a = alloc(&mut m, 16);
        let _b = alloc(&mut m, 16);
        assert!(m.free(a));
        assert!(!m.free(a), "double free is ignored");
        assert_eq!(m.length(a), 0);
        assert_eq!(m.place(8).unwrap(), Placement::Reused(a));
        assert_eq!(m.length(a), 8);
    }

    #[test]
    fn reuse_takes_the_smallest_free_block_that_fits() {
        // Found in the index by size, not by scanning every block in address order (which
        // made a plug-in holding many blocks quadratic): the 64-byte hole stays for later.
        let mut m = Arena::new();
        let big = alloc(&mut m, 64);
        let _keep1 = alloc(&mut m, 8);
        let small = alloc(&mut m, 16);
        let _keep2 = alloc(&mut m, 8);
        assert!(m.free(big) && m.free(small));
        assert_eq!(m.place(10).unwrap(), Placement::Reused(small));
        assert_eq!(m.place(40).unwrap(), Placement::Reused(big));
        assert!(
            matches!(m.place(8).unwrap(), Placement::Bump { .. }),
            "no free block is left"
        );
    }

    #[test]
    fn freeing_the_top_block_lowers_the_bump_pointer() {
        let mut m = Arena::new();
        let a = alloc(&mut m, 100);
        let b = alloc(&mut m, 100);
        m.free(a);
        m.free(b);
        assert_eq!(m.used(), RESERVED);
        assert_eq!(alloc(&mut m, 5), a);
    }

    #[test]
    fn bounds_rules() {
        let mut data = vec![0u8; 64];
        store_u64(&mut data, 16, 0x0102030405060708);
        assert_eq!(load_u8(&data, 16), 8);
        assert_eq!(load_u64(&data, 16), 0x0102030405060708);
        assert_eq!(load_u64(&data, 8), 0, "the reserved bytes read as zero");
        assert_eq!(load_u64(&data, 57), 0, "would cross the end");
        assert_eq!(load_u64(&data, 56), 0);
        assert_eq!(load_u64(&data, u64::MAX), 0);
        assert_eq!(load_u8(&data, u64::MAX), 0);
        store_u64(&mut data, u64::MAX - 3, 1);
        store_u8(&mut data, 0, 1);
        assert_eq!(data[0], 0, "the reserved bytes are never written");
        assert_eq!(m_place_too_large(), AllocError::TooLarge);
    }

    fn m_place_too_large() -> AllocError {
        Arena::new().place(MAX_BYTES).unwrap_err()
    }

    #[test]
    fn relative_loads_zero_fill_past_the_block() {
        let mut data = vec![0u8; 64];
        data[16..26].copy_from_slice(b"abcdefghij");
        data[26..34].copy_from_slice(b"SECRETSS");
        assert_eq!(
            load_u64_within(&data, 16, 10, 0),
            u64::from_le_bytes(*b"abcdefgh")
        );
        assert_eq!(
            load_u64_within(&data, 16, 10, 8),
            u64::from_le_bytes([b'i', b'j', 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(load_u64_within(&data, 16, 10, 10), 0);
    }

    #[test]
    fn relative_loads_from_a_base_near_the_top_read_zero() {
        // Found by the abi_model fuzz target: base + off overflowed.
        let data = vec![7u8; 64];
        assert_eq!(load_u64_within(&data, u64::MAX, 16, 1), 0);
        assert_eq!(load_u64_within(&data, u64::MAX - 3, 16, 8), 0);
    }
}
