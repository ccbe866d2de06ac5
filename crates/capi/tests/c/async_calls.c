// Async calls through libplinth's C API: plinth_plugin_call_async, whose `done` callback runs
// on a worker thread, and plinth_function_new_async, whose completions other threads finish
// later. Prints one line per group ("<group>: ok", or FAIL lines) and exits non-zero on any
// failure.

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plinth.h"

static int failed_here;

#define CHECK(cond, ...)                              \
  do {                                                \
    if (!(cond)) {                                    \
      failed_here++;                                  \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);     \
      printf(__VA_ARGS__);                            \
      printf("\n");                                   \
    }                                                 \
  } while (0)

static int total_failed;
static void group(const char *name) {
  if (failed_here == 0) printf("%s: ok\n", name);
  total_failed += failed_here;
  failed_here = 0;
  fflush(stdout);
}

// `run` hands its input to the host function `wait` and outputs what `wait` returns.
#define RUN_WAT(ns)                                                                  \
  "(module (import \"" ns "\" \"wait\" (func $wait (param i64) (result i64)))"       \
  " (import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))" \
  " (import \"extism:host/env\" \"length\" (func $length (param i64) (result i64)))" \
  " (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"  \
  " (memory 1)"                                                                      \
  " (func (export \"run\") (result i32) (local $h i64)"                              \
  "   (local.set $h (call $wait (call $input_offset)))"                              \
  "   (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))"

static const char *WAT = RUN_WAT("extism:host/user");

// No host functions: outputs its input.
static const char *ECHO_WAT =
    "(module"
    " (import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))"
    " (import \"extism:host/env\" \"input_length\" (func $input_length (result i64)))"
    " (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"
    " (memory 1)"
    " (func (export \"run\") (result i32)"
    "   (call $output_set (call $input_offset) (call $input_length)) (i32.const 0)))";

// ---- the async host function `wait` ----------------------------------------------------------
//
// It reads its argument (a memory handle) and, by its text:
//   "fail"  - a thread fails the completion later ("the store refused: fail");
//   "hold"  - the completion is parked in `held`, for the test to finish;
//   "same"  - finishes at once, inside the callback, returning its own argument;
//   "count" - finishes at once with no outputs (the function has one result: an error);
//   other   - a thread returns "waited: <text>" after `delay_ms`.

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int in_flight, most_in_flight, finishers;
static PlinthCompletion *held;
static int delay_ms = 50;

typedef struct {
  PlinthCompletion *completion;
  char text[128];
} Job;

