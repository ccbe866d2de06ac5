//! The host side of the ABI (`crate::abi::FUNCTIONS`): the `extism:host/env` imports and
//! Plinth's bulk copies. Each is a native function over the store's Extism memory.
//! Ownership rules follow the Extism reference: `config_get`, `var_get`, `var_set`,
//! `http_request` and the `log_*` calls free the handles they are given.

use wasmtime::{Caller, Linker};

use super::plugin_memory::plugin_memory;
use crate::abi::{memory, ENV, LEGACY_ENV, LEGACY_PREFIX, PLINTH_ENV};
use crate::store::{self, StoreData};
use crate::Error;

type C<'a> = Caller<'a, StoreData>;

/// Adds the ABI to `linker` under the Extism 1.x and the legacy names.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    define(linker, ENV, "")?;
    define(linker, LEGACY_ENV, LEGACY_PREFIX)?;
    define_bulk(linker)?;
    super::stream::add_to_linker(linker)?;
    super::http_stream::add_to_linker(linker)
}

/// Replaces the built-in functions that wait (`http_request`, the streams, WASI's `poll_oneoff`) with
/// versions that await instead of blocking, for plug-ins called with `call_async`.
pub(crate) fn add_async_to_linker(
    linker: &mut Linker<StoreData>,
    wasi: bool,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    for (m, p) in [(ENV, ""), (LEGACY_ENV, LEGACY_PREFIX)] {
        linker.func_wrap_async(
            m,
            &format!("{p}http_request"),
            |mut c: C<'_>, (req, body): (i64, i64)| {
                Box::new(async move {
                    let request = HttpCall::begin(&mut c, req, body);
                    let sent = request.send_on_thread().await?;
                    request.finish(&mut c, sent)
                })
            },
        )?;
    }
    super::stream::add_async_to_linker(linker)?;
    if wasi {
        linker.func_wrap_async(
            super::poll::MODULE,
            super::poll::NAME,
            super::poll::poll_oneoff_async,
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// One `http_request`: what it sends, read from the plug-in's blocks before it goes out, and
/// the handles to free once the answer is in.
struct HttpCall {
    req_handle: u64,
    body_handle: u64,
    json: Vec<u8>,
    body: Option<Vec<u8>>,
    settings: std::sync::Arc<store::Settings>,
    deadline: Option<std::time::Instant>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HttpCall {
    fn begin(c: &mut C, req: i64, body: i64) -> HttpCall {
        let (req_handle, body_handle) = (req as u64, body as u64);
        let json = store::block(c, req_handle)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let body = (body_handle != 0).then(|| {
            store::block(c, body_handle)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        });
        let d = c.data_mut();
        // As in Extism, a request forgets the previous one's answer as it starts, so a
        // failed request leaves status 0 and no headers.
        d.http.last_status = 0;
        d.http.last_headers = None;
        HttpCall {
            req_handle,
            body_handle,
            json,
            body,
            settings: d.shared.clone(),
            deadline: d.deadline,
            cancel: d.cancel.clone(),
        }
    }

    /// Sends the request on a thread of its own and awaits the answer there: the HTTP client
    /// blocks, the executor's thread must not. The request keeps to the call's deadline and
    /// cancel on its own; the await also ends at once when either comes.
    async fn send_on_thread(
        &self,
    ) -> wasmtime::Result<Result<crate::http::HttpResponse, crate::http::Failure>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (settings, json, body) = (self.settings.clone(), self.json.clone(), self.body.clone());
        let (deadline, cancel) = (self.deadline, self.cancel.clone());
        std::thread::Builder::new()
            .name("plinth-http".into())
            .spawn(move || {
                let sent = crate::http::request(&settings.http, &json, body, deadline, &cancel);
                let _ = tx.send(sent);
            })
            .map_err(|e| {
                wasmtime::format_err!("cannot start a thread for the HTTP request: {e}")
            })?;
        let answer = super::timer::until_stopped(rx, self.deadline, &self.cancel).await?;
        answer
            .map_err(|_| wasmtime::format_err!("the HTTP request's thread ended without an answer"))
    }

    fn finish(
        self,
        c: &mut C,
        sent: Result<crate::http::HttpResponse, crate::http::Failure>,
    ) -> wasmtime::Result<i64> {
        // The guest's blocks are freed only after the response has its own block, so that a
        // guest that frees them again (as some PDKs do) cannot free the response.
        let result = sent.map_err(wasmtime::Error::from).and_then(|resp| {
            let d = c.data_mut();
            d.http.last_status = resp.status;
            let keep = self.settings.http.enable_headers || d.http.headers_enabled;
            d.http.last_headers = keep.then_some(resp.headers);
            alloc_or_oom(c, &resp.body, "HTTP response body")
        });
        store::free(c, self.req_handle);
        if self.body_handle != 0 {
            store::free(c, self.body_handle);
        }
        result
    }
}

/// Host versions of the bulk copies, for modules where they are not fused (see `plinth-abi`'s `fuse/` (crates/abi/src/fuse/)):
/// the same checks, through the plug-in's `memory` export.
fn define_bulk(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    // `alloc` without clearing the block, for a block the plug-in writes in full at once.
    linker.func_wrap(PLINTH_ENV, "alloc_uninit", |mut c: C, len: i64| -> i64 {
        store::alloc_uninit(&mut c, len as u64).unwrap_or(0) as i64
    })?;
    // The output is `len` bytes of the plug-in's own memory at `ptr`, read by the host after
    // the call without a copy into Extism memory; the plug-in keeps them until its next call.
    linker.func_wrap(
        PLINTH_ENV,
        "output_direct",
        |mut c: C, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let (ptr, len) = (ptr as u32, len as u32);
            let size = plugin_memory(&mut c)?.data_size(&c) as u64;
            if u64::from(ptr) + u64::from(len) > size {
                return Err(wasmtime::format_err!(
                    "output_direct of {len} bytes at {ptr} is outside the plug-in's {size}-byte memory"
                ));
            }
            let d = c.data_mut();
            d.output = (0, 0);
            d.output_direct = Some((ptr, len));
            Ok(())
        },
    )?;
    linker.func_wrap(
        PLINTH_ENV,
        "input_read",
        |mut c: C, off: i64, dst: i32, len: i32| -> wasmtime::Result<()> {
            let (base, n) = c.data().input;
            let (off, len) = (off as u64, len as u32 as u64);
            if off > n || len > n - off {
                return Err(wasmtime::format_err!(
                    "input_read of {len} bytes at offset {off} is outside the {n}-byte input"
                ));
            }
            copy_out(&mut c, base + off, dst, len)
        },
    )?;
    linker.func_wrap(
        PLINTH_ENV,
        "read",
        |mut c: C, src: i64, dst: i32, len: i32| -> wasmtime::Result<()> {
            copy_out(&mut c, src as u64, dst, len as u32 as u64)
        },
    )?;
    linker.func_wrap(
        PLINTH_ENV,
        "write",
        |mut c: C, dst: i64, src: i32, len: i32| -> wasmtime::Result<()> {
            let len = len as u32 as usize;
            if len == 0 {
                return Ok(());
            }
            let mut buf = vec![0; len];
            plugin_memory(&mut c)?
                .read(&c, src as u32 as usize, &mut buf)
                .map_err(|_| {
                    wasmtime::format_err!(
                        "write of {len} bytes from {src} is outside the plug-in's memory"
                    )
                })?;
            let Some(to) = memory::range_mut(store::bytes_mut(&mut c), dst as u64, len as u64)
            else {
                return Err(wasmtime::format_err!(
                    "write of {len} bytes to {dst} is outside Extism memory"
                ));
            };
            to.copy_from_slice(&buf);
            Ok(())
        },
    )?;
    Ok(())
}

/// Copies `len` bytes at `src` in Extism memory to `dst` in the plug-in's memory.
fn copy_out(c: &mut C, src: u64, dst: i32, len: u64) -> wasmtime::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let Some(bytes) = memory::range(store::bytes(&*c), src, len).map(<[u8]>::to_vec) else {
        return Err(wasmtime::format_err!(
            "read of {len} bytes at {src} is outside Extism memory"
        ));
    };
    plugin_memory(c)?
        .write(&mut *c, dst as u32 as usize, &bytes)
        .map_err(|_| {
            wasmtime::format_err!("read of {len} bytes to {dst} is outside the plug-in's memory")
        })
}

