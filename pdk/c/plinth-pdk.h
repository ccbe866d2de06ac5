/*
 * plinth-pdk.h: the Plinth plug-in development kit for C, in one header.
 *
 * Plug-ins built with it speak the Extism plug-in ABI, so they run on Plinth and on any
 * Extism 1.x host. Build a WASI reactor (it exports `_initialize`, which the host runs once):
 *
 *     clang --target=wasm32-wasi -Os -mexec-model=reactor -Wl,--strip-all \
 *           -I pdk/c -o my_plugin.wasm my_plugin.c
 *
 * A plug-in function takes no arguments and returns 0 for success:
 *
 *     #include "plinth-pdk.h"
 *     PLINTH_EXPORT(greet) int32_t greet(void) {
 *         size_t n;
 *         char *name = (char *)plinth_input_read(&n);
 *         ...
 *         plinth_output_str("...");
 *         free(name);
 *         return 0;
 *     }
 *
 * Two layers:
 *  - the raw imports, `plinth_<name>` for every `extism:host/env` function (`plinth_alloc`,
 *    `plinth_input_load_u64`, `plinth_config_get`, ...), with the ABI's ownership rules;
 *  - helpers (static inline, so only what a plug-in uses is compiled in) that move data
 *    between C buffers and Extism memory. Buffers they return come from malloc: free them.
 *
 * Extism memory is not the plug-in's linear memory: a `plinth_handle` is an opaque 64-bit
 * handle to a block in it, 0 meaning none.
 */
#ifndef PLINTH_PDK_H
#define PLINTH_PDK_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A handle to a block of Extism memory; 0 is null. */
typedef uint64_t plinth_handle;

/* ------------------------------------------------------------------------------------------
 * Imports and exports
 * ------------------------------------------------------------------------------------------ */

/* Declares the next function as the import `name` of wasm module `module`. */
#define PLINTH_IMPORT(module, name) \
    __attribute__((import_module(module), import_name(name)))

/* Exports the next function to the host as `name`. The function must have type
 * `int32_t f(void)` (0 = success) or `void f(void)`. */
#define PLINTH_EXPORT(name) __attribute__((export_name(#name)))

/* Declares a host function `name` imported from `extism:host/user`, where Extism hosts put
 * user functions by default:
 *     PLINTH_HOST_FN(plinth_handle, greet, plinth_handle name);
 * Handles travel as plinth_handle (i64); plain numbers may use int32_t/int64_t/float/double. */
