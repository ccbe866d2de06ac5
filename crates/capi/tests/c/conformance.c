// The cross-SDK fixtures of tests/conformance, run through libplinth's C API, plus the edge
// cases of the plinth_* functions they use. Every SDK runs the same fixtures and must give the
// same answers (the Rust reference: crates/plinth/tests/all/conformance.rs).
//
//   conformance FIXTURES_DIR WASI_FILES_WASM
//
// FIXTURES_DIR is tests/conformance; WASI_FILES_WASM is target/wasm-plugins/wasi_files.wasm.
// The program works from a fresh empty working directory, so that nothing resolves against
// the directory it was started from. Prints one line per failed check and "N passed, N
// failed" at the end; exits non-zero on any failure.

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plinth.h"

static int passed, failed;

#define CHECK(cond, ...)                                \
  do {                                                  \
    if (cond) {                                         \
      passed++;                                         \
    } else {                                            \
      failed++;                                         \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);       \
      printf(__VA_ARGS__);                              \
      printf("\n");                                     \
    }                                                   \
  } while (0)

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      cap *= 2;
      char *bigger = realloc(buf, cap + 1);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  fclose(f);
  if (buf) buf[n] = 0;
  if (len) *len = n;
  return buf;
}

static int write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  int ok = fwrite(data, 1, len, f) == len;
  return fclose(f) == 0 && ok;
}

static int copy_file(const char *from, const char *to) {
  size_t len;
  char *data = read_file(from, &len);
  if (!data) return 0;
  int ok = write_file(to, data, len);
  free(data);
  return ok;
}

// ---- cases.json: a flat array of flat objects of strings and integers --------------------

typedef struct {
  char file[128], function[128], stage[16], kind[64];
  long kind_code, code;
} Case;

// The value of "key" inside [obj, end): a string copied into out, or an integer in *num.
static int json_string(const char *obj, const char *end, const char *key, char *out, size_t cap) {
  char pattern[80];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *k = strstr(obj, pattern);
  if (!k || k >= end) return 0;
  const char *q = strchr(k + strlen(pattern), '"');
  if (!q || q >= end) return 0;
  const char *close = strchr(q + 1, '"');
  if (!close || close >= end || (size_t)(close - q - 1) >= cap) return 0;
  memcpy(out, q + 1, close - q - 1);
  out[close - q - 1] = 0;
  return 1;
}

static int json_int(const char *obj, const char *end, const char *key, long *num) {
  char pattern[80];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *k = strstr(obj, pattern);
  if (!k || k >= end) return 0;
  const char *colon = strchr(k + strlen(pattern), ':');
  if (!colon || colon >= end) return 0;
  char *after;
  *num = strtol(colon + 1, &after, 10);
  return after != colon + 1;
}

static int parse_cases(const char *json, Case *cases, int max) {
  const char *p = strstr(json, "\"cases\"");
  if (!p) return -1;
  int n = 0;
  while (n < max && (p = strchr(p, '{')) != NULL) {
    const char *end = strchr(p, '}');
    if (!end) return -1;
    Case *c = &cases[n];
    if (!json_string(p, end, "file", c->file, sizeof c->file) ||
        !json_string(p, end, "function", c->function, sizeof c->function) ||
        !json_string(p, end, "stage", c->stage, sizeof c->stage) ||
        !json_string(p, end, "kind", c->kind, sizeof c->kind) ||
        !json_int(p, end, "kind_code", &c->kind_code) || !json_int(p, end, "code", &c->code))
      return -1;
    n++;
    p = end + 1;
  }
  return n;
}

// ---- the error cases -----------------------------------------------------------------

