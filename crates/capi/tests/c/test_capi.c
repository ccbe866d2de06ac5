// Tests of libplinth through its C header: every function and its error paths. Prints one
// line per check and "N passed, N failed" at the end; exits non-zero on any failure.
// ITERATIONS (environment) sets the length of the create/call/free loop (for leak checks).

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plinth.h"

static int passed, failed;

#define CHECK(cond, what)                                                  \
  do {                                                                     \
    if (cond) {                                                            \
      passed++;                                                            \
    } else {                                                               \
      failed++;                                                            \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, what);                \
    }                                                                      \
  } while (0)

// The Extism imports these WAT plug-ins use, and a helper that copies the input to output.
#define IMPORTS                                                                     \
  "(import \"extism:host/env\" \"input_length\" (func $input_length (result i64)))" \
  "(import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))" \
  "(import \"extism:host/env\" \"input_load_u8\" (func $input_load_u8 (param i64) (result i32)))" \
  "(import \"extism:host/env\" \"alloc\" (func $alloc (param i64) (result i64)))"   \
  "(import \"extism:host/env\" \"length\" (func $length (param i64) (result i64)))" \
  "(import \"extism:host/env\" \"store_u8\" (func $store_u8 (param i64 i32)))"      \
  "(import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"  \
  "(import \"extism:host/env\" \"config_get\" (func $config_get (param i64) (result i64)))" \
  "(import \"extism:host/env\" \"log_info\" (func $log_info (param i64)))"        \
  "(import \"extism:host/env\" \"error_set\" (func $error_set (param i64)))"

#define ECHO_FN                                                                      \
  "(func $echo_input (local $n i64) (local $h i64) (local $i i64)"                   \
  "  (local.set $n (call $input_length)) (local.set $h (call $alloc (local.get $n)))" \
  "  (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (local.get $n)))"          \
  "    (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))" \
  "    (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l)))"               \
  "  (call $output_set (local.get $h) (local.get $n)))"

static const char *ECHO =
    "(module " IMPORTS " (memory 1) " ECHO_FN
    "(func (export \"echo\") (result i32) (call $echo_input) (i32.const 0))"
    "(func (export \"config\") (result i32) (local $v i64)"
    "  (local.set $v (call $config_get (call $input_offset)))"
    "  (call $output_set (local.get $v) (call $length (local.get $v))) (i32.const 0))"
    "(func (export \"log\") (result i32) (call $log_info (call $input_offset)) (i32.const 0))"
    "(func (export \"spin\") (result i32) (loop $l (br $l)) (i32.const 0))"
    "(func (export \"trap\") (result i32) unreachable)"
    "(func (export \"code7\") (result i32) (i32.const 7))"
    "(func (export \"fail7\") (result i32) (call $error_set (call $input_offset)) (i32.const 7)))";

// Imports `greet` from extism:host/user (or a namespace spliced in) and returns its result.
static const char *HOST_TEMPLATE =
    "(module (import \"%s\" \"greet\" (func $greet (param i64) (result i64))) " IMPORTS
    " (memory 1)"
    "(func (export \"run\") (result i32) (local $h i64)"
    "  (local.set $h (call $greet (call $input_offset)))"
    "  (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))";

static int frees;
static void count_free(void *data) {
  (void)data;
  frees++;
}

// greet: prefixes "Hello, " to the input block, via current-plugin memory calls.
static void greet(ExtismCurrentPlugin *plugin, const ExtismVal *in, ExtismSize n_in,
                  ExtismVal *out, ExtismSize n_out, void *user_data) {
  const char *prefix = user_data ? (const char *)user_data : "Hello, ";
  ExtismMemoryHandle h = (ExtismMemoryHandle)in[0].v.i64;
  ExtismSize len = extism_current_plugin_memory_length(plugin, h);
  size_t plen = strlen(prefix);
  ExtismMemoryHandle o = extism_current_plugin_memory_alloc(plugin, plen + len);
  uint8_t *base = extism_current_plugin_memory(plugin);
  memcpy(base + o, prefix, plen);
  memcpy(base + o + plen, base + h, len);
  extism_current_plugin_memory_free(plugin, h);
  out[0].t = ExtismValType_I64;
  out[0].v.i64 = (int64_t)o;
  (void)n_in;
  (void)n_out;
}

