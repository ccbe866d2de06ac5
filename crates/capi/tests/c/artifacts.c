// Tests of precompiled artifacts and fresh calls through libplinth's C header:
// plinth_compile_artifact, plinth_compiled_plugin_new_from_artifact,
// plinth_compiled_plugin_is_precompiled, plinth_compiled_plugin_call_fresh (and its
// _with_host_context form), plinth_buffer_free, and PLINTH_ERROR_KIND_ARTIFACT.
// Prints one line per failed check and "N passed, N failed" at the end; exits non-zero on any
// failure. ITERATIONS (environment) sets the length of the compile/load/call/free loop (for
// leak checks).

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define IMPORTS                                                                     \
  "(import \"extism:host/env\" \"input_length\" (func $input_length (result i64)))" \
  "(import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))" \
  "(import \"extism:host/env\" \"input_load_u8\" (func $input_load_u8 (param i64) (result i32)))" \
  "(import \"extism:host/env\" \"alloc\" (func $alloc (param i64) (result i64)))"   \
  "(import \"extism:host/env\" \"store_u8\" (func $store_u8 (param i64 i32)))"      \
  "(import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"  \
  "(import \"extism:host/env\" \"error_set\" (func $error_set (param i64)))"

// echo copies its input to its output; count adds one to a global and outputs it as a digit,
// so a fresh instance answers "1" every time and one kept instance "1", "2", "3", ...
static const char *PLUGIN =
    "(module " IMPORTS " (memory 1) (global $n (mut i32) (i32.const 0))"
    "(func (export \"echo\") (result i32) (local $n i64) (local $h i64) (local $i i64)"
    "  (local.set $n (call $input_length)) (local.set $h (call $alloc (local.get $n)))"
    "  (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (local.get $n)))"
    "    (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))"
    "    (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l)))"
    "  (call $output_set (local.get $h) (local.get $n)) (i32.const 0))"
    "(func (export \"count\") (result i32) (local $h i64)"
    "  (global.set $n (i32.add (global.get $n) (i32.const 1)))"
    "  (local.set $h (call $alloc (i64.const 1)))"
    "  (call $store_u8 (local.get $h) (i32.add (i32.const 48) (global.get $n)))"
    "  (call $output_set (local.get $h) (i64.const 1)) (i32.const 0))"
    "(func (export \"nothing\") (result i32) (i32.const 0))"
    "(func (export \"trap\") (result i32) unreachable)"
    "(func (export \"code7\") (result i32) (i32.const 7))"
    "(func (export \"fail0\") (result i32) (call $error_set (call $input_offset)) (i32.const 0)))";

// Imports `greet` and outputs what it returns.
static const char *HOST_PLUGIN =
    "(module (import \"extism:host/user\" \"greet\" (func $greet (param i64) (result i64)))"
    " (import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))"
    " (import \"extism:host/env\" \"length\" (func $length (param i64) (result i64)))"
    " (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"
    " (memory 1)"
    "(func (export \"run\") (result i32) (local $h i64)"
    "  (local.set $h (call $greet (call $input_offset)))"
    "  (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))";