#define PLINTH_HOST_FN(ret, name, ...) \
    PLINTH_IMPORT("extism:host/user", #name) ret name(__VA_ARGS__)

/* The same, from another namespace (the host registers the function under it). */
#define PLINTH_HOST_FN_NS(ns, ret, name, ...) PLINTH_IMPORT(ns, #name) ret name(__VA_ARGS__)

#define PLINTH_ENV_(name) PLINTH_IMPORT("extism:host/env", #name)

/* ------------------------------------------------------------------------------------------
 * Raw ABI (extism:host/env). Only the ones a plug-in calls become imports of its module.
 * ------------------------------------------------------------------------------------------ */

/* Memory. alloc returns 0 for n == 0 or when out of memory. */
PLINTH_ENV_(alloc) plinth_handle plinth_alloc(uint64_t n);
PLINTH_ENV_(free) void plinth_free(plinth_handle h);
/* Length of the block starting at h; 0 if h is not an active block. */
PLINTH_ENV_(length) uint64_t plinth_length(plinth_handle h);
PLINTH_ENV_(length_unsafe) uint64_t plinth_length_unsafe(plinth_handle h);
/* Loads and stores take any address inside Extism memory (a handle plus an offset).
 * 64-bit ones are little-endian and need no alignment. */
PLINTH_ENV_(load_u8) uint8_t plinth_load_u8(uint64_t addr);
PLINTH_ENV_(load_u64) uint64_t plinth_load_u64(uint64_t addr);
PLINTH_ENV_(store_u8) void plinth_store_u8(uint64_t addr, uint8_t v);
PLINTH_ENV_(store_u64) void plinth_store_u64(uint64_t addr, uint64_t v);

/* The call's input. input_load_* take offsets relative to the input's start. */
PLINTH_ENV_(input_length) uint64_t plinth_input_length(void);
PLINTH_ENV_(input_offset) plinth_handle plinth_input_offset(void);
PLINTH_ENV_(input_load_u8) uint8_t plinth_input_load_u8(uint64_t off);
PLINTH_ENV_(input_load_u64) uint64_t plinth_input_load_u64(uint64_t off);

/* Output and errors. Both take ownership of the handle. error_set(0) clears the error. */
PLINTH_ENV_(output_set) void plinth_output_set(plinth_handle h, uint64_t len);
PLINTH_ENV_(error_set) void plinth_error_set(plinth_handle h);
PLINTH_ENV_(error_get) plinth_handle plinth_error_get(void);

/* Host-side helpers of the upstream kernel; rarely useful in a plug-in. */
PLINTH_ENV_(input_set) void plinth_input_set(plinth_handle h, uint64_t len);
PLINTH_ENV_(output_length) uint64_t plinth_output_length(void);
PLINTH_ENV_(output_offset) plinth_handle plinth_output_offset(void);
PLINTH_ENV_(reset) void plinth_reset(void);
PLINTH_ENV_(memory_bytes) uint64_t plinth_memory_bytes(void);

/* Config and vars. config_get/var_get FREE the key handle and return a new block (caller
 * owns it) or 0. var_set frees both handles; val == 0 removes the var. */
PLINTH_ENV_(config_get) plinth_handle plinth_config_get(plinth_handle key);
PLINTH_ENV_(var_get) plinth_handle plinth_var_get(plinth_handle key);
PLINTH_ENV_(var_set) void plinth_var_set(plinth_handle key, plinth_handle val);

/* HTTP. req is the JSON {"url":..,"method":..,"headers":{..}}; body may be 0. Frees both,
 * returns the response body block (0 if empty). A denied or failed request fails the call. */
PLINTH_ENV_(http_request) plinth_handle plinth_http_request(plinth_handle req, plinth_handle body);
PLINTH_ENV_(http_status_code) int32_t plinth_http_status_code(void);
/* JSON object of the last response's headers, or 0 unless the host enabled them. */
PLINTH_ENV_(http_headers) plinth_handle plinth_http_headers(void);

/* Logging. Each frees its handle. */
PLINTH_ENV_(log_trace) void plinth_log_trace(plinth_handle msg);
PLINTH_ENV_(log_debug) void plinth_log_debug(plinth_handle msg);
PLINTH_ENV_(log_info) void plinth_log_info(plinth_handle msg);
PLINTH_ENV_(log_warn) void plinth_log_warn(plinth_handle msg);
PLINTH_ENV_(log_error) void plinth_log_error(plinth_handle msg);
/* The host's level: PLINTH_LOG_TRACE (0) .. PLINTH_LOG_ERROR (4), INT32_MAX when off. */
PLINTH_ENV_(get_log_level) int32_t plinth_get_log_level(void);

/* ------------------------------------------------------------------------------------------
 * Memory helpers
 * ------------------------------------------------------------------------------------------ */

/* A new block holding a copy of data[0..len). Returns 0 when len == 0 or out of memory. */
static inline plinth_handle plinth_alloc_bytes(const void *data, size_t len) {
    plinth_handle h = plinth_alloc(len);
    if (h == 0) return 0;
    const uint8_t *p = (const uint8_t *)data;
    size_t i = 0;
    /* 8 bytes per call: the ABI's calls dominate the cost of moving data. */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        plinth_store_u64(h + i, w);
    }
    for (; i < len; i++) plinth_store_u8(h + i, p[i]);
    return h;
}

/* A new block holding the string s without its NUL. */
static inline plinth_handle plinth_alloc_str(const char *s) {
    return plinth_alloc_bytes(s, strlen(s));
}

/* Copies len bytes of Extism memory starting at addr into buf. */
static inline void plinth_read_bytes(uint64_t addr, void *buf, size_t len) {
    uint8_t *p = (uint8_t *)buf;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = plinth_load_u64(addr + i);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) p[i] = plinth_load_u8(addr + i);
}

/* A malloc'd copy of block h, NUL-terminated (so text can be used as a C string); its
 * length without the NUL goes to *len when len is not NULL. A 0 handle gives "".
 * Returns NULL only when malloc fails. */