static void *finish_later(void *arg) {
  Job *job = arg;
  usleep((useconds_t)delay_ms * 1000);
  pthread_mutex_lock(&lock);
  in_flight--;
  pthread_mutex_unlock(&lock);
  bool ok;
  if (strcmp(job->text, "fail") == 0) {
    ok = plinth_completion_fail(job->completion, "the store refused: fail");
  } else {
    char out[160];
    int n = snprintf(out, sizeof out, "waited: %s", job->text);
    ok = plinth_completion_return_bytes(job->completion, (const uint8_t *)out, (ExtismSize)n);
  }
  CHECK(ok, "finishing a waiting completion returns true (%s)", job->text);
  free(job);
  pthread_mutex_lock(&lock);
  finishers--;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void wait_fn(ExtismCurrentPlugin *plugin, const ExtismVal *in, ExtismSize n_in,
                    PlinthCompletion *completion, void *user_data) {
  CHECK(n_in == 1 && in[0].t == ExtismValType_I64, "one i64 input");
  CHECK(user_data == (void *)&delay_ms, "user data reaches the callback");
  CHECK(plinth_completion_is_waiting(completion), "a new completion is waiting");
  ExtismMemoryHandle h = (ExtismMemoryHandle)in[0].v.i64;
  ExtismSize len = extism_current_plugin_memory_length(plugin, h);
  Job *job = calloc(1, sizeof *job);
  job->completion = completion;
  if (len >= sizeof job->text) len = sizeof job->text - 1;
  memcpy(job->text, extism_current_plugin_memory(plugin) + h, len);

  if (strcmp(job->text, "same") == 0) {
    ExtismVal out = in[0];
    CHECK(plinth_completion_return(completion, &out, 1), "return at once");
    free(job);
    return;
  }
  if (strcmp(job->text, "count") == 0) {
    // Accepted here; the call then fails for the missing result.
    CHECK(plinth_completion_return(completion, NULL, 0), "no outputs");
    free(job);
    return;
  }
  pthread_mutex_lock(&lock);
  if (strcmp(job->text, "hold") == 0) {
    held = completion;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    free(job);
    return;
  }
  in_flight++;
  if (in_flight > most_in_flight) most_in_flight = in_flight;
  finishers++;
  pthread_mutex_unlock(&lock);
  pthread_t t;
  pthread_create(&t, NULL, finish_later, job);
  pthread_detach(t);
}

// ---- waiting for `done` ---------------------------------------------------------------------

typedef struct {
  int calls;
  int32_t rc, kind;
  char out[256];
  char err[512];
  int order;  // when it completed, among the calls of its batch
} Outcome;

static int completed;

static void on_done(void *user_data, int32_t rc, int32_t kind, const uint8_t *out,
                    ExtismSize out_len, const char *err) {
  Outcome *o = user_data;
  pthread_mutex_lock(&lock);
  o->calls++;
  o->rc = rc;
  o->kind = kind;
  if (out_len >= sizeof o->out) out_len = sizeof o->out - 1;
  if (out) memcpy(o->out, out, out_len);
  o->out[out_len] = 0;
  snprintf(o->err, sizeof o->err, "%s", err ? err : "");
  o->order = completed++;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static struct timespec in_seconds(int s) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += s;
  return t;
}

// Waits (at most 20 s) until all n outcomes are in; returns whether they are.
static bool wait_all(Outcome *o, int n) {
  struct timespec until = in_seconds(20);
  pthread_mutex_lock(&lock);
  bool all = false;
  for (;;) {
    all = true;
    for (int i = 0; i < n; i++) all = all && o[i].calls > 0;
    if (all || pthread_cond_timedwait(&changed, &lock, &until) != 0) break;
  }
  pthread_mutex_unlock(&lock);
  return all;
}

static PlinthCompletion *wait_held(void) {
  struct timespec until = in_seconds(20);
  pthread_mutex_lock(&lock);
  while (!held && pthread_cond_timedwait(&changed, &lock, &until) == 0) {
  }
  PlinthCompletion *c = held;
  held = NULL;
  pthread_mutex_unlock(&lock);
  return c;
}

static bool call(ExtismPlugin *p, const char *input, Outcome *o) {
  return plinth_plugin_call_async(p, "run", (const uint8_t *)input, strlen(input), on_done, o);
}

static ExtismFunction *wait_function(void) {
  ExtismValType ptr = EXTISM_PTR;
  return plinth_function_new_async("wait", &ptr, 1, &ptr, 1, wait_fn, &delay_ms, NULL);
}

static ExtismPlugin *load(const char *source, ExtismFunction *f) {
  char *err = NULL;
  const ExtismFunction *fs[] = {f};
  ExtismPlugin *p = extism_plugin_new((const uint8_t *)source, strlen(source), fs, f ? 1 : 0,
                                      false, &err);
  CHECK(p != NULL, "load: %s", err ? err : "");
  if (err) extism_plugin_new_error_free(err);
  return p;
}

// ---- the tests ------------------------------------------------------------------------------

static void single_call(ExtismFunction *f) {
  ExtismPlugin *p = load(WAT, f);
  Outcome o = {0};
  CHECK(call(p, "ada", &o), "call starts");
  CHECK(wait_all(&o, 1), "done is called");
  CHECK(o.rc == 0 && o.kind == PLINTH_ERROR_KIND_NONE, "success: rc %d kind %d (%s)", o.rc,
        o.kind, o.err);
  CHECK(strcmp(o.out, "waited: ada") == 0, "output: %s", o.out);

  Outcome same = {0};
  CHECK(call(p, "same", &same) && wait_all(&same, 1), "finished inside the callback");
  CHECK(same.rc == 0 && strcmp(same.out, "same") == 0, "plinth_completion_return: %s %s",
        same.out, same.err);

  // A synchronous call cannot run an async host function, and says what to use.
  int rc = extism_plugin_call(p, "run", (const uint8_t *)"x", 1);
  const char *e = extism_plugin_error(p);
  CHECK(rc != 0 && e && strstr(e, "call_async"), "sync call refused: %d %s", rc, e ? e : "");

  // The plug-in's error state and output stay the synchronous calls'.
  usleep(50 * 1000);
  CHECK(o.calls == 1 && same.calls == 1, "done is called once");
  extism_plugin_free(p);

  // A plug-in without async host functions may be called this way too.
  ExtismPlugin *echo = load(ECHO_WAT, NULL);
  Outcome eo = {0};
  CHECK(call(echo, "plain", &eo) && wait_all(&eo, 1), "echo done");
  CHECK(eo.rc == 0 && strcmp(eo.out, "plain") == 0, "echo output: %s %s", eo.out, eo.err);
  Outcome missing = {0};
  CHECK(plinth_plugin_call_async(echo, "nope", NULL, 0, on_done, &missing) &&
            wait_all(&missing, 1),
        "missing function: done");
  CHECK(missing.rc == -1 && missing.kind == PLINTH_ERROR_KIND_FUNCTION_NOT_FOUND &&
            strstr(missing.err, "nope") && missing.out[0] == 0,
        "missing function: rc %d kind %d %s", missing.rc, missing.kind, missing.err);
  extism_plugin_free(echo);
  group("single call");
}

static void bad_arguments(ExtismFunction *f) {
  ExtismPlugin *p = load(WAT, f);
  Outcome o = {0};
  CHECK(!plinth_plugin_call_async(NULL, "run", NULL, 0, on_done, &o), "null plug-in");
  CHECK(!plinth_plugin_call_async(p, "run", NULL, 0, NULL, &o), "null done");
  CHECK(!plinth_plugin_call_async(p, NULL, NULL, 0, on_done, &o), "null name");
  const char *e = extism_plugin_error(p);
  CHECK(e && strstr(e, "function name"), "error says why: %s", e ? e : "");
  CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_OTHER, "kind of a bad argument");
  CHECK(!plinth_plugin_call_async(p, "run", NULL, 3, on_done, &o), "null data, length 3");
  usleep(50 * 1000);
  CHECK(o.calls == 0, "done is not called for refused calls");
  ExtismValType ptr = EXTISM_PTR;
  CHECK(plinth_function_new_async(NULL, &ptr, 1, &ptr, 1, wait_fn, NULL, NULL) == NULL,
        "null name");
  CHECK(plinth_function_new_async("w", &ptr, 1, &ptr, 1, NULL, NULL, NULL) == NULL, "null func");
  CHECK(!plinth_completion_return(NULL, NULL, 0), "null completion");
  CHECK(!plinth_completion_return_bytes(NULL, NULL, 0), "null completion");
  CHECK(!plinth_completion_fail(NULL, "x"), "null completion");
  CHECK(!plinth_completion_is_waiting(NULL), "null completion");

  // A completion finished with a wrong number of outputs fails the call, saying so.
  Outcome count = {0};
  CHECK(call(p, "count", &count) && wait_all(&count, 1), "count: done");
  CHECK(count.rc == -1 && count.kind == PLINTH_ERROR_KIND_HOST_FUNCTION &&
            strstr(count.err, "got 0 outputs"),
        "count: %d %s", count.kind, count.err);
  extism_plugin_free(p);
  group("bad arguments");
}

