// Tests of streaming calls through libplinth's C header: plinth_plugin_call_stream (and its
// _with_host_context form), plinth_plugin_set_output_limit, PLINTH_ERROR_KIND_STREAM.
// Prints one line per failed check and "N passed, N failed" at the end; exits non-zero on any
// failure. ITERATIONS (environment) sets the length of the load/stream/free loop (for leak
// checks); MIB the size of the big echo (3 by default).

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plinth.h"

static int passed, failed;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) {                                            \
      passed++;                                            \
    } else {                                               \
      failed++;                                            \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
      printf(__VA_ARGS__);                                 \
      printf("\n");                                        \
    }                                                      \
  } while (0)

// Streams through plinth:host/env directly. echo copies 64 KiB chunks from input to output
// (1 when the input failed, 2 when the output closed); never_reads writes "done" without
// reading; flood writes 64 KiB chunks until the output closes; host calls the host function
// `note` and writes "x".
static const char *STREAMING =
    "(module"
    " (import \"plinth:host/env\" \"stream_read\" (func $sread (param i32 i32) (result i32)))"
    " (import \"plinth:host/env\" \"stream_write\" (func $swrite (param i32 i32) (result i32)))"
    " (import \"extism:host/user\" \"note\" (func $note (param i64) (result i64)))"
    " (memory (export \"memory\") 4)"
    " (data (i32.const 16) \"done\")"
    " (func (export \"echo\") (result i32) (local $n i32)"
    "  (block $done (loop $next"
    "   (local.set $n (call $sread (i32.const 1024) (i32.const 65536)))"
    "   (br_if $done (i32.eqz (local.get $n)))"
    "   (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))"
    "   (if (i32.lt_s (call $swrite (i32.const 1024) (local.get $n)) (i32.const 0))"
    "    (then (return (i32.const 2))))"
    "   (br $next)))"
    "  (i32.const 0))"
    " (func (export \"never_reads\") (result i32)"
    "  (drop (call $swrite (i32.const 16) (i32.const 4))) (i32.const 0))"
    " (func (export \"flood\") (result i32)"
    "  (loop $next"
    "   (br_if $next (i32.ge_s (call $swrite (i32.const 1024) (i32.const 65536)) (i32.const 0))))"
    "  (i32.const 0))"
    " (func (export \"host\") (result i32)"
    "  (drop (call $note (i64.const 0)))"
    "  (drop (call $swrite (i32.const 16) (i32.const 1))) (i32.const 0)))";

// A plug-in that does not stream: echo copies its whole input to its output through Extism's
// input and output functions.
static const char *CLASSIC =
    "(module"
    " (import \"extism:host/env\" \"input_length\" (func $input_length (result i64)))"
    " (import \"extism:host/env\" \"input_load_u8\" (func $input_load_u8 (param i64) (result i32)))"
    " (import \"extism:host/env\" \"alloc\" (func $alloc (param i64) (result i64)))"
    " (import \"extism:host/env\" \"store_u8\" (func $store_u8 (param i64 i32)))"
    " (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"
    " (memory 1)"
    " (func (export \"echo\") (result i32) (local $n i64) (local $h i64) (local $i i64)"
    "  (local.set $n (call $input_length)) (local.set $h (call $alloc (local.get $n)))"
    "  (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (local.get $n)))"
    "   (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))"
    "   (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l)))"
    "  (call $output_set (local.get $h) (local.get $n)) (i32.const 0)))";

// The state both callbacks share: an input buffer read in pieces, an output buffer that
// grows, and the failures to simulate.
typedef struct {
  const uint8_t *in;
  size_t in_len, in_pos;
  size_t max_read;     // the most one read gives (0: as much as asked)
  int64_t fail_read;   // when >= 0, reads fail (return -5) once this many bytes were given
  int64_t fail_write;  // when >= 0, writes fail (return -9) once this many bytes were taken
  int64_t read_result; // when non-zero, every read returns it as is
  int partial;         // writes take at most 1000 bytes at a time
  uint8_t *out;
  size_t out_len, out_cap;
  int reads, writes;
} Stream;

static int64_t read_cb(void *user_data, uint8_t *buf, uint64_t len) {
  Stream *s = user_data;
  s->reads++;
  if (s->read_result) return s->read_result;
  if (s->fail_read >= 0 && s->in_pos >= (size_t)s->fail_read) return -5;
  size_t n = s->in_len - s->in_pos;
  if (n > len) n = len;
  if (s->max_read && n > s->max_read) n = s->max_read;
  memcpy(buf, s->in + s->in_pos, n);
  s->in_pos += n;
  return (int64_t)n;
}