static inline uint8_t *plinth_read_block(plinth_handle h, size_t *len) {
    size_t n = h ? (size_t)plinth_length(h) : 0;
    uint8_t *buf = (uint8_t *)malloc(n + 1);
    if (!buf) return NULL;
    if (n) plinth_read_bytes(h, buf, n);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* ------------------------------------------------------------------------------------------
 * Input, output, errors
 * ------------------------------------------------------------------------------------------ */

#ifdef PLINTH_STREAM
int32_t plinth_stream_read(int32_t ptr, int32_t len); /* defined below */

/* The rest of the input stream, read to its end, as plinth_input_read returns it. */
static inline uint8_t *plinth_input_read_stream_(size_t *len) {
    size_t cap = 4096, got = 0;
    uint8_t *all = (uint8_t *)malloc(cap);
    if (!all) return NULL;
    for (;;) {
        if (cap - got < 2) {
            uint8_t *grown = cap <= SIZE_MAX / 2 ? (uint8_t *)realloc(all, cap * 2) : NULL;
            if (!grown) {
                free(all);
                return NULL;
            }
            all = grown;
            cap *= 2;
        }
        size_t room = cap - got - 1; /* one byte for the NUL */
        int32_t r = plinth_stream_read((int32_t)(uintptr_t)(all + got),
                                       room > INT32_MAX ? INT32_MAX : (int32_t)room);
        if (r <= 0) break;
        got += (size_t)r;
    }
    all[got] = 0;
    if (len) *len = got;
    return all;
}
#endif

/* The whole input of the call in a malloc'd buffer, NUL-terminated; its length without the
 * NUL goes to *len when len is not NULL. Returns NULL only when malloc fails.
 * With PLINTH_STREAM, when the classic input is empty, it is read through the input stream: a
 * Plinth host that streams does not buffer the classic input for a module that reads the
 * stream. That works once per call (the stream is then at its end). If the host's input
 * fails, it gives what was read so far; the call fails with the host's error anyway. */
static inline uint8_t *plinth_input_read(size_t *len) {
    size_t n = (size_t)plinth_input_length();
#ifdef PLINTH_STREAM
    if (n == 0) return plinth_input_read_stream_(len);
#endif
    uint8_t *buf = (uint8_t *)malloc(n + 1);
    if (!buf) return NULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = plinth_input_load_u64(i);
        memcpy(buf + i, &w, 8);
    }
    for (; i < n; i++) buf[i] = plinth_input_load_u8(i);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* Sets the call's output to a copy of data[0..len). Returns 0, or -1 when out of memory. */
static inline int plinth_output_bytes(const void *data, size_t len) {
    plinth_handle h = plinth_alloc_bytes(data, len);
    if (h == 0 && len != 0) return -1;
    plinth_output_set(h, len);
    return 0;
}

/* Sets the call's output to the string s (without its NUL). */
static inline int plinth_output_str(const char *s) {
    return plinth_output_bytes(s, strlen(s));
}

/* Fails the call with message msg; the host reports it even when the export returns 0.
 * Return a non-zero code as well to make the failure code explicit. */
static inline void plinth_set_error(const char *msg) {
    plinth_error_set(plinth_alloc_str(msg));
}

/* ------------------------------------------------------------------------------------------
 * Config and vars
 * ------------------------------------------------------------------------------------------ */

/* The config value of key as a malloc'd NUL-terminated string, or NULL when it is not set.
 * An empty value reads as NULL too: hosts have no empty blocks, so they return 0 for it. */
static inline char *plinth_config_read(const char *key) {
    plinth_handle k = plinth_alloc_str(key);
    if (k == 0) return NULL;
    plinth_handle v = plinth_config_get(k); /* frees k */
    if (v == 0) return NULL;
    char *s = (char *)plinth_read_block(v, NULL);
    plinth_free(v);
    return s;
}

/* The var key as a malloc'd buffer (NUL-terminated for convenience) with its length in
 * *len, or NULL when it is not set. */
static inline uint8_t *plinth_var_read(const char *key, size_t *len) {
    plinth_handle k = plinth_alloc_str(key);
    if (k == 0) return NULL;
    plinth_handle v = plinth_var_get(k); /* frees k */
    if (v == 0) return NULL;
    uint8_t *buf = plinth_read_block(v, len);
    plinth_free(v);
    return buf;
}

/* Sets the var key to data[0..len). An empty value removes the var (Extism has no empty
 * blocks). Vars outlive calls and are capped by the host (memory.max_var_bytes). */
static inline void plinth_var_write(const char *key, const void *data, size_t len) {
    plinth_handle k = plinth_alloc_str(key);
    if (k == 0) return;
    plinth_var_set(k, plinth_alloc_bytes(data, len)); /* frees both */
}

/* Removes the var key. */
static inline void plinth_var_remove(const char *key) {
    plinth_handle k = plinth_alloc_str(key);
    if (k != 0) plinth_var_set(k, 0);
}

/* ------------------------------------------------------------------------------------------
 * A growable byte buffer, and JSON string quoting (for building requests and outputs)
 * ------------------------------------------------------------------------------------------ */

/* Start empty with `plinth_buf b = {0};` (C) and release with plinth_buf_free. Appends never
 * fail loudly: check `failed` once before using the content. */
typedef struct {
    char *data; /* NUL-terminated while no allocation has failed; NULL while empty */
    size_t len;
    size_t cap;
    int failed; /* set when malloc failed; the content is then incomplete */
} plinth_buf;

/* Appends n bytes from p. */
static inline void plinth_buf_add(plinth_buf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = (char *)realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

/* Appends the string s without its NUL. */
static inline void plinth_buf_str(plinth_buf *b, const char *s) {
    plinth_buf_add(b, s, strlen(s));
}

/* Appends v in decimal (without pulling printf into the module). */
static inline void plinth_buf_u64(plinth_buf *b, uint64_t v) {
    char d[20];
    size_t n = 0;
    do {
        d[sizeof d - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    plinth_buf_add(b, d + sizeof d - n, n);
}

/* Appends s as a quoted JSON string ("..." with escapes). s is taken as UTF-8. */
static inline void plinth_buf_json_str(plinth_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    plinth_buf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            plinth_buf_add(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            plinth_buf_add(b, e, 6);
        } else {
            plinth_buf_add(b, s, 1);
        }
    }
    plinth_buf_add(b, "\"", 1);
}

static inline void plinth_buf_free(plinth_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

/* ------------------------------------------------------------------------------------------
 * HTTP
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    int32_t status;   /* HTTP status; non-2xx is not an error */
    uint8_t *body;    /* malloc'd, NUL-terminated; free it */
    size_t body_len;  /* without the NUL */
} plinth_http_response;

/* Makes an HTTP request through the host. method may be NULL (GET). headers is NULL or a
 * NULL-terminated list of name, value, name, value, ... body may be NULL. The host must allow
 * the URL's host (allowed_hosts); a denied or failed request fails the whole call, so this
 * returns only on a response. Returns 0, or -1 when out of memory. */
static inline int plinth_http(const char *method, const char *url, const char *const *headers,
                              const void *body, size_t body_len, plinth_http_response *res) {
    plinth_buf req = {NULL, 0, 0, 0};
    plinth_buf_str(&req, "{\"url\":");
    plinth_buf_json_str(&req, url);
    plinth_buf_str(&req, ",\"method\":");
    plinth_buf_json_str(&req, method ? method : "GET");
    plinth_buf_str(&req, ",\"headers\":{");
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
        if (i) plinth_buf_str(&req, ",");
        plinth_buf_json_str(&req, headers[i]);
        plinth_buf_str(&req, ":");
        plinth_buf_json_str(&req, headers[i + 1]);
    }
    plinth_buf_str(&req, "}}");
    if (req.failed) {
        plinth_buf_free(&req);
        return -1;
    }
    plinth_handle r = plinth_alloc_bytes(req.data, req.len);
    plinth_buf_free(&req);
    if (r == 0) return -1;
    plinth_handle b = 0;
    if (body && body_len) {
        b = plinth_alloc_bytes(body, body_len);
        if (b == 0) {
            plinth_free(r);
            return -1;
        }
    }
    plinth_handle out = plinth_http_request(r, b); /* frees r and b */
    res->status = plinth_http_status_code();
    res->body = plinth_read_block(out, &res->body_len);
    if (out) plinth_free(out);
    return res->body ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------
 * Logging
 * ------------------------------------------------------------------------------------------ */

enum {
    PLINTH_LOG_TRACE = 0,
    PLINTH_LOG_DEBUG = 1,
    PLINTH_LOG_INFO = 2,
    PLINTH_LOG_WARN = 3,
    PLINTH_LOG_ERROR = 4,
};

/* Logs msg at level, unless the host's level is above it (then nothing is allocated).
 * There is no printf-style variant on purpose: wasi-libc's snprintf links stdio, whose
 * WASI imports (fd_write, ...) would make the plug-in need WASI on. */
static inline void plinth_log(int level, const char *msg) {
    if (level < plinth_get_log_level()) return;
    plinth_handle h = plinth_alloc_str(msg);
    if (h == 0) return;
    switch (level) {
    case PLINTH_LOG_TRACE: plinth_log_trace(h); break;
    case PLINTH_LOG_DEBUG: plinth_log_debug(h); break;
    case PLINTH_LOG_INFO: plinth_log_info(h); break;
    case PLINTH_LOG_WARN: plinth_log_warn(h); break;
    default: plinth_log_error(h); break;
    }
}

/* ------------------------------------------------------------------------------------------
 * Streams (docs/streaming.md): `#define PLINTH_STREAM` before including this header
 * ------------------------------------------------------------------------------------------
 *
 *     #define PLINTH_STREAM
 *     #include "plinth-pdk.h"
 *     PLINTH_EXPORT(upper) int32_t upper(void) {
 *         static uint8_t buf[65536];
 *         int32_t n;
 *         while ((n = plinth_input_stream_read(buf, sizeof buf)) > 0) {
 *             ... transform buf[0..n) ...
 *             if (plinth_output_stream_write(buf, n) < 0) break;
 *         }
 *         plinth_stream_finish();                 // on every return path, before returning
 *         return n < 0 ? 1 : 0;
 *     }
 *
 * The input is read a chunk at a time into the plug-in's memory, and each write is delivered
 * by the host before it returns. The header then defines and exports `plinth_stream_read` and
 * `plinth_stream_write` (i32, i32) -> i32, and all reads and writes go through them. A Plinth
 * host replaces their bodies at load time with its `plinth:host/env` stream_read/stream_write.
 * Their own bodies are the fallback for hosts that do not (Extism): reads serve the call's
 * whole input from an offset, writes collect into a malloc'd buffer, and plinth_stream_finish
 * hands that buffer to output_set. So the module runs on both hosts with the same output.
 *
 * Rules:
 *  - Call plinth_stream_finish() before the export returns, on every path (errors too): on
 *    Extism it sets the output and it always resets the fallback for the next call.
 *  - Do not also set the output with plinth_output_bytes/_str in a streaming export: on
 *    Extism, finish's output_set would replace it (or it would replace what was streamed).
 *  - plinth_input_read reads the whole input through the stream when the classic input is
 *    empty, so a whole-buffer export of a streaming plug-in gets its input when the host
 *    streams too.
 *  - The functions are weak, so several files of one plug-in may define PLINTH_STREAM.
 */
#ifdef PLINTH_STREAM

/* The fallback's state (hosts that do not stream). Weak, so every file shares one copy. */
__attribute__((weak)) uint64_t plinth_stream_read_offset_ = 0;
__attribute__((weak)) uint8_t *plinth_stream_out_ = NULL;
__attribute__((weak)) size_t plinth_stream_out_len_ = 0;
__attribute__((weak)) size_t plinth_stream_out_cap_ = 0;

/* Exported for the host, which replaces the body. noinline and weak (a definition that may be
 * replaced) so that every call goes through the export and the compiler assumes nothing about
 * its result from the fallback body below. */
#define PLINTH_STREAM_FN_(name) __attribute__((weak, noinline, export_name(#name)))

/* Copies up to len bytes of the input stream to address ptr; returns how many, 0 at the end
 * of the stream, -1 when the host's input failed. Fallback: the classic input, from an offset. */
PLINTH_STREAM_FN_(plinth_stream_read) int32_t plinth_stream_read(int32_t ptr, int32_t len) {
    if (len <= 0) return 0;
    uint64_t total = plinth_input_length();
    uint64_t off = plinth_stream_read_offset_;
    uint64_t left = total > off ? total - off : 0;
    size_t n = (size_t)(left < (uint64_t)len ? left : (uint64_t)len);
    uint8_t *dst = (uint8_t *)(uintptr_t)(uint32_t)ptr;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = plinth_input_load_u64(off + i);
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++) dst[i] = plinth_input_load_u8(off + i);
    plinth_stream_read_offset_ = off + n;
    return (int32_t)n;
}

/* Delivers the len bytes at address ptr to the output stream; returns 0, or -1 when the
 * output is closed. Fallback: appends to a buffer (-1 when malloc fails). */
PLINTH_STREAM_FN_(plinth_stream_write) int32_t plinth_stream_write(int32_t ptr, int32_t len) {
    if (len < 0) return -1;
    if (len == 0) return 0;
    size_t need = plinth_stream_out_len_ + (size_t)len;
    if (need < plinth_stream_out_len_) return -1; /* overflow */
    if (need > plinth_stream_out_cap_) {
        size_t cap = plinth_stream_out_cap_ ? plinth_stream_out_cap_ : 65536;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                cap = need;
                break;
            }
            cap *= 2;
        }
        uint8_t *grown = (uint8_t *)realloc(plinth_stream_out_, cap);
        if (!grown) return -1;
        plinth_stream_out_ = grown;
        plinth_stream_out_cap_ = cap;
    }
    memcpy(plinth_stream_out_ + plinth_stream_out_len_, (const void *)(uintptr_t)(uint32_t)ptr,
           (size_t)len);
    plinth_stream_out_len_ = need;
    return 0;
}