static void error_cases(const char *fixtures) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/errors/cases.json", fixtures);
  char *json = read_file(path, NULL);
  CHECK(json != NULL, "read %s", path);
  if (!json) return;
  Case cases[64];
  int n = parse_cases(json, cases, 64);
  free(json);
  CHECK(n >= 8, "cases.json has at least 8 cases (parsed %d)", n);
  for (int i = 0; i < n; i++) {
    Case *c = &cases[i];
    snprintf(path, sizeof path, "%s/errors/%s", fixtures, c->file);
    char *err = NULL;
    ExtismPlugin *p = plinth_plugin_new_from_file(path, NULL, 0, false, &err);
    int32_t kind;
    long code;
    const char *message;
    if (strcmp(c->stage, "load") == 0) {
      CHECK(p == NULL, "%s: loads, but the case expects a load failure", c->file);
      if (p) {
        extism_plugin_free(p);
        continue;
      }
      kind = plinth_plugin_new_error_kind(err);
      code = -1;  // a failed load has no call, hence Extism's host-failure code
      message = err;
    } else {
      CHECK(p != NULL, "%s: failed to load: %s", c->file, err ? err : "(no message)");
      if (!p) {
        extism_plugin_new_error_free(err);
        continue;
      }
      code = extism_plugin_call(p, c->function, NULL, 0);
      kind = plinth_plugin_error_kind(p);
      message = extism_plugin_error(p);
    }
    const char *name = plinth_error_kind_name(kind);
    CHECK(name && strcmp(name, c->kind) == 0, "%s %s: kind %s (%d), expected %s: %s", c->file,
          c->function, name ? name : "(null)", kind, c->kind, message ? message : "(no message)");
    CHECK(kind == c->kind_code, "%s %s: kind number %d, expected %ld", c->file, c->function,
          kind, c->kind_code);
    CHECK(code == c->code, "%s %s: code %ld, expected %ld", c->file, c->function, code, c->code);
    CHECK(message && strlen(message) > 0, "%s %s: a message", c->file, c->function);
    if (p) {
      // A failed call leaves the plug-in usable, and a later success clears the kind.
      CHECK(extism_plugin_function_exists(p, "run"), "%s: still usable", c->file);
      extism_plugin_free(p);
    } else {
      extism_plugin_new_error_free(err);
    }
  }
  printf("error cases: %d\n", n);
}

// ---- the relative-path fixture ---------------------------------------------------------

static void manifest_paths(const char *fixtures, const char *wasi_wasm, const char *tmp) {
  char src[PATH_MAX], dst[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/data", tmp);
  CHECK(mkdir(dst, 0700) == 0, "mkdir %s", dst);
  snprintf(src, sizeof src, "%s/paths/manifest.json", fixtures);
  snprintf(dst, sizeof dst, "%s/manifest.json", tmp);
  CHECK(copy_file(src, dst), "copy %s", src);
  snprintf(src, sizeof src, "%s/paths/data/hello.txt", fixtures);
  snprintf(dst, sizeof dst, "%s/data/hello.txt", tmp);
  CHECK(copy_file(src, dst), "copy %s", src);
  snprintf(dst, sizeof dst, "%s/wasi_files.wasm", tmp);
  CHECK(copy_file(wasi_wasm, dst), "copy %s (run scripts/build-plugins.sh)", wasi_wasm);

  // The working directory (another fresh folder) has neither wasi_files.wasm nor data/.
  snprintf(dst, sizeof dst, "%s/manifest.json", tmp);
  char *err = NULL;
  ExtismPlugin *p = plinth_plugin_new_from_file(dst, NULL, 0, true, &err);
  CHECK(p != NULL, "load %s: %s", dst, err ? err : "(no message)");
  if (!p) {
    extism_plugin_new_error_free(err);
    return;
  }
  const char *input = "/data/hello.txt";
  int32_t rc = extism_plugin_call(p, "copy_file", (const uint8_t *)input, strlen(input));
  CHECK(rc == 0, "copy_file: %d %s", rc, extism_plugin_error(p) ? extism_plugin_error(p) : "");
  CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_NONE, "no error kind after success");
  const char *expected = "/data/hello.txt.out";
  ExtismSize n = extism_plugin_output_length(p);
  CHECK(n == strlen(expected) && memcmp(extism_plugin_output_data(p), expected, n) == 0,
        "copy_file output");
  extism_plugin_free(p);

  snprintf(src, sizeof src, "%s/paths/data/hello.txt", fixtures);
  snprintf(dst, sizeof dst, "%s/data/hello.txt.out", tmp);
  size_t want_len, got_len;
  char *want = read_file(src, &want_len), *got = read_file(dst, &got_len);
  CHECK(got != NULL, "the copy is in the manifest's data/ folder");
  CHECK(want && got && want_len == got_len && memcmp(want, got, want_len) == 0,
        "the copy has the original's bytes");
  free(want);
  free(got);
  unlink(dst);
  snprintf(dst, sizeof dst, "%s/data/hello.txt", tmp);
  unlink(dst);
  snprintf(dst, sizeof dst, "%s/data", tmp);
  rmdir(dst);
  snprintf(dst, sizeof dst, "%s/manifest.json", tmp);
  unlink(dst);
  snprintf(dst, sizeof dst, "%s/wasi_files.wasm", tmp);
  unlink(dst);
  printf("manifest paths: checked\n");
}