static const uint8_t KEY[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t OTHER_KEY[32] = "fedcba9876543210fedcba9876543210";

// Returns the host context (a C string), or "no context".
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

static uint8_t *compile_artifact(const char *wat, ExtismSize *size) {
  char *err = NULL;
  uint8_t *a = plinth_compile_artifact((const uint8_t *)wat, strlen(wat), KEY, sizeof KEY, NULL, 0,
                                       false, size, &err);
  if (!a) printf("compile_artifact failed: %s\n", err ? err : "(no message)");
  extism_plugin_new_error_free(err);
  return a;
}

// Loads `artifact` under `key`: the compiled plug-in, or null with the failure's kind in
// *kind and (a copy of) its message in msg.
static ExtismCompiledPlugin *load(const uint8_t *artifact, ExtismSize size, const uint8_t *key,
                                  ExtismSize key_size, int32_t *kind, char *msg, size_t cap) {
  char *err = NULL;
  ExtismCompiledPlugin *c =
      plinth_compiled_plugin_new_from_artifact(artifact, size, key, key_size, NULL, 0, false, &err);
  *kind = plinth_plugin_new_error_kind(err);
  snprintf(msg, cap, "%s", err ? err : "");
  extism_plugin_new_error_free(err);
  return c;
}

// One fresh call: its return code; its output compared with `expected` in *same (NULL output
// expected on failure); the failure's kind in *kind (0 on success).
static int32_t fresh(ExtismCompiledPlugin *c, const char *fn, const char *input,
                     const char *expected, int *same, int32_t *kind) {
  uint8_t *out = (uint8_t *)"not set";
  ExtismSize n = 12345;
  char *err = NULL;
  int32_t rc = plinth_compiled_plugin_call_fresh(c, fn, (const uint8_t *)input,
                                                 input ? strlen(input) : 0, &out, &n, &err);
  *kind = plinth_plugin_new_error_kind(err);
  if (rc == 0) {
    *same = err == NULL && out != NULL && n == strlen(expected) && memcmp(out, expected, n) == 0;
  } else {
    *same = out == NULL && n == 0 && err != NULL;
  }
  plinth_buffer_free(out);
  extism_plugin_new_error_free(err);
  return rc;
}

static int output_is(ExtismPlugin *p, const char *expected) {
  ExtismSize n = extism_plugin_output_length(p);
  const uint8_t *d = extism_plugin_output_data(p);
  return n == strlen(expected) && (n == 0 || memcmp(d, expected, n) == 0);
}

static void *fresh_counts(void *arg) {
  ExtismCompiledPlugin *c = arg;
  intptr_t ok = 1;
  for (int i = 0; i < 25; i++) {
    int same;
    int32_t kind;
    ok &= fresh(c, "count", NULL, "1", &same, &kind) == 0 && same;
  }
  return (void *)ok;
}

int main(void) {
  int same;
  int32_t kind;
  char msg[1024];

  CHECK(PLINTH_ERROR_KIND_ARTIFACT == 25, "PLINTH_ERROR_KIND_ARTIFACT is 25");
  CHECK(plinth_error_kind_name(PLINTH_ERROR_KIND_ARTIFACT) &&
            strcmp(plinth_error_kind_name(PLINTH_ERROR_KIND_ARTIFACT), "artifact") == 0,
        "kind 25 is named artifact");

  // Round trip: compile to an artifact, load it without compiling, call it.
  ExtismSize size = 0;
  uint8_t *artifact = compile_artifact(PLUGIN, &size);
  CHECK(artifact != NULL && size > 64, "compile_artifact");
  if (!artifact) return 1;
  CHECK(memcmp(artifact, "plinth artifact", 15) == 0, "the artifact starts with its magic");
  ExtismCompiledPlugin *c = load(artifact, size, KEY, sizeof KEY, &kind, msg, sizeof msg);
  CHECK(c != NULL && kind == 0, "new_from_artifact");
  if (!c) {
    printf("  %s\n", msg);
    return 1;
  }
  CHECK(plinth_compiled_plugin_is_precompiled(c), "an artifact's plug-in is precompiled");
  CHECK(fresh(c, "echo", "hello artifact", "hello artifact", &same, &kind) == 0 && same && kind == 0,
        "call_fresh on the artifact's plug-in");
  ExtismPlugin *inst = extism_plugin_new_from_compiled(c, NULL);
  CHECK(inst && extism_plugin_call(inst, "echo", (const uint8_t *)"again", 5) == 0 && output_is(inst, "again"),
        "an instance of the artifact's plug-in");
  extism_plugin_free(inst);

  // A plug-in compiled from wasm is not precompiled.
  ExtismCompiledPlugin *compiled =
      extism_compiled_plugin_new((const uint8_t *)PLUGIN, strlen(PLUGIN), NULL, 0, false, NULL);
  CHECK(compiled && !plinth_compiled_plugin_is_precompiled(compiled), "compiled from wasm: not precompiled");
  CHECK(!plinth_compiled_plugin_is_precompiled(NULL), "is_precompiled NULL");

  // Refused artifacts: kind artifact (25), nothing loaded.
  uint8_t *tampered = malloc(size);
  size_t spots[] = {0, 20, 40, 90, size / 2, size - 100, size - 1};
  for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
    memcpy(tampered, artifact, size);
    tampered[spots[i]] ^= 1;
    ExtismCompiledPlugin *t = load(tampered, size, KEY, sizeof KEY, &kind, msg, sizeof msg);
    CHECK(t == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT, "a tampered artifact is refused with kind 25");
    extism_compiled_plugin_free(t);
  }
  free(tampered);
  ExtismCompiledPlugin *w = load(artifact, size, OTHER_KEY, sizeof OTHER_KEY, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT, "another key is refused with kind 25");
  CHECK(strstr(msg, "another key") != NULL, "the message says why");
  w = load(artifact, size - 7, KEY, sizeof KEY, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT, "a cut artifact is refused with kind 25");
  w = load((const uint8_t *)PLUGIN, strlen(PLUGIN), KEY, sizeof KEY, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT && strstr(msg, "plinth compile"),
        "WAT is not an artifact: kind 25, says what to do");
  w = load(NULL, 0, KEY, sizeof KEY, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT, "an empty artifact is refused with kind 25");
  w = load(artifact, size, KEY, 8, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT && strstr(msg, "16 bytes"),
        "a key shorter than 16 bytes: kind 25");
  w = load(NULL, 10, KEY, sizeof KEY, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_OTHER && strstr(msg, "artifact"), "NULL artifact with a size");
  w = load(artifact, size, NULL, 32, &kind, msg, sizeof msg);
  CHECK(w == NULL && kind == PLINTH_ERROR_KIND_OTHER && strstr(msg, "key"), "NULL key with a size");
  CHECK(plinth_compiled_plugin_new_from_artifact(artifact, size, OTHER_KEY, sizeof OTHER_KEY, NULL, 0, false,
                                                 NULL) == NULL,
        "NULL errmsg is fine");

  // compile_artifact's own failures.
  char *err = NULL;
  ExtismSize bad_size = 99;
  CHECK(plinth_compile_artifact((const uint8_t *)PLUGIN, strlen(PLUGIN), KEY, 15, NULL, 0, false, &bad_size,
                                &err) == NULL &&
            bad_size == 0 && plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_ARTIFACT,
        "compile_artifact: a short key is kind 25");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(plinth_compile_artifact((const uint8_t *)"\0asm garbage", 12, KEY, sizeof KEY, NULL, 0, false, &bad_size,
                                &err) == NULL &&
            plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_COMPILE,
        "compile_artifact: bad wasm is kind compile");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(plinth_compile_artifact((const uint8_t *)PLUGIN, strlen(PLUGIN), KEY, sizeof KEY, NULL, 0, false, NULL,
                                &err) == NULL &&
            err && strstr(err, "artifact_size"),
        "compile_artifact: NULL artifact_size");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(plinth_compile_artifact((const uint8_t *)HOST_PLUGIN, strlen(HOST_PLUGIN), KEY, sizeof KEY, NULL, 0, false,
                                &bad_size, &err) == NULL &&
            plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_LINK && strstr(err, "greet"),
        "compile_artifact: a missing host function is kind link");
  extism_plugin_new_error_free(err);

  // Host functions: the artifact of a plug-in that imports one, loaded with it; the host
  // context reaches it in a fresh call.
  ExtismValType ptr[] = {EXTISM_PTR};
  ExtismFunction *f = extism_function_new("greet", ptr, 1, ptr, 1, context_fn, NULL, NULL);
  const ExtismFunction *fns[] = {f};
  ExtismSize host_size = 0;
  err = NULL;
  uint8_t *host_artifact = plinth_compile_artifact((const uint8_t *)HOST_PLUGIN, strlen(HOST_PLUGIN), KEY,
                                                   sizeof KEY, fns, 1, false, &host_size, &err);
  CHECK(host_artifact != NULL && err == NULL, "compile_artifact with a host function");
  ExtismCompiledPlugin *hc =
      plinth_compiled_plugin_new_from_artifact(host_artifact, host_size, KEY, sizeof KEY, fns, 1, false, &err);
  CHECK(hc && plinth_compiled_plugin_is_precompiled(hc), "new_from_artifact with a host function");
  char context[] = "from the host";
  uint8_t *out = NULL;
  ExtismSize n = 0;
  CHECK(plinth_compiled_plugin_call_fresh_with_host_context(hc, "run", NULL, 0, context, &out, &n, &err) == 0 &&
            n == strlen(context) && memcmp(out, context, n) == 0,
        "call_fresh_with_host_context");
  plinth_buffer_free(out);
  CHECK(fresh(hc, "run", NULL, "no context", &same, &kind) == 0 && same, "call_fresh: no host context");
  extism_compiled_plugin_free(hc);
  plinth_buffer_free(host_artifact);
  extism_function_free(f);

  // Isolation: a kept instance counts up; every fresh call starts from the module's state.
  ExtismPlugin *kept = extism_plugin_new_from_compiled(compiled, NULL);
  CHECK(kept && extism_plugin_call(kept, "count", NULL, 0) == 0 && output_is(kept, "1") &&
            extism_plugin_call(kept, "count", NULL, 0) == 0 && output_is(kept, "2") &&
            extism_plugin_call(kept, "count", NULL, 0) == 0 && output_is(kept, "3"),
        "one instance counts 1, 2, 3");
  extism_plugin_free(kept);
  int ones = 1;
  for (int i = 0; i < 5; i++) {
    ones &= fresh(compiled, "count", NULL, "1", &same, &kind) == 0 && same;
    ones &= fresh(c, "count", NULL, "1", &same, &kind) == 0 && same;
  }
  CHECK(ones, "every fresh call counts 1 (compiled from wasm and from an artifact)");
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, fresh_counts, i % 2 ? c : compiled);
  intptr_t all = 1;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(threads[i], &r);
    all &= (intptr_t)r;
  }
  CHECK(all, "fresh calls from 4 threads at once each count 1");

  // Fresh calls' failures: Extism's codes, 0 only for success, kinds by errmsg.
  CHECK(fresh(c, "trap", NULL, NULL, &same, &kind) == 134 && same && kind == PLINTH_ERROR_KIND_TRAP,
        "call_fresh: a trap gives 134, kind trap");
  CHECK(fresh(c, "code7", NULL, NULL, &same, &kind) == 7 && same && kind == PLINTH_ERROR_KIND_GUEST,
        "call_fresh: the guest's own code");
  CHECK(fresh(c, "fail0", "no good", NULL, &same, &kind) == -1 && same && kind == PLINTH_ERROR_KIND_GUEST,
        "call_fresh: an error with return code 0 gives -1");
  CHECK(fresh(c, "nope", NULL, NULL, &same, &kind) == -1 && same && kind == PLINTH_ERROR_KIND_FUNCTION_NOT_FOUND,
        "call_fresh: a missing function");
  CHECK(fresh(c, "echo", "after failures", "after failures", &same, &kind) == 0 && same,
        "call_fresh after failures");
  CHECK(fresh(c, "nothing", NULL, "", &same, &kind) == 0 && same, "call_fresh: empty output");
  CHECK(fresh(NULL, "echo", NULL, NULL, &same, &kind) == -1 && same && kind == PLINTH_ERROR_KIND_OTHER,
        "call_fresh: NULL compiled plug-in");
  CHECK(fresh(c, NULL, NULL, NULL, &same, &kind) == -1 && same && kind == PLINTH_ERROR_KIND_OTHER,
        "call_fresh: NULL function name");
  err = NULL;
  CHECK(plinth_compiled_plugin_call_fresh(c, "echo", NULL, 3, &out, &n, &err) == -1 && out == NULL && err &&
            strstr(err, "data_len"),
        "call_fresh: NULL data with a length");
  extism_plugin_new_error_free(err);
  n = 99;
  CHECK(plinth_compiled_plugin_call_fresh(c, "echo", (const uint8_t *)"abc", 3, NULL, &n, NULL) == 0 && n == 3,
        "call_fresh: NULL output and errmsg are fine");
  CHECK(plinth_compiled_plugin_call_fresh(c, "trap", NULL, 0, NULL, NULL, NULL) == 134,
        "call_fresh: NULL everything out");

  // plinth_buffer_free ignores what it did not hand out.
  plinth_buffer_free(NULL);
  uint8_t not_ours[4];
  plinth_buffer_free(not_ours);
  out = NULL;
  plinth_compiled_plugin_call_fresh(c, "echo", (const uint8_t *)"x", 1, &out, &n, NULL);
  plinth_buffer_free(out);
  plinth_buffer_free(out);
  CHECK(1, "buffer_free: NULL, foreign and double frees are ignored");

  // Compile, load, call and free in a loop (leak checkers watch this).
  const char *env = getenv("ITERATIONS");
  int iterations = env ? atoi(env) : 50;
  int ok = 1;
  for (int i = 0; i < iterations; i++) {
    ExtismSize s = 0;
    uint8_t *a = compile_artifact(PLUGIN, &s);
    if (!a) {
      ok = 0;
      break;
    }
    ExtismCompiledPlugin *l = load(a, s, KEY, sizeof KEY, &kind, msg, sizeof msg);
    ok &= l != NULL && fresh(l, "echo", "loop", "loop", &same, &kind) == 0 && same;
    ok &= fresh(l, "trap", NULL, NULL, &same, &kind) == 134 && same;
    a[s / 2] ^= 1;
    ok &= load(a, s, KEY, sizeof KEY, &kind, msg, sizeof msg) == NULL && kind == PLINTH_ERROR_KIND_ARTIFACT;
    plinth_buffer_free(a);
    extism_compiled_plugin_free(l);
  }
  CHECK(ok, "compile/load/call/free loop");

  extism_compiled_plugin_free(compiled);
  extism_compiled_plugin_free(c);
  plinth_buffer_free(artifact);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