/* Reads up to len bytes of the call's input into buf. Returns the number read (at least 1),
 * 0 at the end of the input, or -1 when the host's input stream failed (the call then fails
 * with the host's error whatever the plug-in does). */
static inline int32_t plinth_input_stream_read(uint8_t *buf, int32_t len) {
    return plinth_stream_read((int32_t)(uintptr_t)buf, len);
}

/* Writes buf[0..len) to the call's output; the host delivers it before this returns. Returns
 * 0, or -1 when the output is closed (stop writing; the call fails with the host's error). */
static inline int32_t plinth_output_stream_write(const uint8_t *buf, int32_t len) {
    return plinth_stream_write((int32_t)(uintptr_t)buf, len);
}

/* Ends the streaming part of a call; call it before the export returns, on every path. Where
 * the host did not stream (Extism), it sets the call's output to what the writes collected
 * (if the Extism memory for it cannot be allocated, it fails the call with an error). It also
 * resets the fallback's input offset for the next call. */
static inline void plinth_stream_finish(void) {
    if (plinth_stream_out_len_ > 0) {
        plinth_handle h = plinth_alloc_bytes(plinth_stream_out_, plinth_stream_out_len_);
        if (h)
            plinth_output_set(h, plinth_stream_out_len_);
        else
            plinth_set_error("plinth_stream_finish: cannot allocate Extism memory for the output");
    }
    free(plinth_stream_out_);
    plinth_stream_out_ = NULL;
    plinth_stream_out_len_ = plinth_stream_out_cap_ = 0;
    plinth_stream_read_offset_ = 0;
}