// ---- the plinth_* functions' own rules --------------------------------------------------

static void kinds_and_edges(const char *fixtures) {
  // Names: 1..26 are kinds with distinct names; anything else is no kind.
  for (int32_t k = 1; k <= PLINTH_ERROR_KIND_STREAM; k++) {
    const char *name = plinth_error_kind_name(k);
    CHECK(name && strlen(name) > 0, "kind %d has a name", k);
    for (int32_t j = 1; name && j < k; j++)
      CHECK(strcmp(name, plinth_error_kind_name(j)) != 0, "kinds %d and %d share a name", j, k);
  }
  CHECK(plinth_error_kind_name(0) == NULL, "0 is no kind");
  CHECK(plinth_error_kind_name(27) == NULL, "27 is no kind");
  CHECK(strcmp(plinth_error_kind_name(PLINTH_ERROR_KIND_ARTIFACT), "artifact") == 0, "artifact");
  const char *stream = plinth_error_kind_name(PLINTH_ERROR_KIND_STREAM);
  CHECK(stream && strcmp(stream, "stream") == 0, "stream");
  CHECK(plinth_error_kind_name(-1) == NULL, "-1 is no kind");
  CHECK(plinth_error_kind_name(INT32_MIN) == NULL, "INT32_MIN is no kind");
  CHECK(strcmp(plinth_error_kind_name(PLINTH_ERROR_KIND_TRAP), "trap") == 0, "trap");
  CHECK(strcmp(plinth_error_kind_name(PLINTH_ERROR_KIND_TIMEOUT), "timeout") == 0, "timeout");
  CHECK(strcmp(plinth_error_kind_name(PLINTH_ERROR_KIND_OTHER), "other") == 0, "other");

  // Null and bad arguments.
  char *err = NULL;
  CHECK(plinth_plugin_new_from_file(NULL, NULL, 0, false, &err) == NULL && err, "NULL path");
  CHECK(err && strstr(err, "path"), "NULL path message: %s", err ? err : "");
  CHECK(plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_OTHER, "NULL path kind");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(plinth_plugin_new_from_file("", NULL, 0, false, &err) == NULL && err, "empty path");
  extism_plugin_new_error_free(err);
  CHECK(plinth_plugin_new_from_file(NULL, NULL, 0, false, NULL) == NULL, "NULL path, NULL errmsg");
  CHECK(plinth_compiled_plugin_new_from_file(NULL, NULL, 0, false, NULL) == NULL,
        "compiled: NULL path");
  err = NULL;
  CHECK(plinth_plugin_new_from_file("/nonexistent/plugin.wasm", NULL, 0, false, &err) == NULL,
        "missing file");
  CHECK(plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_MANIFEST,
        "a missing file is a manifest failure: %s", err ? err : "");
  CHECK(err && strstr(err, "/nonexistent/plugin.wasm"), "the message names the path");
  extism_plugin_new_error_free(err);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/errors/trap.wat", fixtures);
  const ExtismFunction *null_fn[1] = {NULL};
  err = NULL;
  CHECK(plinth_plugin_new_from_file(path, null_fn, 1, false, &err) == NULL, "NULL function");
  CHECK(plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_OTHER, "NULL function kind");
  extism_plugin_new_error_free(err);
  CHECK(plinth_plugin_new_error_kind(NULL) == PLINTH_ERROR_KIND_NONE, "NULL errmsg: no kind");
  CHECK(plinth_plugin_new_error_kind("not from libplinth") == PLINTH_ERROR_KIND_NONE,
        "a foreign string: no kind");
  CHECK(plinth_plugin_error_kind(NULL) == -1, "NULL plug-in");

  // Extism's creation functions report kinds too.
  err = NULL;
  const char garbage[] = "\0asm\1\0\0\0garbage";
  CHECK(extism_plugin_new((const uint8_t *)garbage, sizeof garbage - 1, NULL, 0, false, &err) ==
            NULL,
        "bytes: bad wasm");
  CHECK(plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_COMPILE, "bytes: compile kind");
  extism_plugin_new_error_free(err);
  err = NULL;
  CHECK(extism_compiled_plugin_new(NULL, 3, NULL, 0, false, &err) == NULL, "compiled: NULL wasm");
  CHECK(plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_OTHER, "compiled: NULL wasm kind");
  extism_plugin_new_error_free(err);

  // Kinds follow the last call: set by a failure, cleared by a success; config has its own.
  ExtismPlugin *p = plinth_plugin_new_from_file(path, NULL, 0, false, NULL);
  CHECK(p != NULL, "load trap.wat");
  if (p) {
    CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_NONE, "no kind before a call");
    CHECK(extism_plugin_call(p, "run", NULL, 0) == 134, "trap: 134");
    CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_TRAP, "trap kind");
    CHECK(!extism_plugin_config(p, (const uint8_t *)"[1]", 3), "bad config");
    CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_OTHER, "bad config kind");
    CHECK(extism_plugin_config(p, (const uint8_t *)"{}", 2), "good config");
    CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_NONE, "good config clears the kind");
    CHECK(extism_plugin_call(p, NULL, NULL, 0) == -1, "NULL function name");
    CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_OTHER, "NULL function name kind");
    extism_plugin_free(p);
  }

  // A compiled plug-in from a path, and its instances.
  snprintf(path, sizeof path, "%s/errors/timeout.json", fixtures);
  err = NULL;
  ExtismCompiledPlugin *c = plinth_compiled_plugin_new_from_file(path, NULL, 0, false, &err);
  CHECK(c != NULL, "compiled from a manifest file: %s", err ? err : "");
  extism_plugin_new_error_free(err);
  if (c) {
    ExtismPlugin *a = extism_plugin_new_from_compiled(c, NULL);
    CHECK(a != NULL, "an instance");
    if (a) {
      CHECK(extism_plugin_call(a, "run", NULL, 0) == -1, "the manifest's timeout applies");
      CHECK(plinth_plugin_error_kind(a) == PLINTH_ERROR_KIND_TIMEOUT, "timeout kind");
      extism_plugin_free(a);
    }
    extism_compiled_plugin_free(c);
  }
  err = NULL;
  CHECK(extism_plugin_new_from_compiled(NULL, &err) == NULL, "NULL compiled");
  CHECK(plinth_plugin_new_error_kind(err) == PLINTH_ERROR_KIND_OTHER, "NULL compiled kind");
  extism_plugin_new_error_free(err);

  // A fuel limit with a path.
  snprintf(path, sizeof path, "%s/errors/loops.wat", fixtures);
  p = plinth_plugin_new_from_file_with_fuel_limit(path, NULL, 0, false, 100000, NULL);
  CHECK(p != NULL, "load loops.wat with fuel");
  if (p) {
    CHECK(extism_plugin_call(p, "run", NULL, 0) == -1, "fuel stops the loop");
    CHECK(plinth_plugin_error_kind(p) == PLINTH_ERROR_KIND_OUT_OF_FUEL, "out_of_fuel kind");
    extism_plugin_free(p);
  }
  printf("kinds and edges: checked\n");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FIXTURES_DIR WASI_FILES_WASM\n", argv[0]);
    return 2;
  }
  char fixtures[PATH_MAX], wasi_wasm[PATH_MAX];
  if (!realpath(argv[1], fixtures) || !realpath(argv[2], wasi_wasm)) {
    fprintf(stderr, "cannot resolve %s or %s\n", argv[1], argv[2]);
    return 2;
  }
  char base[] = "/tmp/plinth-conformance-XXXXXX";
  if (!mkdtemp(base)) {
    perror("mkdtemp");
    return 2;
  }
  char work[PATH_MAX], cwd[PATH_MAX], data[PATH_MAX];
  snprintf(work, sizeof work, "%s/elsewhere", base);
  snprintf(data, sizeof data, "%s/plugin", base);
  if (mkdir(work, 0700) != 0 || mkdir(data, 0700) != 0 || chdir(work) != 0 ||
      !getcwd(cwd, sizeof cwd)) {
    perror("working directory");
    return 2;
  }

  error_cases(fixtures);
  manifest_paths(fixtures, wasi_wasm, data);
  kinds_and_edges(fixtures);

  if (chdir("/") == 0) {
    rmdir(work);
    rmdir(data);
    rmdir(base);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
