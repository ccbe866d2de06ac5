//! [`Limiter`]: the memory and table budget of one instance, with Extism's accounting.

use wasmtime::ResourceLimiter;

pub(crate) const PAGE: u64 = 65536;
/// The most one memory may hold, 32- or 64-bit, with or without a budget: 4 GiB. It is also
/// the address space wasmtime reserves for a memory on 64-bit hosts, so no memory outgrows its
/// reservation: growing past it makes wasmtime move the memory and copy it whole, which
/// commits all of it at once.
pub(crate) const MAX_MEMORY_BYTES: u64 = 4 << 30;
/// The most elements all tables of an instance may hold together.
pub(crate) const MAX_TABLE_ELEMENTS: u64 = 1 << 20;
/// What one table element counts for against a memory budget: a function reference's size.
pub(crate) const TABLE_ELEMENT_BYTES: u64 = 8;

/// Where an instance is in its making, which decides what memory and table sizes count for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Extism memory made by the host, and the manifest's other modules: bounded by the caps
    /// and the instance limit only (Extism instantiates them before its limiter is set).
    Setup,
    /// The main module's instantiation and start function: what it declares must fit in
    /// `max_pages` (its memories together, its tables together), but is not charged.
    Declare,
    /// After instantiation: all growth of all memories and tables is charged to `max_pages`.
    Run,
}

/// Why the limiter refused a memory or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `memory.max_pages`.
    Budget,
    /// The whole-instance limit (`PluginBuilder::with_instance_memory_max`).
    Instance,
    /// A memory asked for `bytes`, over [`MAX_MEMORY_BYTES`].
    MemoryCap { bytes: u64 },
    /// The instance's tables would hold `elements`, over [`MAX_TABLE_ELEMENTS`].
    Tables { elements: u64 },
}

impl Refusal {
    /// A refusal by a budget the host set, as opposed to a fixed cap.
    pub fn is_budget(self) -> bool {
        matches!(self, Refusal::Budget | Refusal::Instance)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Budget => f.write_str("memory growth over `memory.max_pages`"),
            Refusal::Instance => f.write_str("memory over the instance memory limit"),
            Refusal::MemoryCap { bytes } => write!(
                f,
                "a memory of {} pages ({bytes} bytes), over the {} pages (4 GiB) one memory may hold",
                bytes.div_ceil(PAGE),
                MAX_MEMORY_BYTES / PAGE
            ),
            Refusal::Tables { elements } => write!(
                f,
                "tables of {elements} elements in all, over the {MAX_TABLE_ELEMENTS} elements \
                 an instance's tables may hold together"
            ),
        }
    }
}

/// The memory limits of one instance, Extism's accounting: `memory.max_pages` bounds what the
/// main module declares at instantiation, then all growth after it, summed over every memory
/// (Extism memory included) and table. Besides: each memory at most 4 GiB, all tables together
/// at most 2^20 elements, and optionally one limit on everything from the first byte.
pub(crate) struct Limiter {
    /// `memory.max_pages`, in bytes.
    budget: Option<u64>,
    /// The whole-instance limit, in bytes.
    instance: Option<u64>,
    phase: Phase,
    /// Extism memory's first page, when fusing made it part of the main module: Extism does
    /// not count it either.
    declare_allowance: u64,
    declared_memory: u64,
    declared_tables: u64,
    /// Growth since instantiation, memories and tables.
    grown: u64,
    /// Everything the instance holds, for the instance limit.
    total: u64,
    table_elements: u64,
    /// The last refusal, until something grows again or the next call starts: a trap that
    /// follows it is reported as out of memory when it is what a refused growth leads to.
    pub refused: Option<Refusal>,
}

impl Limiter {
    pub fn new(max_pages: Option<u32>, instance_max_pages: Option<u32>) -> Self {
        Limiter {
            budget: max_pages.map(|p| p as u64 * PAGE),
            instance: instance_max_pages.map(|p| p as u64 * PAGE),
            phase: Phase::Setup,
            declare_allowance: 0,
            declared_memory: 0,
            declared_tables: 0,
            grown: 0,
            total: 0,
            table_elements: 0,
            refused: None,
        }
    }

    /// The main module is instantiated next; `extism_memory_inside` when its fused Extism
    /// memory (one page) comes with it.
    pub fn declare(&mut self, extism_memory_inside: bool) {
        self.phase = Phase::Declare;
        self.declare_allowance = if extism_memory_inside { PAGE } else { 0 };
    }

    /// Instantiation is over: from now on growth is charged (Extism resets its limiter here).
    pub fn run(&mut self) {
        self.phase = Phase::Run;
    }

    fn refuse(&mut self, why: Refusal) -> wasmtime::Result<bool> {
        self.refused = Some(why);
        Ok(false)
    }

    /// Allows `bytes` more of a memory (`memory`) or a table, or refuses them.
    fn charge(&mut self, bytes: u64, memory: bool) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(bytes);
        if self.instance.is_some_and(|limit| total > limit) {
            return self.refuse(Refusal::Instance);
        }
        match self.phase {
            Phase::Setup => {}
            Phase::Declare => {
                let (sum, allowance) = if memory {
                    (&mut self.declared_memory, self.declare_allowance)
                } else {
                    (&mut self.declared_tables, 0)
                };
                let after = sum.saturating_add(bytes);
                if self
                    .budget
                    .is_some_and(|b| after > b.saturating_add(allowance))
                {
                    return self.refuse(Refusal::Budget);
                }
                *sum = after;
            }
            Phase::Run => {
                let after = self.grown.saturating_add(bytes);
                if self.budget.is_some_and(|b| after > b) {
                    return self.refuse(Refusal::Budget);
                }
                self.grown = after;
            }
        }
        self.total = total;
        self.refused = None;
        Ok(true)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let (current, desired) = (current as u64, desired as u64);
        // Over the memory's own maximum: wasmtime refuses it after asking; not ours to count.
        if maximum.is_some_and(|m| desired > m as u64) {
            return Ok(false);
        }
        if desired > MAX_MEMORY_BYTES {
            return self.refuse(Refusal::MemoryCap { bytes: desired });
        }
        self.charge(desired.saturating_sub(current), true)
    }

    // No refund in `memory_grow_failed`/`table_grow_failed`: wasmtime also calls them for
    // some growth it refused without asking the limiter, so a refund could give back growth
    // that did happen. The maximum is checked above, so after an approval only an
    // operating-system failure is left, and counting that growth anyway errs on the safe side.

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let (current, desired) = (current as u64, desired as u64);
        if maximum.is_some_and(|m| desired > m as u64) {
            return Ok(false);
        }
        let grow = desired.saturating_sub(current);
        let elements = self.table_elements.saturating_add(grow);
        if elements > MAX_TABLE_ELEMENTS {
            return self.refuse(Refusal::Tables { elements });
        }
        let allowed = self.charge(grow.saturating_mul(TABLE_ELEMENT_BYTES), false)?;
        if allowed {
            self.table_elements = elements;
        }
        Ok(allowed)
    }
}