// Reads the host context (a C string) and returns it.
static void context_fn(ExtismCurrentPlugin *plugin, const ExtismVal *in, ExtismSize n_in,
                       ExtismVal *out, ExtismSize n_out, void *user_data) {
  const char *ctx = extism_current_plugin_host_context(plugin);
  const char *text = ctx ? ctx : "no context";
  ExtismMemoryHandle o = extism_current_plugin_memory_alloc(plugin, strlen(text));
  memcpy(extism_current_plugin_memory(plugin) + o, text, strlen(text));
  out[0].t = ExtismValType_I64;
  out[0].v.i64 = (int64_t)o;
  (void)in; (void)n_in; (void)n_out; (void)user_data;
}

// Calls back into the plug-in it was called from: must be refused, not deadlock.
static int reentrant_rc = 12345;
static void reenter(ExtismCurrentPlugin *plugin, const ExtismVal *in, ExtismSize n_in,
                    ExtismVal *out, ExtismSize n_out, void *user_data) {
  ExtismPlugin *self = *(ExtismPlugin **)user_data;
  reentrant_rc = extism_plugin_call(self, "run", (const uint8_t *)"x", 1);
  ExtismMemoryHandle o = extism_current_plugin_memory_alloc(plugin, 2);
  memcpy(extism_current_plugin_memory(plugin) + o, "ok", 2);
  out[0].t = ExtismValType_I64;
  out[0].v.i64 = (int64_t)o;
  (void)in; (void)n_in; (void)n_out;
}

static int output_is(ExtismPlugin *p, const char *expected) {
  ExtismSize n = extism_plugin_output_length(p);
  const uint8_t *d = extism_plugin_output_data(p);
  return n == strlen(expected) && (n == 0 || memcmp(d, expected, n) == 0);
}

static ExtismPlugin *load(const char *wat, const ExtismFunction **fns, ExtismSize n) {
  char *err = NULL;
  ExtismPlugin *p = extism_plugin_new((const uint8_t *)wat, strlen(wat), fns, n, false, &err);
  if (!p) {
    printf("load failed: %s\n", err ? err : "(no message)");
    extism_plugin_new_error_free(err);
  }
  return p;
}

static void *cancel_later(void *arg) {
  usleep(100 * 1000);
  extism_plugin_cancel((const ExtismCancelHandle *)arg);
  return NULL;
}

static char drained[4096];
static void drain(const char *data, ExtismSize size) {
  size_t used = strlen(drained);
  if (used + size + 2 < sizeof drained) {
    memcpy(drained + used, data, size);
    drained[used + size] = '\n';
    drained[used + size + 1] = 0;
  }
}

// Writes a result type that is none of the ExtismValType enumerators.
static void bad_result_type(ExtismCurrentPlugin *plugin, const ExtismVal *in, ExtismSize n_in,
                            ExtismVal *out, ExtismSize n_out, void *user_data) {
  out[0].t = (ExtismValType)99;
  out[0].v.i64 = 0;
  (void)plugin; (void)in; (void)n_in; (void)n_out; (void)user_data;
}

static size_t counted_bytes, counted_lines;
static int lines_terminated = 1;
static char first_line[512];
static void count_drain(const char *data, ExtismSize size) {
  if (counted_lines == 0) snprintf(first_line, sizeof first_line, "%.*s", (int)size, data);
  counted_lines++;
  counted_bytes += size;
  if (data[size] != '\0') lines_terminated = 0;
}

