//! Extism memory's bookkeeping (`plinth::abi::memory::Arena`) and bounds rules (`load_*`,
//! `store_*`, `range`) driven by random operation sequences, checked against a simple model:
//! the live blocks in a `BTreeMap`, and a shadow copy of memory written by a plain reading
//! of the rules. The driver grows memory by whole pages within a budget, as the runtime does.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use plinth::abi::memory::{self, AllocError, Arena, Placement, MAX_BYTES, RESERVED};

const PAGE: u64 = 65536;
/// Small, so that sequences reach it.
const BUDGET_PAGES: u64 = 16;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Handle {
    /// The n-th live block (mod their count).
    Live(u8),
    /// An address inside the n-th live block.
    Inside(u8, u8),
    Raw(u64),
    Zero,
    Max,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc(u16),
    AllocLarge(u64),
    Free(Handle),
    Length(Handle),
    StoreU8(Handle, u16, u8),
    StoreU64(Handle, u16, u64),
    LoadU8(Handle, u16),
    LoadU64(Handle, u16),
    LoadWithin(Handle, u16, u16),
    Reset,
}

struct World {
    arena: Arena,
    data: Vec<u8>,
    shadow: Vec<u8>,
    /// Live blocks: handle -> length.
    live: BTreeMap<u64, u64>,
}

impl World {
    fn handle(&self, h: Handle) -> u64 {
        let nth = |i: u8| {
            (!self.live.is_empty()).then(|| {
                let (h, len) = self.live.iter().nth(i as usize % self.live.len()).unwrap();
                (*h, *len)
            })
        };
        match h {
            Handle::Live(i) => nth(i).map_or(0, |(h, _)| h),
            Handle::Inside(i, d) => nth(i).map_or(1, |(h, len)| h + 1 + d as u64 % len.max(1)),
            Handle::Raw(v) => v,
            Handle::Zero => 0,
            Handle::Max => u64::MAX,
        }
    }