static int64_t write_cb(void *user_data, const uint8_t *buf, uint64_t len) {
  Stream *s = user_data;
  s->writes++;
  if (s->fail_write >= 0 && s->out_len >= (size_t)s->fail_write) return -9;
  size_t n = len;
  if (s->partial && n > 1000) n = 1000;
  if (s->out_len + n > s->out_cap) {
    s->out_cap = (s->out_len + n) * 2;
    s->out = realloc(s->out, s->out_cap);
  }
  memcpy(s->out + s->out_len, buf, n);
  s->out_len += n;
  return s->partial ? (int64_t)n : 0;
}

static Stream stream_of(const uint8_t *in, size_t len) {
  Stream s;
  memset(&s, 0, sizeof s);
  s.in = in;
  s.in_len = len;
  s.fail_read = -1;
  s.fail_write = -1;
  return s;
}

static void *noted_context;
static int notes;

static void note_fn(ExtismCurrentPlugin *plugin, const ExtismVal *in, ExtismSize n_in,
                    ExtismVal *out, ExtismSize n_out, void *user_data) {
  noted_context = extism_current_plugin_host_context(plugin);
  notes++;
  out[0].t = ExtismValType_I64;
  out[0].v.i64 = 0;
  (void)in; (void)n_in; (void)n_out; (void)user_data;
}

static ExtismFunction *note_function(void) {
  const ExtismValType types[] = {ExtismValType_I64};
  return extism_function_new("note", types, 1, types, 1, note_fn, NULL, NULL);
}

static ExtismPlugin *load(const char *wat, ExtismFunction *fn) {
  char *err = NULL;
  const ExtismFunction *fns[] = {fn};
  ExtismPlugin *p =
      extism_plugin_new((const uint8_t *)wat, strlen(wat), fn ? fns : NULL, fn ? 1 : 0, false, &err);
  if (!p) printf("load failed: %s\n", err ? err : "(no message)");
  extism_plugin_new_error_free(err);
  return p;
}

static uint8_t *pattern(size_t len) {
  uint8_t *b = malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(i * 7 + i / 251);
  return b;
}

static int error_has(ExtismPlugin *p, const char *text) {
  const char *e = extism_plugin_error(p);
  return e && strstr(e, text) != NULL;
}

static const char *error_of(ExtismPlugin *p) {
  const char *e = extism_plugin_error(p);
  return e ? e : "(none)";
}

static void echo_big(ExtismPlugin *p, size_t mib) {
  size_t len = mib << 20;
  uint8_t *in = pattern(len);
  Stream s = stream_of(in, len);
  s.max_read = 10000; // chunks that do not line up with the plug-in's 64 KiB
  PlinthStreamStats stats = {1, 1};
  int32_t rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, &stats);
  CHECK(rc == 0, "echo of %zu MiB: rc %d: %s", mib, rc, error_of(p));
  CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_NONE, "no error kind after success");
  CHECK(extism_plugin_error(p) == NULL, "no error after success");
  CHECK(s.out_len == len && memcmp(s.out, in, len) == 0, "echo output: %zu bytes of %zu",
        s.out_len, len);
  CHECK(stats.input_bytes == len && stats.output_bytes == len, "stats %llu in, %llu out",
        (unsigned long long)stats.input_bytes, (unsigned long long)stats.output_bytes);
  // Streamed in chunks, not as one buffer: the plug-in writes at most what one read gave.
  CHECK(s.writes >= (int)(len / 10000), "%d writes for %zu bytes", s.writes, len);
  CHECK(s.reads >= (int)(len / 10000) + 1, "%d reads", s.reads);
  free(s.out);

  // Empty input: one read that says "end", no write.
  s = stream_of(in, 0);
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, &stats);
  CHECK(rc == 0 && s.out_len == 0 && s.writes == 0 && s.reads == 1, "empty echo: rc %d, %zu out",
        rc, s.out_len);
  CHECK(stats.input_bytes == 0 && stats.output_bytes == 0, "empty echo stats");
  free(s.out);

  // A write callback that takes 1000 bytes at a time is called again with the rest.
  s = stream_of(in, 100000);
  s.partial = 1;
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, NULL);
  CHECK(rc == 0 && s.out_len == 100000 && memcmp(s.out, in, 100000) == 0,
        "partial writes: rc %d, %zu out: %s", rc, s.out_len, error_of(p));
  CHECK(s.writes >= 100, "partial writes: %d calls", s.writes);
  free(s.out);
  free(in);
}