int main(void) {
  CHECK(extism_version() && strlen(extism_version()) > 0, "version");
  CHECK(extism_log_custom("info"), "log_custom");

  // Load, call, output, errors.
  ExtismPlugin *p = load(ECHO, NULL, 0);
  CHECK(p != NULL, "plugin_new from WAT");
  CHECK(extism_plugin_call(p, "echo", (const uint8_t *)"hello", 5) == 0, "call echo");
  CHECK(output_is(p, "hello"), "echo output");
  CHECK(extism_plugin_error(p) == NULL, "no error after success");
  CHECK(extism_plugin_call(p, "echo", NULL, 0) == 0 && output_is(p, ""), "empty input");
  CHECK(extism_plugin_function_exists(p, "echo"), "function_exists echo");
  CHECK(!extism_plugin_function_exists(p, "nope"), "function_exists nope");
  CHECK(!extism_plugin_function_exists(p, NULL), "function_exists NULL");
  CHECK(extism_plugin_call(p, "nope", NULL, 0) != 0, "missing function fails");
  CHECK(extism_plugin_error(p) && strstr(extism_plugin_error(p), "not found"), "not-found message");
  CHECK(strcmp(extism_error(p), extism_plugin_error(p)) == 0, "extism_error alias");
  CHECK(extism_plugin_call(p, "trap", NULL, 0) == 134, "a trap gives 134, as on Extism");
  CHECK(strstr(extism_plugin_error(p), "unreachable") != NULL, "trap message");
  CHECK(extism_plugin_call(p, "code7", NULL, 0) == 7, "the guest's own return code");
  CHECK(extism_plugin_call(p, "echo", (const uint8_t *)"again", 5) == 0 && output_is(p, "again"),
        "plug-in works after a trap");
  CHECK(extism_plugin_call(p, NULL, NULL, 0) == -1, "NULL function name");
  CHECK(extism_plugin_call(p, "echo", NULL, 5) == -1, "NULL data with length");
  CHECK(extism_plugin_reset(p), "reset");

  // Config.
  const char *cfg = "{\"greeting\":\"hej\"}";
  CHECK(extism_plugin_config(p, (const uint8_t *)cfg, strlen(cfg)), "config set");
  CHECK(extism_plugin_call(p, "config", (const uint8_t *)"greeting", 8) == 0 && output_is(p, "hej"),
        "config read by the plug-in");
  const char *del = "{\"greeting\":null}";
  CHECK(extism_plugin_config(p, (const uint8_t *)del, strlen(del)), "config delete");
  CHECK(extism_plugin_call(p, "config", (const uint8_t *)"greeting", 8) == 0 && output_is(p, ""),
        "config key removed");
  CHECK(!extism_plugin_config(p, (const uint8_t *)"[1,2]", 5), "config rejects non-objects");
  CHECK(extism_plugin_error(p) && strstr(extism_plugin_error(p), "JSON"), "config error message");
  CHECK(!extism_plugin_config(p, NULL, 3), "config NULL");

  // The string extism_plugin_error returned stays valid until the next call, whatever
  // extism_plugin_config does in between (valgrind reports a read of freed memory).
  CHECK(extism_plugin_call(p, "fail7", (const uint8_t *)"no good", 7) == 7,
        "an error with the plug-in's own code 7 gives 7");
  const char *call_error = extism_plugin_error(p);
  CHECK(call_error && strstr(call_error, "no good"), "the plug-in's message");
  char kept[256];
  snprintf(kept, sizeof kept, "%s", call_error ? call_error : "");
  CHECK(extism_plugin_config(p, (const uint8_t *)"{\"k\":\"v\"}", 9), "config after a failed call");
  CHECK(extism_plugin_error(p) == NULL, "a config that succeeds clears the error, as on Extism");
  CHECK(strcmp(call_error, kept) == 0, "the call's error string survives a config that succeeds");
  CHECK(!extism_plugin_config(p, (const uint8_t *)"[1]", 3), "a config that fails");
  CHECK(strcmp(call_error, kept) == 0, "the call's error string survives a config that fails");
  CHECK(extism_plugin_error(p) && strstr(extism_plugin_error(p), "JSON object"), "config's own message");
  CHECK(extism_plugin_call(p, "echo", NULL, 0) == 0 && extism_plugin_error(p) == NULL,
        "the next call clears it");

  // Lengths no buffer can have are refused, not read (slices over isize::MAX bytes are
  // undefined behaviour in Rust).
  CHECK(extism_plugin_call(p, "echo", (const uint8_t *)"x", UINT64_MAX) == -1, "data_len UINT64_MAX");
  CHECK(extism_plugin_error(p) && strstr(extism_plugin_error(p), "data_len"), "data_len message");
  CHECK(!extism_plugin_config(p, (const uint8_t *)"{}", UINT64_MAX), "json_size UINT64_MAX");
  char *huge_err = NULL;
  CHECK(extism_plugin_new((const uint8_t *)ECHO, (ExtismSize)1 << 63, NULL, 0, false, &huge_err) == NULL &&
            huge_err && strstr(huge_err, "wasm_size"),
        "wasm_size 2^63");
  extism_plugin_new_error_free(huge_err);
  huge_err = NULL;
  const ExtismFunction *no_fns[1] = {NULL};
  CHECK(extism_plugin_new((const uint8_t *)ECHO, strlen(ECHO), no_fns, UINT64_MAX / 4, false, &huge_err) == NULL &&
            huge_err && strstr(huge_err, "n_functions"),
        "n_functions UINT64_MAX / 4");
  extism_plugin_new_error_free(huge_err);

  // Ids.
  ExtismPlugin *p2 = load(ECHO, NULL, 0);
  CHECK(extism_plugin_id(p) && extism_plugin_id(p2) && memcmp(extism_plugin_id(p), extism_plugin_id(p2), 16) != 0,
        "distinct ids");

  // Logging through a custom drain.
  CHECK(extism_plugin_call(p, "log", (const uint8_t *)"a log line", 10) == 0, "log call");
  extism_log_drain(drain);
  CHECK(strstr(drained, "a log line") != NULL, "log line drained");

  // The custom-log buffer is bounded: 40 lines of 60 KB (2.4 MB) without a drain keep at most
  // 1 MiB, the oldest dropped, and the drain says so first.
  size_t big_len = 60000;
  uint8_t *big = malloc(big_len);
  memset(big, 'L', big_len);
  int logged = 1;
  for (int i = 0; i < 40; i++) logged &= extism_plugin_call(p, "log", big, big_len) == 0;
  free(big);
  CHECK(logged, "40 big log lines");
  extism_log_drain(count_drain);
  CHECK(counted_bytes <= 1 << 20, "the log buffer holds at most 1 MiB until drained");
  CHECK(counted_lines > 1 && strstr(first_line, "log lines were dropped") != NULL,
        "the drain first reports how many lines were dropped");
  CHECK(lines_terminated, "drained lines are NUL-terminated");

  // Cancel from another thread.
  const ExtismCancelHandle *cancel = extism_plugin_cancel_handle(p);
  CHECK(cancel != NULL, "cancel handle");
  pthread_t t;
  pthread_create(&t, NULL, cancel_later, (void *)cancel);
  CHECK(extism_plugin_call(p, "spin", NULL, 0) != 0, "cancelled call fails");
  pthread_join(t, NULL);
  CHECK(strstr(extism_plugin_error(p), "cancelled") != NULL, "cancel message");
  CHECK(!extism_plugin_cancel(NULL), "cancel NULL");
  extism_plugin_free(p2);

  // Fuel.
  char *err = NULL;
  ExtismPlugin *fueled = extism_plugin_new_with_fuel_limit((const uint8_t *)ECHO, strlen(ECHO), NULL, 0,
                                                           false, 10000, &err);
  CHECK(fueled != NULL, "new_with_fuel_limit");
  CHECK(extism_plugin_call(fueled, "spin", NULL, 0) != 0, "fuel stops a loop");
  CHECK(strstr(extism_plugin_error(fueled), "fuel") != NULL, "fuel message");
  extism_plugin_free(fueled);

  // Creation errors.
  err = NULL;
  CHECK(extism_plugin_new((const uint8_t *)"\0asm garbage", 12, NULL, 0, false, &err) == NULL, "bad wasm");
  CHECK(err != NULL && strlen(err) > 0, "bad wasm message");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(extism_plugin_new(NULL, 10, NULL, 0, false, &err) == NULL && err != NULL, "NULL wasm");
  extism_plugin_new_error_free(err);
  CHECK(extism_plugin_new(NULL, 10, NULL, 0, false, NULL) == NULL, "NULL errmsg is fine");
  err = NULL;
  const char *bad_manifest = "{\"wasm\":[{\"path\":\"/no/such.wasm\"}],\"extra\":1}";
  CHECK(extism_plugin_new((const uint8_t *)bad_manifest, strlen(bad_manifest), NULL, 0, false, &err) == NULL,
        "bad manifest");
  CHECK(err && strstr(err, "extra"), "manifest error names the field");
  extism_plugin_new_error_free(err);
  err = NULL;
  char host_wat[4096];
  snprintf(host_wat, sizeof host_wat, HOST_TEMPLATE, "extism:host/user");
  CHECK(extism_plugin_new((const uint8_t *)host_wat, strlen(host_wat), NULL, 0, false, &err) == NULL,
        "missing host function");
  CHECK(err && strstr(err, "greet"), "missing import named");
  extism_plugin_new_error_free(err);

  // Host functions with user data, namespaces, host context.
  ExtismValType ptr[] = {EXTISM_PTR};
  ExtismFunction *f = extism_function_new("greet", ptr, 1, ptr, 1, greet, NULL, count_free);
  CHECK(f != NULL, "function_new");
  CHECK(extism_function_new(NULL, ptr, 1, ptr, 1, greet, NULL, NULL) == NULL, "function_new NULL name");
  CHECK(extism_function_new("x", ptr, 1, ptr, 1, NULL, NULL, NULL) == NULL, "function_new NULL callback");
  ExtismValType bogus[] = {(ExtismValType)42};
  CHECK(extism_function_new("x", bogus, 1, ptr, 1, greet, NULL, NULL) == NULL,
        "function_new refuses a type that is no ExtismValType");
  CHECK(extism_function_new("x", NULL, 1, ptr, 1, greet, NULL, NULL) == NULL,
        "function_new refuses NULL types with a count");
  CHECK(extism_function_new("x", ptr, UINT64_MAX / 2, ptr, 1, greet, NULL, NULL) == NULL,
        "function_new refuses a count no array can have");
  const ExtismFunction *fns[] = {f};
  ExtismPlugin *hp = load(host_wat, fns, 1);
  CHECK(hp != NULL, "plugin with host function");
  CHECK(extism_plugin_call(hp, "run", (const uint8_t *)"Ada", 3) == 0 && output_is(hp, "Hello, Ada"),
        "host function round trip");
  extism_function_free(f);
  CHECK(frees == 0, "user data lives while a plug-in uses the function");
  CHECK(extism_plugin_call(hp, "run", (const uint8_t *)"Bob", 3) == 0 && output_is(hp, "Hello, Bob"),
        "plug-in works after function_free");
  extism_plugin_free(hp);
  CHECK(frees == 1, "user data freed with the last plug-in");

  ExtismFunction *nf = extism_function_new("greet", ptr, 1, ptr, 1, greet, "Hi, ", NULL);
  extism_function_set_namespace(nf, "custom");
  snprintf(host_wat, sizeof host_wat, HOST_TEMPLATE, "custom");
  const ExtismFunction *nfns[] = {nf};
  ExtismPlugin *np = load(host_wat, nfns, 1);
  CHECK(np && extism_plugin_call(np, "run", (const uint8_t *)"Cy", 2) == 0 && output_is(np, "Hi, Cy"),
        "namespace and user data");
  extism_plugin_free(np);
  extism_function_free(nf);

  ExtismFunction *cf = extism_function_new("greet", ptr, 1, ptr, 1, context_fn, NULL, NULL);
  snprintf(host_wat, sizeof host_wat, HOST_TEMPLATE, "extism:host/user");
  const ExtismFunction *cfns[] = {cf};
  ExtismPlugin *cp = load(host_wat, cfns, 1);
  char context[] = "from the host";
  CHECK(extism_plugin_call_with_host_context(cp, "run", NULL, 0, context) == 0 && output_is(cp, "from the host"),
        "host context");
  CHECK(extism_plugin_call(cp, "run", NULL, 0) == 0 && output_is(cp, "no context"), "no host context");
  extism_plugin_free(cp);
  extism_function_free(cf);

  // A result type C wrote out of range fails the call instead of being trusted.
  ExtismFunction *bf = extism_function_new("greet", ptr, 1, ptr, 1, bad_result_type, NULL, NULL);
  const ExtismFunction *bfns[] = {bf};
  ExtismPlugin *bp = load(host_wat, bfns, 1);
  CHECK(bp && extism_plugin_call(bp, "run", (const uint8_t *)"x", 1) == -1,
        "a result type out of range fails the call");
  CHECK(bp && strstr(extism_plugin_error(bp), "ExtismValType"), "bad result type message");
  extism_plugin_free(bp);
  extism_function_free(bf);

  // Re-entrancy is refused, not a deadlock.
  ExtismPlugin *self = NULL;
  ExtismFunction *rf = extism_function_new("greet", ptr, 1, ptr, 1, reenter, &self, NULL);
  const ExtismFunction *rfns[] = {rf};
  self = load(host_wat, rfns, 1);
  CHECK(extism_plugin_call(self, "run", (const uint8_t *)"x", 1) == 0 && output_is(self, "ok"),
        "outer call completes");
  CHECK(reentrant_rc == -1, "re-entrant call refused");
  extism_plugin_free(self);
  extism_function_free(rf);

  // Compiled plug-ins.
  err = NULL;
  ExtismCompiledPlugin *compiled =
      extism_compiled_plugin_new((const uint8_t *)ECHO, strlen(ECHO), NULL, 0, false, &err);
  CHECK(compiled != NULL, "compiled_plugin_new");
  ExtismPlugin *a = extism_plugin_new_from_compiled(compiled, &err);
  ExtismPlugin *b = extism_plugin_new_from_compiled(compiled, &err);
  extism_compiled_plugin_free(compiled);
  CHECK(a && b, "new_from_compiled");
  CHECK(extism_plugin_call(a, "echo", (const uint8_t *)"A", 1) == 0 && output_is(a, "A"), "instance a");
  CHECK(extism_plugin_call(b, "echo", (const uint8_t *)"B", 1) == 0 && output_is(b, "B"), "instance b");
  CHECK(output_is(a, "A"), "outputs are per instance");
  err = NULL;
  CHECK(extism_plugin_new_from_compiled(NULL, &err) == NULL && err, "new_from_compiled NULL");
  extism_plugin_new_error_free(err);
  err = NULL;
  ExtismCompiledPlugin *fueled_compiled = extism_compiled_plugin_new_with_fuel_limit(
      (const uint8_t *)ECHO, strlen(ECHO), NULL, 0, false, 10000, &err);
  ExtismPlugin *fc = extism_plugin_new_from_compiled(fueled_compiled, &err);
  extism_compiled_plugin_free(fueled_compiled);
  CHECK(fc && extism_plugin_call(fc, "spin", NULL, 0) == -1 && strstr(extism_plugin_error(fc), "fuel"),
        "compiled_plugin_new_with_fuel_limit: fuel stops a loop");
  extism_plugin_free(fc);
  extism_plugin_free(a);
  extism_plugin_free(b);

  // WASI plug-ins load.
  err = NULL;
  ExtismPlugin *w = extism_plugin_new((const uint8_t *)ECHO, strlen(ECHO), NULL, 0, true, &err);
  CHECK(w != NULL, "with_wasi");
  extism_plugin_free(w);

  // NULL plug-in everywhere.
  CHECK(extism_plugin_call(NULL, "echo", NULL, 0) == -1, "call NULL plugin");
  CHECK(extism_plugin_output_length(NULL) == 0, "output_length NULL");
  CHECK(extism_plugin_output_data(NULL) == NULL, "output_data NULL");
  CHECK(extism_plugin_error(NULL) == NULL, "error NULL");
  CHECK(!extism_plugin_reset(NULL), "reset NULL");
  CHECK(extism_plugin_id(NULL) == NULL, "id NULL");
  CHECK(extism_plugin_cancel_handle(NULL) == NULL, "cancel_handle NULL");
  extism_plugin_free(NULL);
  extism_compiled_plugin_free(NULL);
  extism_function_free(NULL);
  extism_plugin_new_error_free(NULL);
  extism_plugin_allow_http_response_headers(NULL);

  // Create, call and free in a loop (leak checkers watch this).
  const char *env = getenv("ITERATIONS");
  int iterations = env ? atoi(env) : 200;
  compiled = extism_compiled_plugin_new((const uint8_t *)ECHO, strlen(ECHO), NULL, 0, false, NULL);
  int ok = 1;
  for (int i = 0; i < iterations; i++) {
    ExtismPlugin *q = extism_plugin_new_from_compiled(compiled, NULL);
    ok &= q && extism_plugin_call(q, "echo", (const uint8_t *)"loop", 4) == 0 && output_is(q, "loop");
    // Failure paths too: a trap (the instance is replaced), a guest error, a failed load.
    ok &= extism_plugin_call(q, "trap", NULL, 0) == 134 && extism_plugin_error(q) != NULL;
    ok &= extism_plugin_call(q, "code7", NULL, 0) == 7;
    ok &= extism_plugin_call(q, "echo", (const uint8_t *)"again", 5) == 0 && output_is(q, "again");
    char *load_err = NULL;
    static const char garbage[] = "\0asm\x01\0\0\0garbage";
    ExtismPlugin *bad = extism_plugin_new((const uint8_t *)garbage, sizeof garbage - 1, NULL, 0, false, &load_err);
    ok &= bad == NULL && load_err != NULL;
    extism_plugin_new_error_free(load_err);
    extism_plugin_free(q);
  }
  extism_compiled_plugin_free(compiled);
  CHECK(ok, "create/call/free loop");
  extism_plugin_free(p);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