/* ------------------------------------------------------------------------------------------
 * HTTP with streamed bodies (docs/streaming.md), also with PLINTH_STREAM
 * ------------------------------------------------------------------------------------------
 *
 *     int64_t h = plinth_http_stream_open("{\"url\":\"https://example.com/feed\"}");
 *     if (plinth_http_stream_status(h) == 200) {         // ends the body, waits for the head
 *         int32_t n;
 *         while ((n = plinth_http_stream_read_into(h, buf, sizeof buf)) > 0) ... buf[0..n) ...
 *     }
 *     plinth_http_stream_close(h);
 *
 * plinth_http_stream_write(h, data, len) before the status sends the request body in chunks.
 * A Plinth host sends and reads as the plug-in goes (the same allowed_hosts, deadline and
 * response cap as http_request); the fallback (Extism) collects the body, sends the whole
 * request with http_request when the status is first asked for, and serves the answer from
 * memory. The exported functions are `plinth_http_stream_start`, `_send`, `_status`, `_read`
 * and `_close`; the host replaces their bodies at load time. A failure (a host not allowed, a
 * bad handle) ends the call on a Plinth host, and gives 0 or -1 on the fallback.
 */

/* The fallback's requests: a few at once, as on a Plinth host. */
#define PLINTH_HTTP_STREAMS_ 8
typedef struct {
    int used;
    plinth_handle request; /* the JSON block */
    plinth_buf body;
    int answered;
    int32_t status;
    uint8_t *answer;
    size_t answer_len, answer_pos;
} plinth_http_stream_state_;
__attribute__((weak)) plinth_http_stream_state_ plinth_http_streams_[PLINTH_HTTP_STREAMS_];