    /// The bounds rule, read plainly: `len` bytes at `addr`, past the reserved bytes and
    /// inside memory, without overflow.
    fn in_bounds(&self, addr: u64, len: u64) -> bool {
        addr >= RESERVED
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.data.len() as u64)
    }

    fn alloc(&mut self, n: u64) {
        let top = (self.arena.used() + 7) & !7;
        let placed = self.arena.place(n);
        let h = match placed {
            Ok(Placement::Reused(h)) => h,
            Ok(Placement::Bump { offset, end }) => {
                assert!(end <= MAX_BYTES && end == offset + n && offset % 8 == 0);
                let pages = end.div_ceil(PAGE);
                if pages > BUDGET_PAGES {
                    // Refused growth: nothing is committed, as in the runtime.
                    return;
                }
                let size = (pages * PAGE) as usize;
                if self.data.len() < size {
                    self.data.resize(size, 0);
                    self.shadow.resize(size, 0);
                }
                self.arena.commit(offset, end);
                offset
            }
            Err(AllocError::TooLarge) => {
                assert!(
                    top.checked_add(n).is_none_or(|end| end > MAX_BYTES),
                    "{n} bytes at {top} refused as too large"
                );
                return;
            }
            Err(AllocError::Budget) => unreachable!("the arena knows no budget"),
        };
        assert!(h >= RESERVED, "handle {h} in the reserved bytes");
        assert!(!self.live.contains_key(&h), "handle {h} handed out twice");
        let end = h + n;
        assert!(
            end <= self.data.len() as u64,
            "block {h}+{n} outside memory"
        );
        // No overlap with the live blocks before or after it.
        if let Some((&p, &plen)) = self.live.range(..h).next_back() {
            assert!(p + plen <= h, "block {h}+{n} overlaps {p}+{plen}");
        }
        if let Some((&q, _)) = self.live.range(h..).next() {
            assert!(end <= q, "block {h}+{n} overlaps the block at {q}");
        }
        // The runtime zeroes new blocks; so does the model.
        self.data[h as usize..end as usize].fill(0);
        self.shadow[h as usize..end as usize].fill(0);
        self.live.insert(h, n);
        assert_eq!(self.arena.length(h), n);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Alloc(n) => {
                if n > 0 {
                    self.alloc(n as u64)
                }
            }
            Op::AllocLarge(n) => {
                if n > 0 {
                    self.alloc(n)
                }
            }
            Op::Free(h) => {
                let h = self.handle(h);
                let expected = self.live.remove(&h).is_some();
                assert_eq!(self.arena.free(h), expected, "free({h})");
                assert_eq!(self.arena.length(h), 0);
            }
            Op::Length(h) => {
                let h = self.handle(h);
                assert_eq!(
                    self.arena.length(h),
                    self.live.get(&h).copied().unwrap_or(0)
                );
            }
            Op::StoreU8(h, off, v) => {
                let addr = self.handle(h).wrapping_add(off as u64);
                memory::store_u8(&mut self.data, addr, v);
                if self.in_bounds(addr, 1) {
                    self.shadow[addr as usize] = v;
                }
            }
            Op::StoreU64(h, off, v) => {
                let addr = self.handle(h).wrapping_add(off as u64);
                memory::store_u64(&mut self.data, addr, v);
                if self.in_bounds(addr, 8) {
                    self.shadow[addr as usize..addr as usize + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            Op::LoadU8(h, off) => {
                let addr = self.handle(h).wrapping_add(off as u64);
                let want = if self.in_bounds(addr, 1) {
                    self.shadow[addr as usize]
                } else {
                    0
                };
                assert_eq!(memory::load_u8(&self.data, addr), want, "load_u8({addr})");
            }
            Op::LoadU64(h, off) => {
                let addr = self.handle(h).wrapping_add(off as u64);
                let want = if self.in_bounds(addr, 8) {
                    u64::from_le_bytes(
                        self.shadow[addr as usize..addr as usize + 8]
                            .try_into()
                            .unwrap(),
                    )
                } else {
                    0
                };
                assert_eq!(memory::load_u64(&self.data, addr), want, "load_u64({addr})");
            }
            Op::LoadWithin(h, len, off) => {
                let base = self.handle(h);
                let (len, off) = (len as u64, off as u64);
                // Up to 8 bytes of [base, base+len) from `off`, zero past the block's end;
                // nothing at all unless those bytes are in bounds.
                let mut want = [0u8; 8];
                if off < len {
                    let n = (len - off).min(8);
                    if let Some(addr) = base.checked_add(off) {
                        if self.in_bounds(addr, n) {
                            want[..n as usize]
                                .copy_from_slice(&self.shadow[addr as usize..(addr + n) as usize]);
                        }
                    }
                }
                assert_eq!(
                    memory::load_u64_within(&self.data, base, len, off),
                    u64::from_le_bytes(want),
                    "load_u64_within({base}, {len}, {off})"
                );
            }
            Op::Reset => {
                self.arena.reset();
                self.live.clear();
                assert_eq!(self.arena.used(), RESERVED);
            }
        }
        let used = self.arena.used();
        assert!(used <= self.data.len().max(RESERVED as usize) as u64);
    }

    /// Every live block lies inside memory, under the bump pointer, and reads as the model;
    /// so does all of memory. Run once per sequence: it costs a pass over memory.
    fn check_all(&self) {
        let used = self.arena.used();
        for (&h, &len) in &self.live {
            assert!(
                h + len <= used,
                "block {h}+{len} above the bump pointer {used}"
            );
            assert_eq!(
                memory::range(&self.data, h, len),
                Some(&self.shadow[h as usize..(h + len) as usize])
            );
            assert_eq!(self.arena.length(h), len);
        }
        assert!(self.data == self.shadow, "memory differs from the model");
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut w = World {
        arena: Arena::new(),
        data: Vec::new(),
        shadow: Vec::new(),
        live: BTreeMap::new(),
    };
    for op in ops {
        w.apply(op);
    }
    w.check_all();
});