static void errors_reach_done(ExtismFunction *f) {
  ExtismPlugin *p = load(WAT, f);
  Outcome o = {0};
  CHECK(call(p, "fail", &o) && wait_all(&o, 1), "done");
  CHECK(o.rc == -1 && o.kind == PLINTH_ERROR_KIND_HOST_FUNCTION, "rc %d kind %d", o.rc, o.kind);
  CHECK(strstr(o.err, "the store refused: fail") && strstr(o.err, "wait"),
        "message names the function and carries the host's: %s", o.err);
  CHECK(o.out[0] == 0, "no output");
  // The plug-in works after a failed call.
  Outcome again = {0};
  CHECK(call(p, "again", &again) && wait_all(&again, 1) && strcmp(again.out, "waited: again") == 0,
        "next call: %s %s", again.out, again.err);
  extism_plugin_free(p);
  group("errors");
}

#define PLUGINS 50
#define QUEUED 20

static void many_calls(ExtismFunction *f) {
  char *err = NULL;
  const ExtismFunction *fs[] = {f};
  ExtismCompiledPlugin *c =
      extism_compiled_plugin_new((const uint8_t *)WAT, strlen(WAT), fs, 1, false, &err);
  CHECK(c != NULL, "compile: %s", err ? err : "");
  ExtismPlugin *ps[PLUGINS];
  static Outcome os[PLUGINS];
  memset(os, 0, sizeof os);
  most_in_flight = 0;
  for (int i = 0; i < PLUGINS; i++) {
    ps[i] = extism_plugin_new_from_compiled(c, &err);
    CHECK(ps[i] != NULL, "instantiate: %s", err ? err : "");
  }
  for (int i = 0; i < PLUGINS; i++) {
    char input[32];
    snprintf(input, sizeof input, "call %d", i);
    CHECK(call(ps[i], input, &os[i]), "start %d", i);
  }
  CHECK(wait_all(os, PLUGINS), "every call is done");
  for (int i = 0; i < PLUGINS; i++) {
    char want[48];
    snprintf(want, sizeof want, "waited: call %d", i);
    CHECK(os[i].calls == 1 && os[i].rc == 0 && strcmp(os[i].out, want) == 0,
          "call %d: %s %s", i, os[i].out, os[i].err);
    extism_plugin_free(ps[i]);
  }
  // The host functions waited together, on at most 4 worker threads.
  CHECK(most_in_flight > 8, "calls waited at once: %d", most_in_flight);
  extism_compiled_plugin_free(c);
  group("many plug-ins at once");

  // One plug-in: calls queue and run in the order they were made.
  ExtismPlugin *p = load(WAT, f);
  static Outcome qs[QUEUED];
  memset(qs, 0, sizeof qs);
  pthread_mutex_lock(&lock);
  completed = 0;
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < QUEUED; i++) {
    char input[32];
    snprintf(input, sizeof input, "q%d", i);
    CHECK(call(p, input, &qs[i]), "queue %d", i);
  }
  // Synchronous functions refuse to wait behind async calls.
  int rc = extism_plugin_call(p, "run", NULL, 0);
  CHECK(rc == -1 && plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_BUSY,
        "sync call while queued: %d %d %s", rc, plinth_plugin_error_kind(p),
        extism_plugin_error(p));
  CHECK(extism_plugin_function_exists(p, "run"), "function_exists does not wait");
  CHECK(wait_all(qs, QUEUED), "every queued call is done");
  for (int i = 0; i < QUEUED; i++) {
    char want[32];
    snprintf(want, sizeof want, "waited: q%d", i);
    CHECK(qs[i].rc == 0 && strcmp(qs[i].out, want) == 0 && qs[i].order == i,
          "queued %d: %s (order %d) %s", i, qs[i].out, qs[i].order, qs[i].err);
  }
  // Freeing a plug-in with calls queued lets them finish.
  Outcome tail[3] = {{0}};
  CHECK(call(p, "t0", &tail[0]) && call(p, "t1", &tail[1]) && call(p, "t2", &tail[2]), "queue");
  extism_plugin_free(p);
  CHECK(wait_all(tail, 3), "calls of a freed plug-in end");
  CHECK(strcmp(tail[2].out, "waited: t2") == 0, "last of a freed plug-in: %s %s", tail[2].out,
        tail[2].err);
  group("one plug-in, calls queued");
}