static inline plinth_http_stream_state_ *plinth_http_stream_find_(int64_t h) {
    if (h < 1 || h > PLINTH_HTTP_STREAMS_ || !plinth_http_streams_[h - 1].used) return NULL;
    return &plinth_http_streams_[h - 1];
}

/* Starts the request in block req (the block is the host's to free); returns a handle. */
PLINTH_STREAM_FN_(plinth_http_stream_start) int64_t plinth_http_stream_start(int64_t req) {
    for (int i = 0; i < PLINTH_HTTP_STREAMS_; i++) {
        plinth_http_stream_state_ *s = &plinth_http_streams_[i];
        if (!s->used) {
            memset(s, 0, sizeof *s);
            s->used = 1;
            s->request = (plinth_handle)req;
            return i + 1;
        }
    }
    plinth_free((plinth_handle)req);
    return 0;
}

/* Sends the len bytes at address ptr as the next chunk of the request body; 0. */
PLINTH_STREAM_FN_(plinth_http_stream_send) int32_t plinth_http_stream_send(int64_t h, int32_t ptr,
                                                                           int32_t len) {
    plinth_http_stream_state_ *s = plinth_http_stream_find_(h);
    if (!s || s->answered || len < 0) return -1;
    plinth_buf_add(&s->body, (const void *)(uintptr_t)(uint32_t)ptr, (size_t)len);
    return s->body.failed ? -1 : 0;
}