static void failing_reader(ExtismPlugin *p) {
  uint8_t *in = pattern(500000);
  Stream s = stream_of(in, 500000);
  s.fail_read = 200000;
  PlinthStreamStats stats = {1, 1};
  int32_t rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, &stats);
  CHECK(rc == -1, "failing reader: rc %d", rc);
  CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_STREAM, "failing reader: kind %d",
        plinth_plugin_error_kind(p));
  CHECK(error_has(p, "read callback returned -5"), "failing reader: %s", error_of(p));
  CHECK(stats.input_bytes == 0 && stats.output_bytes == 0, "stats zeroed on failure");
  // What came before the failure went through.
  CHECK(s.out_len == s.in_pos && s.out_len >= 200000 && memcmp(s.out, in, s.out_len) == 0,
        "output before the failure: %zu of %zu read", s.out_len, s.in_pos);
  free(s.out);

  // A read callback that claims more than it was asked for is an error too.
  s = stream_of(in, 10);
  s.read_result = 1 << 20;
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, NULL);
  CHECK(rc != 0 && plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_STREAM &&
        error_has(p, "more than the 65536 bytes it was asked for"),
        "read returns too much: rc %d, %s", rc, error_of(p));
  free(s.out);

  // A plug-in that never reads never calls the read callback: a failing input does no harm.
  s = stream_of(in, 10);
  s.fail_read = 0;
  rc = plinth_plugin_call_stream(p, "never_reads", read_cb, write_cb, &s, &stats);
  CHECK(rc == 0 && s.reads == 0 && s.out_len == 4 && memcmp(s.out, "done", 4) == 0,
        "never_reads: rc %d, %d reads, %zu out: %s", rc, s.reads, s.out_len, error_of(p));
  CHECK(stats.input_bytes == 0 && stats.output_bytes == 4, "never_reads stats");
  free(s.out);
  free(in);
}

static void failing_writer(ExtismPlugin *p) {
  Stream s = stream_of(NULL, 0);
  s.fail_write = 300000;
  int32_t rc = plinth_plugin_call_stream(p, "flood", read_cb, write_cb, &s, NULL);
  CHECK(rc == -1, "failing writer: rc %d", rc);
  CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_STREAM, "failing writer: kind %d",
        plinth_plugin_error_kind(p));
  CHECK(error_has(p, "write callback returned -9"), "failing writer: %s", error_of(p));
  // The plug-in stopped at the first refused write (flood writes until told).
  CHECK(s.out_len >= 300000 && s.out_len < 300000 + 65536 && s.writes == (int)(s.out_len / 65536) + 1,
        "failing writer: %zu bytes in %d writes", s.out_len, s.writes);
  free(s.out);

  // The next call works.
  uint8_t *in = pattern(1000);
  s = stream_of(in, 1000);
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, NULL);
  CHECK(rc == 0 && s.out_len == 1000 && extism_plugin_error(p) == NULL, "after a failure: rc %d",
        rc);
  free(s.out);
  free(in);
}

static void output_limit(ExtismPlugin *p) {
  CHECK(plinth_plugin_set_output_limit(p, 200000), "set_output_limit");
  Stream s = stream_of(NULL, 0);
  int32_t rc = plinth_plugin_call_stream(p, "flood", read_cb, write_cb, &s, NULL);
  CHECK(rc == -1 && plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_STREAM,
        "over the limit: rc %d, kind %d", rc, plinth_plugin_error_kind(p));
  CHECK(error_has(p, "limit of 200000 bytes"), "over the limit: %s", error_of(p));
  // Whole chunks up to the limit were delivered, none past it.
  CHECK(s.out_len == 3 * 65536, "over the limit: %zu bytes delivered", s.out_len);
  free(s.out);

  // Under the limit is fine.
  uint8_t *in = pattern(200000);
  s = stream_of(in, 200000);
  s.max_read = 50000;
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, NULL);
  CHECK(rc == 0 && s.out_len == 200000, "at the limit: rc %d: %s", rc, error_of(p));
  free(s.out);

  // Classic calls are not limited; UINT64_MAX lifts the limit.
  CHECK(plinth_plugin_set_output_limit(p, UINT64_MAX), "lift the limit");
  s = stream_of(NULL, 0);
  s.fail_write = 400000;
  rc = plinth_plugin_call_stream(p, "flood", read_cb, write_cb, &s, NULL);
  CHECK(rc == -1 && error_has(p, "write callback returned -9") && s.out_len >= 400000,
        "no limit: %zu bytes, %s", s.out_len, error_of(p));
  free(s.out);
  free(in);
  CHECK(!plinth_plugin_set_output_limit(NULL, 1), "null plug-in");
}