fn define(linker: &mut Linker<StoreData>, m: &str, p: &str) -> wasmtime::Result<()> {
    let n = |name: &str| format!("{p}{name}");

    // Memory. The hot ones (loads, stores, input reads) are usually fused into the plug-in;
    // these host versions serve unfused modules and indirect calls, with the same rules.
    linker.func_wrap(m, &n("alloc"), |mut c: C, len: i64| -> i64 {
        store::alloc(&mut c, len as u64).unwrap_or(0) as i64
    })?;
    linker.func_wrap(m, &n("free"), |mut c: C, h: i64| {
        store::free(&mut c, h as u64)
    })?;
    linker.func_wrap(m, &n("length"), |c: C, h: i64| -> i64 {
        c.data().arena.length(h as u64) as i64
    })?;
    linker.func_wrap(m, &n("length_unsafe"), |c: C, h: i64| -> i64 {
        c.data().arena.length(h as u64) as i64
    })?;
    linker.func_wrap(m, &n("load_u8"), |c: C, a: i64| -> i32 {
        memory::load_u8(store::bytes(&c), a as u64) as i32
    })?;
    linker.func_wrap(m, &n("load_u64"), |c: C, a: i64| -> i64 {
        memory::load_u64(store::bytes(&c), a as u64) as i64
    })?;
    linker.func_wrap(m, &n("store_u8"), |mut c: C, a: i64, v: i32| {
        memory::store_u8(store::bytes_mut(&mut c), a as u64, v as u8)
    })?;
    linker.func_wrap(m, &n("store_u64"), |mut c: C, a: i64, v: i64| {
        memory::store_u64(store::bytes_mut(&mut c), a as u64, v as u64)
    })?;
    linker.func_wrap(m, &n("reset"), |mut c: C| {
        let d = c.data_mut();
        d.arena.reset();
        d.output = (0, 0);
        d.error = 0;
        store::set_input(&mut c, 0, 0);
    })?;
    linker.func_wrap(m, &n("memory_bytes"), |c: C| -> i64 {
        store::bytes(&c).len() as i64
    })?;

    // Input.
    linker.func_wrap(m, &n("input_length"), |c: C| -> i64 {
        c.data().input.1 as i64
    })?;
    linker.func_wrap(m, &n("input_offset"), |c: C| -> i64 {
        c.data().input.0 as i64
    })?;
    linker.func_wrap(m, &n("input_load_u8"), |c: C, off: i64| -> i32 {
        let (base, len) = c.data().input;
        if (off as u64) < len {
            memory::load_u8(store::bytes(&c), base + off as u64) as i32
        } else {
            0
        }
    })?;
    linker.func_wrap(m, &n("input_load_u64"), |c: C, off: i64| -> i64 {
        let (base, len) = c.data().input;
        memory::load_u64_within(store::bytes(&c), base, len, off as u64) as i64
    })?;
    linker.func_wrap(m, &n("input_set"), |mut c: C, h: i64, len: i64| {
        // Only a range inside Extism memory becomes the input; fused reads rely on that.
        let ok = memory::range(store::bytes(&c), h as u64, len as u64).is_some();
        let (h, len) = if ok { (h as u64, len as u64) } else { (0, 0) };
        store::set_input(&mut c, h, len);
    })?;

    // Output and errors.
    linker.func_wrap(m, &n("output_set"), |mut c: C, h: i64, len: i64| {
        let d = c.data_mut();
        d.output = (h as u64, len as u64);
        d.output_direct = None;
    })?;
    linker.func_wrap(m, &n("output_length"), |c: C| -> i64 {
        c.data().output.1 as i64
    })?;
    linker.func_wrap(m, &n("output_offset"), |c: C| -> i64 {
        c.data().output.0 as i64
    })?;
    linker.func_wrap(m, &n("error_set"), |mut c: C, h: i64| {
        c.data_mut().error = h as u64;
    })?;
    linker.func_wrap(m, &n("error_get"), |c: C| -> i64 { c.data().error as i64 })?;

    // Config and vars.
    linker.func_wrap(
        m,
        &n("config_get"),
        |mut c: C, key: i64| -> wasmtime::Result<i64> {
            let name = read_string(&c, key as u64, "config key")?;
            let value = c.data().config.read().unwrap().get(&name).cloned();
            let result = match value {
                Some(v) => alloc_or_oom(&mut c, v.as_bytes(), "config value"),
                None => Ok(0),
            };
            store::free(&mut c, key as u64);
            result
        },
    )?;
    linker.func_wrap(
        m,
        &n("var_get"),
        |mut c: C, key: i64| -> wasmtime::Result<i64> {
            let name = read_string(&c, key as u64, "var key")?;
            let value = c.data().vars.map.get(&name).cloned();
            let result = match value {
                Some(v) => alloc_or_oom(&mut c, &v, "var value"),
                None => Ok(0),
            };
            store::free(&mut c, key as u64);
            result
        },
    )?;
    linker.func_wrap(
        m,
        &n("var_set"),
        |mut c: C, key: i64, val: i64| -> wasmtime::Result<()> {
            let key = store::take_string(&mut c, key as u64, "var key")?;
            let value = (val != 0).then(|| store::take_block(&mut c, val as u64));
            let d = c.data_mut();
            let limit = d.shared.max_var_bytes;
            if limit == 0 && value.is_some() {
                return Err(Error::VarStoreFull {
                    needed: (key.len() + value.as_ref().map_or(0, Vec::len)) as u64,
                    limit: 0,
                }
                .into());
            }
            d.vars.set(key, value, limit)?;
            Ok(())
        },
    )?;

    // HTTP.
    linker.func_wrap(
        m,
        &n("http_request"),
        |mut c: C, req: i64, body: i64| -> wasmtime::Result<i64> {
            let request = HttpCall::begin(&mut c, req, body);
            let sent = crate::http::request(
                &request.settings.http,
                &request.json,
                request.body.clone(),
                request.deadline,
                &request.cancel,
            );
            request.finish(&mut c, sent)
        },
    )?;
    linker.func_wrap(m, &n("http_status_code"), |c: C| -> i32 {
        c.data().http.last_status as i32
    })?;
    linker.func_wrap(m, &n("http_headers"), |mut c: C| -> wasmtime::Result<i64> {
        let json = match c.data().http.last_headers.as_ref() {
            Some(h) => serde_json::to_vec(h)?,
            None => return Ok(0),
        };
        alloc_or_oom(&mut c, &json, "HTTP headers")
    })?;

    // Logging. The line is read in place and only up to log::MAX_LINE (a plug-in may log a
    // block as large as its memory budget), and not at all when the level is off.
    macro_rules! log_fn {
        ($name:literal, $level:expr) => {
            linker.func_wrap(m, &n($name), |mut c: C, h: i64| {
                if crate::log::enabled($level) {
                    let bytes = store::block(&c, h as u64).unwrap_or_default();
                    crate::log::plugin_log($level, &c.data().plugin_id, bytes);
                }
                store::free(&mut c, h as u64);
            })?;
        };
    }
    log_fn!("log_trace", tracing::Level::TRACE);
    log_fn!("log_debug", tracing::Level::DEBUG);
    log_fn!("log_info", tracing::Level::INFO);
    log_fn!("log_warn", tracing::Level::WARN);
    log_fn!("log_error", tracing::Level::ERROR);
    linker.func_wrap(m, &n("get_log_level"), |_: C| -> i32 {
        crate::log::guest_log_level()
    })?;
    Ok(())
}