static void timeout_while_waiting(ExtismFunction *f) {
  // The manifest's timeout covers time spent in host functions.
  char path[] = "/tmp/plinth-async-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "temp file");
  CHECK(write(fd, WAT, strlen(WAT)) == (ssize_t)strlen(WAT), "write WAT");
  close(fd);
  char manifest[256];
  snprintf(manifest, sizeof manifest, "{\"wasm\":[{\"path\":\"%s\"}],\"timeout_ms\":200}", path);
  ExtismPlugin *p = load(manifest, f);
  Outcome o = {0};
  CHECK(call(p, "hold", &o), "start");
  PlinthCompletion *c = wait_held();
  CHECK(c != NULL, "the host function was called");
  CHECK(wait_all(&o, 1), "done after the timeout");
  CHECK(o.rc == -1 && o.kind == PLINTH_ERROR_KIND_TIMEOUT, "timeout: rc %d kind %d %s", o.rc,
        o.kind, o.err);
  if (c) {
    CHECK(!plinth_completion_is_waiting(c), "the completion no longer waits");
    CHECK(!plinth_completion_return_bytes(c, (const uint8_t *)"late", 4), "late finish: no-op");
  }
  Outcome after = {0};
  CHECK(call(p, "after", &after) && wait_all(&after, 1) && strcmp(after.out, "waited: after") == 0,
        "a call after the timeout: %s %s", after.out, after.err);
  extism_plugin_free(p);
  unlink(path);
  group("timeout while a host function waits");
}