/* Ends the request body and waits for the answer; returns its status. */
PLINTH_STREAM_FN_(plinth_http_stream_status) int32_t plinth_http_stream_status(int64_t h) {
    plinth_http_stream_state_ *s = plinth_http_stream_find_(h);
    if (!s) return 0;
    if (!s->answered) {
        s->answered = 1;
        plinth_handle body = s->body.len ? plinth_alloc_bytes(s->body.data, s->body.len) : 0;
        plinth_handle out = plinth_http_request(s->request, body); /* frees both */
        s->request = 0;
        s->status = plinth_http_status_code();
        s->answer = out ? plinth_read_block(out, &s->answer_len) : NULL;
        if (out) plinth_free(out);
        free(s->body.data);
        memset(&s->body, 0, sizeof s->body);
    }
    return s->status;
}

/* Copies up to len bytes of the answer's body to address ptr; the count, 0 at its end. */
PLINTH_STREAM_FN_(plinth_http_stream_read) int32_t plinth_http_stream_read(int64_t h, int32_t ptr,
                                                                           int32_t len) {
    plinth_http_stream_state_ *s = plinth_http_stream_find_(h);
    if (!s || len < 0) return -1;
    plinth_http_stream_status(h);
    size_t left = s->answer_len - s->answer_pos;
    size_t n = left < (size_t)len ? left : (size_t)len;
    if (n) memcpy((void *)(uintptr_t)(uint32_t)ptr, s->answer + s->answer_pos, n);
    s->answer_pos += n;
    return (int32_t)n;
}

/* Closes the request. */
PLINTH_STREAM_FN_(plinth_http_stream_close) void plinth_http_stream_close(int64_t h) {
    plinth_http_stream_state_ *s = plinth_http_stream_find_(h);
    if (!s) return;
    if (s->request) plinth_free(s->request);
    free(s->body.data);
    free(s->answer);
    memset(s, 0, sizeof *s);
}

/* Starts the request described by JSON (`{"url":..,"method":..,"headers":{..}}`); returns a
 * handle, or 0 when there is no memory for it. */
static inline int64_t plinth_http_stream_open(const char *request_json) {
    plinth_handle req = plinth_alloc_str(request_json);
    return req ? plinth_http_stream_start((int64_t)req) : 0;
}

/* Sends data[0..len) as the next chunk of the request body: 0, or -1. */
static inline int32_t plinth_http_stream_write(int64_t h, const void *data, int32_t len) {
    return plinth_http_stream_send(h, (int32_t)(uintptr_t)data, len);
}

/* Reads up to len bytes of the answer's body into buf: the count, 0 at its end. */
static inline int32_t plinth_http_stream_read_into(int64_t h, uint8_t *buf, int32_t len) {
    return plinth_http_stream_read(h, (int32_t)(uintptr_t)buf, len);
}

#endif /* PLINTH_STREAM */

#ifdef __cplusplus
}
#endif

#endif /* PLINTH_PDK_H */