/// The UTF-8 text of the guest's block at `h`, left allocated: the caller frees it after
/// allocating its result, so the result never reuses the argument's block (a guest that frees
/// the argument afterwards, as the Haskell PDK does, must not free the result).
fn read_string(c: &C, h: u64, what: &str) -> wasmtime::Result<String> {
    let bytes = store::block(c, h).unwrap_or_default();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| wasmtime::format_err!("{what} is not valid UTF-8"))
}

/// Allocates a block for host-produced data; a refused allocation fails the call with a clear
/// error rather than handing the guest a silent 0.
fn alloc_or_oom(c: &mut C, bytes: &[u8], what: &str) -> wasmtime::Result<i64> {
    match store::alloc_bytes(c, bytes) {
        Ok(h) => Ok(h as i64),
        Err(_) => Err(Error::Memory(format!(
            "no room in plug-in memory for the {what} ({} bytes)",
            bytes.len()
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::{Engine, Linker, Module};

    use crate::abi;
    use crate::store::StoreData;

    /// Every function of the ABI table is registered, under its name and type (and the Extism
    /// ones under their pre-1.0 names too): a module importing the whole table links.
    #[test]
    fn the_linker_provides_the_whole_abi_table_with_its_types() {
        let engine = Engine::default();
        let mut linker: Linker<StoreData> = Linker::new(&engine);
        super::add_to_linker(&mut linker).unwrap();
        let legacy: String = abi::wat_imports(abi::ENV)
            .lines()
            .map(|l| {
                l.replacen(
                    &format!("\"{}\" \"", abi::ENV),
                    &format!("\"{}\" \"{}", abi::LEGACY_ENV, abi::LEGACY_PREFIX),
                    1,
                )
                .replacen("(func $", "(func $legacy_", 1)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let wat = format!(
            "(module {}{}\n{legacy}\n(memory (export \"memory\") 1))",
            abi::wat_imports(abi::ENV),
            abi::wat_imports(abi::PLINTH_ENV)
        );
        let module = Module::new(&engine, wat).unwrap();
        assert_eq!(
            module.imports().len(),
            abi::FUNCTIONS.len() * 2 - abi::names(abi::PLINTH_ENV).count()
        );
        linker
            .instantiate_pre(&module)
            .expect("every ABI function is registered with the table's type");
    }
}