static void cancel_while_waiting(ExtismFunction *f) {
  ExtismPlugin *p = load(WAT, f);
  Outcome o = {0};
  CHECK(call(p, "hold", &o), "start");
  PlinthCompletion *c = wait_held();
  CHECK(c != NULL, "the host function was called");
  CHECK(extism_plugin_cancel(extism_plugin_cancel_handle(p)), "cancel");
  CHECK(wait_all(&o, 1), "done after the cancel");
  CHECK(o.rc == -1 && o.kind == PLINTH_ERROR_KIND_CANCELLED, "cancelled: rc %d kind %d %s", o.rc,
        o.kind, o.err);
  if (c) CHECK(!plinth_completion_fail(c, "late"), "late finish: no-op");
  // The cancel was for that call only.
  Outcome after = {0};
  CHECK(call(p, "after", &after) && wait_all(&after, 1) && strcmp(after.out, "waited: after") == 0,
        "a call after the cancel: %s %s", after.out, after.err);
  // So is a cancel made while no call runs.
  extism_plugin_cancel(extism_plugin_cancel_handle(p));
  Outcome later = {0};
  CHECK(call(p, "later", &later) && wait_all(&later, 1) && strcmp(later.out, "waited: later") == 0,
        "a call after an idle cancel: %s %s", later.out, later.err);
  extism_plugin_free(p);
  group("cancel while a host function waits");
}

// `done` may use the plug-in: it starts the next call, and a synchronous function works there
// once no async call is queued.
typedef struct {
  ExtismPlugin *plugin;
  Outcome first, second;
  bool started_second, config_ok;
} Chain;

static void second_done(void *user_data, int32_t rc, int32_t kind, const uint8_t *out,
                        ExtismSize out_len, const char *err) {
  Chain *ch = user_data;
  const char *json = "{\"k\":\"v\"}";
  ch->config_ok = extism_plugin_config(ch->plugin, (const uint8_t *)json, strlen(json));
  on_done(&ch->second, rc, kind, out, out_len, err);
}

static void first_done(void *user_data, int32_t rc, int32_t kind, const uint8_t *out,
                       ExtismSize out_len, const char *err) {
  Chain *ch = user_data;
  ch->started_second = plinth_plugin_call_async(ch->plugin, "run", (const uint8_t *)"two", 3,
                                                second_done, ch);
  on_done(&ch->first, rc, kind, out, out_len, err);
}

static void chained(ExtismFunction *f) {
  Chain ch = {0};
  ch.plugin = load(WAT, f);
  CHECK(plinth_plugin_call_async(ch.plugin, "run", (const uint8_t *)"one", 3, first_done, &ch),
        "start");
  CHECK(wait_all(&ch.first, 1) && strcmp(ch.first.out, "waited: one") == 0, "first: %s",
        ch.first.err);
  CHECK(ch.started_second, "done started the next call");
  CHECK(wait_all(&ch.second, 1) && strcmp(ch.second.out, "waited: two") == 0, "second: %s",
        ch.second.err);
  CHECK(ch.config_ok, "a synchronous function works in done: %s",
        extism_plugin_error(ch.plugin));
  extism_plugin_free(ch.plugin);
  group("done uses the plug-in");
}

static int freed;
static void count_free(void *data) {
  (void)data;
  freed++;
}

int main(void) {
  ExtismFunction *f = wait_function();
  CHECK(f != NULL, "plinth_function_new_async");
  single_call(f);
  bad_arguments(f);
  errors_reach_done(f);
  many_calls(f);
  timeout_while_waiting(f);
  cancel_while_waiting(f);
  chained(f);

  // Namespaces and user data work as with extism_function_new.
  ExtismValType ptr = EXTISM_PTR;
  ExtismFunction *g =
      plinth_function_new_async("wait", &ptr, 1, &ptr, 1, wait_fn, &delay_ms, count_free);
  extism_function_set_namespace(g, "custom");
  ExtismPlugin *p = load(RUN_WAT("custom"), g);
  extism_function_free(g);
  Outcome o = {0};
  CHECK(call(p, "ns", &o) && wait_all(&o, 1) && strcmp(o.out, "waited: ns") == 0, "namespace: %s",
        o.err);
  CHECK(freed == 0, "user data lives while a plug-in uses the function");
  extism_plugin_free(p);
  CHECK(freed == 1, "user data freed with the last plug-in: %d", freed);
  group("namespace and user data");

  // Let every finisher thread end (for leak checkers).
  pthread_mutex_lock(&lock);
  struct timespec until = in_seconds(20);
  while (finishers > 0 && pthread_cond_timedwait(&changed, &lock, &until) == 0) {
  }
  pthread_mutex_unlock(&lock);
  extism_function_free(f);
  if (total_failed) {
    printf("%d failed\n", total_failed);
    return 1;
  }
  printf("all passed\n");
  return 0;
}
