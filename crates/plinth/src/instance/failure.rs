//! Turns what wasmtime reports (an interrupt, a trap, fuel, a refused growth, a host
//! function's error) into the one [`Error`] the caller sees.

use wasmtime::Trap;

use crate::error::Interrupt;
use crate::store::{Refusal, Settings, StoreData};
use crate::Error;

pub(super) fn classify_failure(data: &StoreData, function: &str, e: wasmtime::Error) -> Error {
    let shared = &*data.shared;
    let function = function.to_string();
    if let Some(i) = e.downcast_ref::<Interrupt>() {
        return match i {
            Interrupt::Timeout => Error::Timeout {
                function,
                limit: shared.timeout.unwrap_or_default(),
            },
            Interrupt::Cancelled => Error::Cancelled { function },
        };
    }
    let trap = e.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::OutOfFuel) {
        return Error::OutOfFuel {
            function,
            limit: data.fuel_limit,
        };
    }
    // A refused growth is the cause only of what it leads to at once, and only while nothing
    // has grown since: a host function that could not place its data (`Error::Memory`), or the
    // guest's own reaction to `memory.grow` returning -1, which is an abort (`unreachable`) or
    // an access to the memory that did not grow. Any other failure is itself.
    let refused = data.limiter.refused;
    let budget = refused.filter(|r| r.is_budget());
    let e = match e.downcast::<Error>() {
        Ok(Error::Memory(message)) => {
            return match budget {
                Some(r) => out_of_memory(&function, r, shared),
                None => Error::Memory(message),
            }
        }
        Ok(err) => return err,
        Err(e) => e,
    };
    if let Some(r) = budget {
        if matches!(
            trap,
            Some(Trap::UnreachableCodeReached | Trap::MemoryOutOfBounds)
        ) {
            return out_of_memory(&function, r, shared);
        }
    }
    // A refusal that did not cause the failure may still explain it.
    let note = refused
        .map(|r| format!("\n(earlier in the call, the host refused {r})"))
        .unwrap_or_default();
    let message = match trap {
        Some(t) => {
            let backtrace = e
                .downcast_ref::<wasmtime::WasmBacktrace>()
                .map(|b| {
                    // Deep recursion gives thousands of frames; the top few say enough.
                    let text = b.to_string();
                    let mut lines: Vec<&str> = text.lines().take(11).collect();
                    if text.lines().count() > 11 {
                        lines.push("    ...");
                    }
                    format!("\n{}", lines.join("\n"))
                })
                .unwrap_or_default();
            format!("{t}{backtrace}{note}")
        }
        None => format!("{e:#}{note}"),
    };
    Error::Trap { function, message }
}

/// Where instantiation failures are reported as happening.
pub(super) const INSTANTIATION: &str = "(instantiation)";

/// The error for a growth that the limit `refusal` refused.
pub(super) fn out_of_memory(function: &str, refusal: Refusal, shared: &Settings) -> Error {
    let limit_pages = match refusal {
        Refusal::Instance => shared.instance_memory_max,
        _ => shared.max_pages,
    };
    Error::OutOfMemory {
        function: function.to_string(),
        limit_pages: limit_pages.unwrap_or(0),
    }
}