static void not_streaming(void) {
  ExtismPlugin *p = load(CLASSIC, NULL);
  if (!p) {
    failed++;
    return;
  }
  uint8_t *in = pattern(70000);
  Stream s = stream_of(in, 70000);
  s.max_read = 3000;
  PlinthStreamStats stats = {0, 0};
  int32_t rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, &stats);
  CHECK(rc == 0, "classic echo: rc %d: %s", rc, error_of(p));
  CHECK(s.out_len == 70000 && memcmp(s.out, in, 70000) == 0, "classic echo: %zu out", s.out_len);
  CHECK(s.in_pos == 70000, "classic echo read everything");
  CHECK(stats.input_bytes == 70000 && stats.output_bytes == 70000, "classic echo stats");
  // Its output comes at the end, in one piece.
  CHECK(s.writes == 1, "classic echo: %d writes", s.writes);
  free(s.out);

  // The whole input is read first, so a failing reader fails the call before the plug-in runs.
  s = stream_of(in, 70000);
  s.fail_read = 30000;
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, NULL);
  CHECK(rc == -1 && plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_STREAM && s.writes == 0 &&
        error_has(p, "read callback returned -5"),
        "classic, failing reader: rc %d, %d writes, %s", rc, s.writes, error_of(p));
  free(s.out);

  // The output limit holds for its output too.
  plinth_plugin_set_output_limit(p, 1000);
  s = stream_of(in, 2000);
  rc = plinth_plugin_call_stream(p, "echo", read_cb, write_cb, &s, NULL);
  CHECK(rc == -1 && plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_STREAM && s.out_len == 0,
        "classic, over the limit: rc %d, %zu out, %s", rc, s.out_len, error_of(p));
  free(s.out);

  // The classic call still works on it.
  rc = extism_plugin_call(p, "echo", in, 5);
  CHECK(rc == 0 && extism_plugin_output_length(p) == 5, "classic call after streaming: rc %d", rc);
  free(in);
  extism_plugin_free(p);
}

static void bad_arguments(ExtismPlugin *p) {
  Stream s = stream_of(NULL, 0);
  PlinthStreamStats stats = {7, 7};
  CHECK(plinth_plugin_call_stream(NULL, "echo", read_cb, write_cb, &s, &stats) == -1,
        "null plug-in");
  CHECK(stats.input_bytes == 0 && stats.output_bytes == 0, "stats zeroed for a null plug-in");
  CHECK(plinth_plugin_call_stream(p, "echo", NULL, write_cb, &s, NULL) == -1 &&
            plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_OTHER && error_has(p, "read or write is null"),
        "null read: %s", error_of(p));
  CHECK(plinth_plugin_call_stream(p, "echo", read_cb, NULL, &s, NULL) == -1 &&
            error_has(p, "read or write is null"),
        "null write: %s", error_of(p));
  CHECK(plinth_plugin_call_stream(p, NULL, read_cb, write_cb, &s, NULL) == -1 &&
            error_has(p, "function name"),
        "null name: %s", error_of(p));
  CHECK(s.reads == 0 && s.writes == 0, "no callback called on bad arguments");
  int32_t rc = plinth_plugin_call_stream(p, "missing", read_cb, write_cb, &s, NULL);
  CHECK(rc == -1 && plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_FUNCTION_NOT_FOUND,
        "missing function: rc %d, kind %d", rc, plinth_plugin_error_kind(p));
  free(s.out);
}

static void host_context(ExtismPlugin *p) {
  int marker = 0;
  Stream s = stream_of(NULL, 0);
  noted_context = NULL;
  notes = 0;
  int32_t rc = plinth_plugin_call_stream_with_host_context(p, "host", read_cb, write_cb, &s,
                                                           &marker, NULL);
  CHECK(rc == 0 && notes == 1 && s.out_len == 1, "host: rc %d: %s", rc, error_of(p));
  CHECK(noted_context == &marker, "the host function sees the call's host context");
  free(s.out);
  s = stream_of(NULL, 0);
  rc = plinth_plugin_call_stream(p, "host", read_cb, write_cb, &s, NULL);
  CHECK(rc == 0 && notes == 2 && noted_context == NULL, "no host context: rc %d", rc);
  // A classic call afterwards has its own (none).
  rc = extism_plugin_call(p, "host", NULL, 0);
  CHECK(rc == 0 && notes == 3 && noted_context == NULL, "classic host call: rc %d", rc);
  free(s.out);
}

int main(void) {
  const char *it = getenv("ITERATIONS");
  const char *mib_env = getenv("MIB");
  int iterations = it ? atoi(it) : 3;
  size_t mib = mib_env ? (size_t)atoi(mib_env) : 3;
  for (int i = 0; i < iterations; i++) {
    ExtismFunction *note = note_function();
    ExtismPlugin *p = load(STREAMING, note);
    if (!p) {
      failed++;
      break;
    }
    echo_big(p, mib);
    failing_reader(p);
    failing_writer(p);
    bad_arguments(p);
    host_context(p);
    output_limit(p);
    not_streaming();
    extism_plugin_free(p);
    extism_function_free(note);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
