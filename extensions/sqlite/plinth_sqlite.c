/*
 * plinth_sqlite: a SQLite loadable extension that turns plug-in exports into SQL functions.
 *
 *   .load ./libplinth_sqlite
 *   SELECT plinth_register('discount', 'checkout.wasm', 'before_checkout_finalize');
 *   SELECT discount(json_object('cart_total', 12000, 'is_new_customer', 1, 'provided_email', 1));
 *
 * Written against libplinth's C API (plinth.h) and SQLite's <sqlite3ext.h>. README.md in this
 * folder describes the SQL surface, the argument and result mapping, limits and errors.
 */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <plinth.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLINTH_SQLITE_VERSION "0.1.0"
/* Defaults so that a looping or greedy plug-in cannot hang or exhaust the database process. */
#define DEFAULT_TIMEOUT_MS 1000
#define DEFAULT_MAX_PAGES 4096 /* 256 MiB */
/* How much of each argument and of a plug-in's error text an error message shows. */
#define ARG_SHOWN_BYTES 64
#define ARGS_SHOWN 8
#define PLUGIN_ERROR_SHOWN_BYTES 1024
#define MANIFEST_FILE_MAX (1 << 20)

enum returns { RET_TEXT, RET_BLOB, RET_INTEGER, RET_REAL, RET_JSON };
static const char *const RETURNS_NAMES[] = {"text", "blob", "integer", "real", "json"};

/* One registration: the compiled plug-in and how to call it. Aggregate groups in flight hold
 * a reference, so registering the name again does not pull the plug-in from under them. */
typedef struct Def {
  int refs;
  ExtismCompiledPlugin *compiled;
  ExtismPlugin *plugin; /* scalar functions: the instance that serves every row */
  char *label;          /* the plug-in's file name, for messages */
  char *step;           /* the export called per row */
  char *final;          /* aggregates: the export that gives the result */
  int returns;
  sqlite3_uint64 calls;
} Def;

typedef struct State State;

/* One SQL function name. SQLite refuses to replace a function while a statement runs (and
 * plinth_register always runs inside one), so a name keeps its slot and registering it again
 * swaps the Def inside. */
typedef struct Slot {
  State *state;
  struct Slot *next;
  char *name;
  int aggregate;
  int deterministic;
  Def *def; /* NULL after plinth_unregister */
} Slot;

/* Per connection: the slots, for lookup by name. Freed when the last function using it is. */
struct State {
  int refs;
  Slot *slots;
};

typedef struct Group {
  Def *def;
  ExtismPlugin *plugin;
  int failed;
} Group;

typedef struct Options {
  sqlite3_int64 timeout_ms; /* -1: unset */
  sqlite3_int64 fuel;       /* 0: none */
  sqlite3_int64 max_pages;  /* -1: unset */
  char *config;             /* JSON object of strings, or NULL */
  int returns;
  int deterministic;
  int wasi;
} Options;

/* ---- small helpers ---- */

static char *dup_str(const char *s) { return s ? sqlite3_mprintf("%s", s) : NULL; }

static void state_unref(State *st) {
  if (st && --st->refs == 0) sqlite3_free(st);
}

static void def_unref(Def *def) {
  if (!def || --def->refs > 0) return;
  if (def->plugin) extism_plugin_free(def->plugin);
  if (def->compiled) extism_compiled_plugin_free(def->compiled);
  sqlite3_free(def->label);
  sqlite3_free(def->step);
  sqlite3_free(def->final);
  sqlite3_free(def);
}

/* Appends bytes for a human to read: control characters escaped, cut at max bytes (on a UTF-8
 * boundary) with "..." when longer. */
static void append_escaped(sqlite3_str *s, const unsigned char *p, size_t n, size_t max) {
  size_t shown = n;
  if (shown > max) {
    shown = max;
    while (shown > 0 && (p[shown] & 0xC0) == 0x80) shown--;
  }
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = p[i];
    switch (c) {
      case '\n': sqlite3_str_appendall(s, "\\n"); break;
      case '\r': sqlite3_str_appendall(s, "\\r"); break;
      case '\t': sqlite3_str_appendall(s, "\\t"); break;
      case '\\': sqlite3_str_appendall(s, "\\\\"); break;
      default:
        if (c < 0x20 || c == 0x7f) sqlite3_str_appendf(s, "\\x%02x", c);
        else sqlite3_str_appendchar(s, 1, (char)c);
    }
  }
  if (shown < n) sqlite3_str_appendf(s, "... (%llu bytes)", (unsigned long long)n);
}

/* The arguments of a row as SQL literals, for error messages. types[] holds the types read
 * before any conversion (reading an integer as text may change what sqlite3_value_type says). */
static void append_args(sqlite3_str *s, int argc, sqlite3_value **argv, const int *types) {
  for (int i = 0; i < argc && i < ARGS_SHOWN; i++) {
    if (i) sqlite3_str_appendall(s, ", ");
    switch (types[i]) {
      case SQLITE_NULL: sqlite3_str_appendall(s, "NULL"); break;
      case SQLITE_INTEGER: sqlite3_str_appendf(s, "%lld", sqlite3_value_int64(argv[i])); break;
      case SQLITE_FLOAT: sqlite3_str_appendf(s, "%!.15g", sqlite3_value_double(argv[i])); break;
      case SQLITE_BLOB: {
        const unsigned char *b = sqlite3_value_blob(argv[i]);
        int n = sqlite3_value_bytes(argv[i]);
        sqlite3_str_appendall(s, "x'");
        for (int j = 0; j < n && j < ARG_SHOWN_BYTES / 2; j++) sqlite3_str_appendf(s, "%02x", b[j]);
        sqlite3_str_appendall(s, "'");
        if (n > ARG_SHOWN_BYTES / 2) sqlite3_str_appendf(s, "... (%d bytes)", n);
        break;
      }
      default: {
        const unsigned char *t = sqlite3_value_text(argv[i]);
        int n = sqlite3_value_bytes(argv[i]);
        sqlite3_str_appendall(s, "'");
        append_escaped(s, t ? t : (const unsigned char *)"", t ? (size_t)n : 0, ARG_SHOWN_BYTES);
        sqlite3_str_appendall(s, "'");
      }
    }
  }
  if (argc > ARGS_SHOWN) sqlite3_str_appendf(s, ", ... (%d arguments)", argc);
}

/* Sets the message built in s as the function's error and frees s. */
static void result_str_error(sqlite3_context *ctx, sqlite3_str *s) {
  char *msg = sqlite3_str_finish(s);
  if (msg) {
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
  } else {
    sqlite3_result_error_nomem(ctx);
  }
}

static int utf8_valid(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len;
    unsigned int cp;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/* ---- a small JSON validator, so that returns:"json" never hands SQLite malformed JSON ---- */

typedef struct JsonCursor {
  const unsigned char *p, *end;
  int depth;
} JsonCursor;

static void json_ws(JsonCursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int json_lit(JsonCursor *c, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return 0;
  c->p += n;
  return 1;
}

static int json_string(JsonCursor *c) {
  if (c->p >= c->end || *c->p != '"') return 0;
  c->p++;
  while (c->p < c->end) {
    unsigned char ch = *c->p++;
    if (ch == '"') return 1;
    if (ch < 0x20) return 0;
    if (ch == '\\') {
      if (c->p >= c->end) return 0;
      ch = *c->p++;
      if (ch == 'u') {
        for (int k = 0; k < 4; k++, c->p++)
          if (c->p >= c->end || !strchr("0123456789abcdefABCDEF", *c->p) || !*c->p) return 0;
      } else if (!strchr("\"\\/bfnrt", ch) || !ch) {
        return 0;
      }
    }
  }
  return 0;
}

static int json_digits(JsonCursor *c) {
  const unsigned char *start = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  return c->p > start;
}

static int json_number(JsonCursor *c) {
  if (c->p < c->end && *c->p == '-') c->p++;
  if (c->p < c->end && *c->p == '0') c->p++;
  else if (!json_digits(c)) return 0;
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!json_digits(c)) return 0;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (!json_digits(c)) return 0;
  }
  return 1;
}

static int json_value(JsonCursor *c) {
  json_ws(c);
  if (c->p >= c->end) return 0;
  switch (*c->p) {
    case '"': return json_string(c);
    case 't': return json_lit(c, "true");
    case 'f': return json_lit(c, "false");
    case 'n': return json_lit(c, "null");
    case '[':
    case '{': {
      unsigned char close = *c->p == '[' ? ']' : '}';
      int object = close == '}';
      if (++c->depth > 500) return 0;
      c->p++;
      json_ws(c);
      if (c->p < c->end && *c->p == close) {
        c->p++;
        c->depth--;
        return 1;
      }
      for (;;) {
        if (object) {
          json_ws(c);
          if (!json_string(c)) return 0;
          json_ws(c);
          if (c->p >= c->end || *c->p != ':') return 0;
          c->p++;
        }
        if (!json_value(c)) return 0;
        json_ws(c);
        if (c->p >= c->end) return 0;
        if (*c->p == ',') { c->p++; continue; }
        if (*c->p != close) return 0;
        c->p++;
        c->depth--;
        return 1;
      }
    }
    default: return json_number(c);
  }
}

static int json_valid_bytes(const unsigned char *p, size_t n) {
  JsonCursor c = {p, p + n, 0};
  if (!json_value(&c)) return 0;
  json_ws(&c);
  return c.p == c.end;
}

/* ---- argument mapping ---- */

static void json_append_string(sqlite3_str *s, const unsigned char *p, int n) {
  sqlite3_str_appendchar(s, 1, '"');
  for (int i = 0; i < n; i++) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      sqlite3_str_appendchar(s, 1, '\\');
      sqlite3_str_appendchar(s, 1, (char)c);
    } else if (c < 0x20) {
      sqlite3_str_appendf(s, "\\u%04x", c);
    } else {
      sqlite3_str_appendchar(s, 1, (char)c);
    }
  }
  sqlite3_str_appendchar(s, 1, '"');
}

static void json_append_base64(sqlite3_str *s, const unsigned char *p, int n) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  sqlite3_str_appendchar(s, 1, '"');
  for (int i = 0; i < n; i += 3) {
    unsigned int v = (unsigned int)p[i] << 16;
    if (i + 1 < n) v |= (unsigned int)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char q[4] = {A[(v >> 18) & 63], A[(v >> 12) & 63], i + 1 < n ? A[(v >> 6) & 63] : '=',
                 i + 2 < n ? A[v & 63] : '='};
    sqlite3_str_append(s, q, 4);
  }
  sqlite3_str_appendchar(s, 1, '"');
}

static void json_append_real(sqlite3_str *s, double d) {
  if (!isfinite(d)) {
    sqlite3_str_appendall(s, "null");
    return;
  }
  /* The shortest of 15 or 17 digits that reads back as the same double. */
  char buf[40];
  snprintf(buf, sizeof buf, "%.15g", d);
  if (strtod(buf, NULL) != d) snprintf(buf, sizeof buf, "%.17g", d);
  sqlite3_str_appendall(s, buf);
}

/* The plug-in input for a row. One argument: its bytes (integers and reals as SQLite's text).
 * Several: a JSON array. *owned is set when the bytes must be freed with sqlite3_free. Returns
 * 0 on out-of-memory. */
static int map_args(int argc, sqlite3_value **argv, const unsigned char **in, size_t *n,
                    char **owned) {
  *owned = NULL;
  if (argc == 0) {
    *in = (const unsigned char *)"";
    *n = 0;
    return 1;
  }
  if (argc == 1) {
    if (sqlite3_value_type(argv[0]) == SQLITE_BLOB) {
      *in = sqlite3_value_blob(argv[0]);
    } else {
      *in = sqlite3_value_text(argv[0]);
      if (!*in) return 0;
    }
    *n = (size_t)sqlite3_value_bytes(argv[0]);
    if (!*in) *in = (const unsigned char *)"";
    return 1;
  }
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendchar(s, 1, '[');
  for (int i = 0; i < argc; i++) {
    if (i) sqlite3_str_appendchar(s, 1, ',');
    switch (sqlite3_value_type(argv[i])) {
      case SQLITE_NULL: sqlite3_str_appendall(s, "null"); break;
      case SQLITE_INTEGER: sqlite3_str_appendf(s, "%lld", sqlite3_value_int64(argv[i])); break;
      case SQLITE_FLOAT: json_append_real(s, sqlite3_value_double(argv[i])); break;
      case SQLITE_BLOB:
        json_append_base64(s, sqlite3_value_blob(argv[i]), sqlite3_value_bytes(argv[i]));
        break;
      default: {
        const unsigned char *t = sqlite3_value_text(argv[i]);
        json_append_string(s, t ? t : (const unsigned char *)"", sqlite3_value_bytes(argv[i]));
      }
    }
  }
  sqlite3_str_appendchar(s, 1, ']');
  int len = sqlite3_str_length(s);
  if (sqlite3_str_errcode(s) != SQLITE_OK) {
    sqlite3_free(sqlite3_str_finish(s));
    return 0;
  }
  *owned = sqlite3_str_finish(s);
  *in = (const unsigned char *)*owned;
  *n = (size_t)len;
  return 1;
}

/* ---- calling ---- */

/* Starts an error message for a failed row: names the SQL function, the row, the plug-in and
 * the export. */
static sqlite3_str *row_error(const char *sql_name, const Def *def, const char *export,
                              int argc, sqlite3_value **argv, const int *types) {
  sqlite3_str *s = sqlite3_str_new(NULL);
  sqlite3_str_appendf(s, "%s(", sql_name);
  append_args(s, argc, argv, types);
  sqlite3_str_appendf(s, "): plug-in %s, export %s, call %llu: ", def->label, export,
                      (unsigned long long)def->calls);
  return s;
}

/* Calls export on *plugin. On failure sets the SQL error and gives *plugin a fresh instance
 * (a trap or timeout may leave an instance unusable); returns 0. */
static int call_export(sqlite3_context *ctx, const char *sql_name, Def *def,
                       ExtismPlugin **plugin, const char *export, const unsigned char *in,
                       size_t n, int argc, sqlite3_value **argv, const int *types) {
  def->calls++;
  int rc = extism_plugin_call(*plugin, export, in, (ExtismSize)n);
  if (rc == EXTISM_SUCCESS) return 1;
  int kind = plinth_plugin_error_kind(*plugin);
  const char *err = extism_plugin_error(*plugin);
  const char *kind_name = plinth_error_kind_name(kind);
  sqlite3_str *s = row_error(sql_name, def, export, argc, argv, types);
  sqlite3_str_appendf(s, "%s (code %d): ", kind_name ? kind_name : "error", rc);
  if (err) append_escaped(s, (const unsigned char *)err, strlen(err), PLUGIN_ERROR_SHOWN_BYTES);
  else sqlite3_str_appendall(s, "the plug-in gave no message");
  if (kind == PLINTH_ERROR_KIND_TIMEOUT)
    sqlite3_str_appendall(s, " (raise the limit with plinth_register's option timeout_ms)");
  else if (kind == PLINTH_ERROR_KIND_OUT_OF_FUEL)
    sqlite3_str_appendall(s, " (raise the limit with plinth_register's option fuel)");
  else if (kind == PLINTH_ERROR_KIND_OUT_OF_MEMORY)
    sqlite3_str_appendall(s, " (raise the limit with plinth_register's option max_pages)");
  char *newerr = NULL;
  ExtismPlugin *fresh = extism_plugin_new_from_compiled(def->compiled, &newerr);
  if (fresh) {
    extism_plugin_free(*plugin);
    *plugin = fresh;
  } else {
    sqlite3_str_appendall(s, "; and a fresh instance could not be made: ");
    append_escaped(s, (const unsigned char *)(newerr ? newerr : "?"),
                   newerr ? strlen(newerr) : 1, PLUGIN_ERROR_SHOWN_BYTES);
    extism_plugin_new_error_free(newerr);
  }
  result_str_error(ctx, s);
  return 0;
}

static int parse_whole(const char *text, int integer, sqlite3_int64 *i, double *d) {
  char *end;
  errno = 0;
  if (integer) *i = strtoll(text, &end, 10);
  else *d = strtod(text, &end);
  while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
  return errno == 0 && end != text && *end == 0;
}

/* Sets the SQL result from the plug-in's output, as def->returns says. */
static void set_result(sqlite3_context *ctx, const char *sql_name, Def *def, ExtismPlugin *p,
                       const char *export, int argc, sqlite3_value **argv, const int *types) {
  const unsigned char *out = extism_plugin_output_data(p);
  ExtismSize n = extism_plugin_output_length(p);
  if (!out) n = 0;
  int limit = sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1);
  const char *problem = NULL;
  if (n > (ExtismSize)limit) {
    sqlite3_str *s = row_error(sql_name, def, export, argc, argv, types);
    sqlite3_str_appendf(s, "the output is %llu bytes, over SQLite's length limit of %d bytes",
                        (unsigned long long)n, limit);
    result_str_error(ctx, s);
    return;
  }
  switch (def->returns) {
    case RET_BLOB:
      sqlite3_result_blob64(ctx, out ? (const void *)out : "", n, SQLITE_TRANSIENT);
      return;
    case RET_TEXT:
    case RET_JSON:
      if (def->returns == RET_JSON && n == 0) {
        sqlite3_result_null(ctx);
        return;
      }
      if (!utf8_valid(out, (size_t)n)) {
        problem = "the output is not valid UTF-8 (register with options '{\"returns\":\"blob\"}' "
                  "for binary output)";
        break;
      }
      if (def->returns == RET_JSON && !json_valid_bytes(out, (size_t)n)) {
        problem = "the output is not valid JSON (register with returns \"text\" to get it as is)";
        break;
      }
      sqlite3_result_text64(ctx, n ? (const char *)out : "", n, SQLITE_TRANSIENT, SQLITE_UTF8);
      /* 'J' is the subtype SQLite's JSON functions give and accept as JSON. */
      if (def->returns == RET_JSON) sqlite3_result_subtype(ctx, 'J');
      return;
    default: {
      if (n == 0) {
        sqlite3_result_null(ctx);
        return;
      }
      char *text = sqlite3_malloc64(n + 1);
      if (!text) {
        sqlite3_result_error_nomem(ctx);
        return;
      }
      memcpy(text, out, (size_t)n);
      text[n] = 0;
      sqlite3_int64 i = 0;
      double d = 0;
      int ok = memchr(out, 0, (size_t)n) == NULL &&
               parse_whole(text, def->returns == RET_INTEGER, &i, &d);
      if (ok && def->returns == RET_INTEGER) sqlite3_result_int64(ctx, i);
      else if (ok) sqlite3_result_double(ctx, d);
      else {
        sqlite3_str *s = row_error(sql_name, def, export, argc, argv, types);
        sqlite3_str_appendf(s, "the output '");
        append_escaped(s, out, (size_t)n, ARG_SHOWN_BYTES);
        sqlite3_str_appendf(s, "' is not %s (returns \"%s\"; register with returns \"text\" to get it as is)",
                            def->returns == RET_INTEGER ? "a decimal integer" : "a number",
                            RETURNS_NAMES[def->returns]);
        result_str_error(ctx, s);
      }
      sqlite3_free(text);
      return;
    }
  }
  sqlite3_str *s = row_error(sql_name, def, export, argc, argv, types);
  sqlite3_str_appendall(s, problem);
  result_str_error(ctx, s);
}

static void read_types(int argc, sqlite3_value **argv, int *types) {
  for (int i = 0; i < argc && i < ARGS_SHOWN; i++) types[i] = sqlite3_value_type(argv[i]);
}

static int unregistered(sqlite3_context *ctx, Slot *slot) {
  if (slot->def) return 0;
  char *msg = sqlite3_mprintf("%s: this plug-in function was unregistered (plinth_unregister); "
                              "register it again with plinth_register",
                              slot->name);
  sqlite3_result_error(ctx, msg ? msg : "plug-in function was unregistered", -1);
  sqlite3_free(msg);
  return 1;
}

static void scalar_func(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Slot *slot = sqlite3_user_data(ctx);
  if (unregistered(ctx, slot)) return;
  Def *def = slot->def;
  int types[ARGS_SHOWN];
  read_types(argc, argv, types);
  /* One NULL argument gives NULL without a call, as built-in functions do. */
  if (argc == 1 && types[0] == SQLITE_NULL) return;
  const unsigned char *in;
  size_t n;
  char *owned;
  if (!map_args(argc, argv, &in, &n, &owned)) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (call_export(ctx, slot->name, def, &def->plugin, def->step, in, n, argc, argv, types))
    set_result(ctx, slot->name, def, def->plugin, def->step, argc, argv, types);
  sqlite3_free(owned);
}

/* Gives the group its own instance on first use. Returns 0 after setting an error. */
static int group_start(sqlite3_context *ctx, Slot *slot, Group *g) {
  if (g->def) return 1;
  char *err = NULL;
  ExtismPlugin *p = extism_plugin_new_from_compiled(slot->def->compiled, &err);
  if (!p) {
    sqlite3_str *s = sqlite3_str_new(NULL);
    sqlite3_str_appendf(s, "%s: cannot make an instance of plug-in %s for this group: ", slot->name,
                        slot->def->label);
    append_escaped(s, (const unsigned char *)(err ? err : "?"), err ? strlen(err) : 1,
                   PLUGIN_ERROR_SHOWN_BYTES);
    extism_plugin_new_error_free(err);
    result_str_error(ctx, s);
    g->failed = 1;
    return 0;
  }
  g->def = slot->def;
  g->def->refs++;
  g->plugin = p;
  return 1;
}

static void group_end(Group *g) {
  if (g->plugin) extism_plugin_free(g->plugin);
  def_unref(g->def);
  g->plugin = NULL;
  g->def = NULL;
}

static void agg_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  Slot *slot = sqlite3_user_data(ctx);
  Group *g = sqlite3_aggregate_context(ctx, sizeof(Group));
  if (!g) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (g->failed) return;
  if (!g->def && unregistered(ctx, slot)) {
    g->failed = 1;
    return;
  }
  int types[ARGS_SHOWN];
  read_types(argc, argv, types);
  /* Rows whose one argument is NULL are skipped, as sum() and avg() skip them. */
  if (argc == 1 && types[0] == SQLITE_NULL) return;
  if (!group_start(ctx, slot, g)) return;
  const unsigned char *in;
  size_t n;
  char *owned;
  if (!map_args(argc, argv, &in, &n, &owned)) {
    sqlite3_result_error_nomem(ctx);
    g->failed = 1;
    return;
  }
  if (!call_export(ctx, slot->name, g->def, &g->plugin, g->def->step, in, n, argc, argv, types))
    g->failed = 1;
  sqlite3_free(owned);
}

static void agg_final(sqlite3_context *ctx) {
  Slot *slot = sqlite3_user_data(ctx);
  Group *g = sqlite3_aggregate_context(ctx, sizeof(Group));
  if (!g) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  /* After a failed step the statement is being torn down: only free the instance. */
  if (!g->failed) {
    if (g->def || (!unregistered(ctx, slot) && group_start(ctx, slot, g))) {
      if (call_export(ctx, slot->name, g->def, &g->plugin, g->def->final, (const unsigned char *)"",
                      0, 0, NULL, NULL))
        set_result(ctx, slot->name, g->def, g->plugin, g->def->final, 0, NULL, NULL);
    }
  }
  group_end(g);
}

/* ---- registration ---- */

static Slot *find_slot(State *st, const char *name) {
  for (Slot *s = st->slots; s; s = s->next)
    if (sqlite3_stricmp(s->name, name) == 0) return s;
  return NULL;
}

static void slot_destroy(void *p) {
  Slot *slot = p;
  State *st = slot->state;
  if (st) {
    for (Slot **at = &st->slots; *at; at = &(*at)->next) {
      if (*at == slot) {
        *at = slot->next;
        break;
      }
    }
  }
  def_unref(slot->def);
  sqlite3_free(slot->name);
  sqlite3_free(slot);
  state_unref(st);
}

static void state_destroy(void *p) { state_unref(p); }

/* Whether text is a JSON object, asked of SQLite's own JSON parser. */
static int is_json_object(sqlite3 *db, const char *text) {
  sqlite3_stmt *st = NULL;
  int ok = 0;
  if (sqlite3_prepare_v2(db, "SELECT json_valid(?1) AND json_type(?1) = 'object'", -1, &st,
                         NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  return ok;
}

/* Reads options_json into o. Returns an error message (sqlite3_malloc'd) or NULL. */
static char *parse_options(sqlite3 *db, sqlite3_value *v, Options *o) {
  memset(o, 0, sizeof *o);
  o->timeout_ms = -1;
  o->max_pages = -1;
  if (!v || sqlite3_value_type(v) == SQLITE_NULL) return NULL;
  if (sqlite3_value_type(v) != SQLITE_TEXT)
    return sqlite3_mprintf("options must be a JSON object as text, e.g. '{\"timeout_ms\":500}'");
  /* First whether it is an object at all, so that json_each never sees malformed JSON. */
  if (!is_json_object(db, (const char *)sqlite3_value_text(v)))
    return sqlite3_mprintf("options must be a JSON object, e.g. '{\"timeout_ms\":500}'");
  sqlite3_stmt *st = NULL;
  char *err = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT key, type, value FROM json_each(?1)", -1, &st, NULL);
  if (rc != SQLITE_OK) return sqlite3_mprintf("cannot read options: %s", sqlite3_errmsg(db));
  sqlite3_bind_value(st, 1, v);
  while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(st, 0);
    const char *type = (const char *)sqlite3_column_text(st, 1);
    if (!key || !type) { err = sqlite3_mprintf("out of memory"); break; }
    int is_int = strcmp(type, "integer") == 0;
    int is_bool = strcmp(type, "true") == 0 || strcmp(type, "false") == 0;
    sqlite3_int64 i = sqlite3_column_int64(st, 2);
    if (strcmp(key, "timeout_ms") == 0 || strcmp(key, "fuel") == 0 ||
        strcmp(key, "max_pages") == 0) {
      if (!is_int || i <= 0 || (key[0] == 'm' && i > 65536)) {
        err = sqlite3_mprintf("option %s must be a positive integer%s", key,
                              key[0] == 'm' ? " of 64 KiB pages, at most 65536" : "");
        break;
      }
      if (key[0] == 't') o->timeout_ms = i;
      else if (key[0] == 'f') o->fuel = i;
      else o->max_pages = i;
    } else if (strcmp(key, "returns") == 0) {
      const char *r = (const char *)sqlite3_column_text(st, 2);
      o->returns = -1;
      for (int k = 0; r && strcmp(type, "text") == 0 && k < 5; k++)
        if (strcmp(r, RETURNS_NAMES[k]) == 0) o->returns = k;
      if (o->returns < 0)
        err = sqlite3_mprintf("option returns must be one of \"text\", \"blob\", \"integer\", "
                              "\"real\", \"json\"");
    } else if (strcmp(key, "deterministic") == 0 || strcmp(key, "wasi") == 0) {
      if (!is_bool) err = sqlite3_mprintf("option %s must be true or false", key);
      else if (key[0] == 'd') o->deterministic = strcmp(type, "true") == 0;
      else o->wasi = strcmp(type, "true") == 0;
    } else if (strcmp(key, "config") == 0) {
      if (strcmp(type, "object") != 0) {
        err = sqlite3_mprintf("option config must be a JSON object of strings");
        break;
      }
      o->config = dup_str((const char *)sqlite3_column_text(st, 2));
      sqlite3_stmt *c = NULL;
      if (sqlite3_prepare_v2(db, "SELECT key FROM json_each(?1) WHERE type <> 'text' LIMIT 1", -1,
                             &c, NULL) == SQLITE_OK) {
        sqlite3_bind_text(c, 1, o->config, -1, SQLITE_STATIC);
        if (sqlite3_step(c) == SQLITE_ROW)
          err = sqlite3_mprintf("option config: the value of \"%s\" must be a string",
                                (const char *)sqlite3_column_text(c, 0));
      }
      sqlite3_finalize(c);
    } else {
      err = sqlite3_mprintf("unknown option \"%s\" (known: timeout_ms, fuel, max_pages, config, "
                            "returns, deterministic, wasi)",
                            key);
    }
  }
  if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
    err = sqlite3_mprintf("cannot read options: %s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return err;
}

/* Reads a small file whole. Returns NULL and sets *err on failure. */
static char *read_file(const char *path, char **err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *err = sqlite3_mprintf("cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = sqlite3_malloc(MANIFEST_FILE_MAX + 1);
  size_t n = buf ? fread(buf, 1, MANIFEST_FILE_MAX + 1, f) : 0;
  int bad = ferror(f);
  fclose(f);
  if (!buf || bad || n > MANIFEST_FILE_MAX) {
    *err = sqlite3_mprintf(buf && !bad ? "manifest %s is over 1 MiB" : "cannot read %s", path);
    sqlite3_free(buf);
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

/* Builds the manifest to load: the source's (a JSON manifest, a manifest file or a module
 * file) with the options' limits and config merged in, and the default limits where neither
 * sets one. A manifest file's relative paths are made relative to its folder, as Plinth does
 * when it loads the file itself. Sets *label to a short name of the plug-in. */
static char *build_manifest(sqlite3 *db, const char *source, const Options *o, char **label,
                            char **err) {
  const char *p = source;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  char *json = NULL, *dir = NULL;
  if (*p == '{') {
    json = dup_str(source);
  } else {
    FILE *f = fopen(source, "rb");
    if (!f) {
      *err = sqlite3_mprintf("cannot open plug-in file %s: %s", source, strerror(errno));
      return NULL;
    }
    int c;
    do c = fgetc(f);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    fclose(f);
    if (c == '{') {
      json = read_file(source, err);
      if (!json) return NULL;
      const char *slash = strrchr(source, '/');
      dir = slash ? sqlite3_mprintf("%.*s", (int)(slash - source + (slash == source)), source)
                  : dup_str(".");
    } else {
      /* A wasm or WAT file: Plinth reads it (relative to the working directory). */
      sqlite3_stmt *st = NULL;
      if (sqlite3_prepare_v2(db, "SELECT json_object('wasm', json_array(json_object('path', ?1)))",
                             -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) json = dup_str((const char *)sqlite3_column_text(st, 0));
      }
      sqlite3_finalize(st);
    }
  }
  if (!json) {
    if (!*err) *err = sqlite3_mprintf("out of memory");
    sqlite3_free(dir);
    return NULL;
  }
  if (!is_json_object(db, json)) {
    *err = sqlite3_mprintf("the manifest%s%s is not a JSON object", dir ? " in " : "",
                           dir ? source : "");
    sqlite3_free(json);
    sqlite3_free(dir);
    return NULL;
  }
  static const char *const SQL =
      "WITH m(j) AS (SELECT CASE WHEN ?2 IS NULL THEN json(?1) ELSE json_set(json(?1), '$.wasm', "
      "  (SELECT json_group_array(CASE WHEN json_type(value, '$.path') = 'text' "
      "     AND substr(json_extract(value, '$.path'), 1, 1) <> '/' "
      "     THEN json_set(value, '$.path', ?2 || '/' || json_extract(value, '$.path')) "
      "     ELSE json(value) END) FROM json_each(json(?1), '$.wasm'))) END), "
      "p(j) AS (SELECT CASE WHEN ?2 IS NOT NULL AND json_type(j, '$.allowed_paths') = 'object' "
      "  THEN json_set(j, '$.allowed_paths', (SELECT json_group_object(CASE "
      "     WHEN key LIKE 'ro:%' AND substr(key, 4, 1) <> '/' THEN 'ro:' || ?2 || '/' || substr(key, 4) "
      "     WHEN key NOT LIKE 'ro:%' AND substr(key, 1, 1) <> '/' THEN ?2 || '/' || key "
      "     ELSE key END, value) FROM json_each(j, '$.allowed_paths'))) ELSE j END FROM m), "
      "l(j) AS (SELECT json_set(j, '$.timeout_ms', coalesce(?3, json_extract(j, '$.timeout_ms'), ?5), "
      "  '$.memory.max_pages', coalesce(?4, json_extract(j, '$.memory.max_pages'), ?6)) FROM p) "
      "SELECT CASE WHEN ?7 IS NULL THEN j ELSE json_patch(j, json_object('config', json(?7))) END, "
      "  coalesce(json_extract(j, '$.wasm[0].path'), json_extract(j, '$.wasm[0].url'), "
      "           json_extract(j, '$.wasm[0].name'), 'inline module') FROM l";
  sqlite3_stmt *st = NULL;
  char *manifest = NULL;
  if (sqlite3_prepare_v2(db, SQL, -1, &st, NULL) != SQLITE_OK) {
    *err = sqlite3_mprintf("cannot build the manifest: %s", sqlite3_errmsg(db));
  } else {
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    if (dir) sqlite3_bind_text(st, 2, dir, -1, SQLITE_STATIC);
    if (o->timeout_ms > 0) sqlite3_bind_int64(st, 3, o->timeout_ms);
    if (o->max_pages > 0) sqlite3_bind_int64(st, 4, o->max_pages);
    sqlite3_bind_int(st, 5, DEFAULT_TIMEOUT_MS);
    sqlite3_bind_int(st, 6, DEFAULT_MAX_PAGES);
    if (o->config) sqlite3_bind_text(st, 7, o->config, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      manifest = dup_str((const char *)sqlite3_column_text(st, 0));
      const char *path = (const char *)sqlite3_column_text(st, 1);
      const char *slash = path ? strrchr(path, '/') : NULL;
      *label = dup_str(dir ? (strrchr(source, '/') ? strrchr(source, '/') + 1 : source)
                           : (slash ? slash + 1 : path));
    } else if (rc == SQLITE_DONE) {
      *err = sqlite3_mprintf("the manifest is not a JSON object%s%s", dir ? " in " : "",
                             dir ? source : "");
    } else {
      *err = sqlite3_mprintf("cannot read the manifest%s%s: %s", dir ? " " : "", dir ? source : "",
                             sqlite3_errmsg(db));
    }
  }
  sqlite3_finalize(st);
  sqlite3_free(json);
  sqlite3_free(dir);
  return manifest;
}

static int valid_name(const char *name) {
  if (!name || !((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z') || *name == '_'))
    return 0;
  size_t n = 0;
  for (const char *p = name; *p; p++, n++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
          *p == '_'))
      return 0;
  return n <= 64 && sqlite3_strnicmp(name, "plinth_", 7) != 0;
}

/* plinth_register(name, source, export [, options]) and
 * plinth_register_aggregate(name, source, step, final [, options]). */
static void register_func(sqlite3_context *ctx, int argc, sqlite3_value **argv, int aggregate) {
  State *st = sqlite3_user_data(ctx);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  const char *fn = aggregate ? "plinth_register_aggregate" : "plinth_register";
  int nfixed = aggregate ? 4 : 3;
  if (argc != nfixed && argc != nfixed + 1) {
    char *m = sqlite3_mprintf(aggregate ? "%s takes 4 or 5 arguments: name, source, step_export, "
                                          "final_export [, options_json]"
                                        : "%s takes 3 or 4 arguments: name, source, export "
                                          "[, options_json]",
                              fn);
    sqlite3_result_error(ctx, m ? m : fn, -1);
    sqlite3_free(m);
    return;
  }
  for (int i = 0; i < nfixed; i++) {
    if (sqlite3_value_type(argv[i]) != SQLITE_TEXT) {
      static const char *const WHAT[] = {"name", "source", "export", "final export"};
      char *m = sqlite3_mprintf("%s: the %s (argument %d) must be text", fn,
                                aggregate && i == 2 ? "step export" : WHAT[i], i + 1);
      sqlite3_result_error(ctx, m ? m : fn, -1);
      sqlite3_free(m);
      return;
    }
  }
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  const char *source = (const char *)sqlite3_value_text(argv[1]);
  const char *step = (const char *)sqlite3_value_text(argv[2]);
  const char *final = aggregate ? (const char *)sqlite3_value_text(argv[3]) : NULL;
  if (!name || !source || !step || (aggregate && !final)) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  char *err = NULL, *manifest = NULL, *label = NULL;
  Def *def = NULL;
  Options o;
  if (!valid_name(name)) {
    err = sqlite3_mprintf("the name must be letters, digits and _, at most 64, start with a letter "
                          "or _, and not start with plinth_");
    memset(&o, 0, sizeof o);
    goto done;
  }
  err = parse_options(db, argc > nfixed ? argv[nfixed] : NULL, &o);
  if (err) goto done;
  manifest = build_manifest(db, source, &o, &label, &err);
  if (!manifest) goto done;
  char *lerr = NULL;
  ExtismCompiledPlugin *compiled =
      o.fuel > 0 ? extism_compiled_plugin_new_with_fuel_limit((const uint8_t *)manifest,
                                                              strlen(manifest), NULL, 0, o.wasi,
                                                              (uint64_t)o.fuel, &lerr)
                 : extism_compiled_plugin_new((const uint8_t *)manifest, strlen(manifest), NULL, 0,
                                              o.wasi, &lerr);
  if (!compiled) {
    const char *kind = plinth_error_kind_name(plinth_plugin_new_error_kind(lerr));
    sqlite3_str *s = sqlite3_str_new(NULL);
    sqlite3_str_appendf(s, "cannot load plug-in %s (%s): ", label, kind ? kind : "error");
    append_escaped(s, (const unsigned char *)(lerr ? lerr : "no message"),
                   strlen(lerr ? lerr : "no message"), PLUGIN_ERROR_SHOWN_BYTES);
    err = sqlite3_str_finish(s);
    extism_plugin_new_error_free(lerr);
    goto done;
  }
  def = sqlite3_malloc(sizeof *def);
  if (!def) {
    extism_compiled_plugin_free(compiled);
    err = sqlite3_mprintf("out of memory");
    goto done;
  }
  memset(def, 0, sizeof *def);
  def->refs = 1;
  def->compiled = compiled;
  def->label = label;
  label = NULL;
  def->step = dup_str(step);
  def->final = dup_str(final);
  def->returns = o.returns;
  def->plugin = extism_plugin_new_from_compiled(compiled, &lerr);
  if (!def->plugin) {
    sqlite3_str *s = sqlite3_str_new(NULL);
    sqlite3_str_appendf(s, "cannot instantiate plug-in %s: ", def->label);
    append_escaped(s, (const unsigned char *)(lerr ? lerr : "?"), strlen(lerr ? lerr : "?"),
                   PLUGIN_ERROR_SHOWN_BYTES);
    err = sqlite3_str_finish(s);
    extism_plugin_new_error_free(lerr);
    goto done;
  }
  const char *exports[2] = {step, final};
  for (int i = 0; i < (aggregate ? 2 : 1); i++) {
    if (!extism_plugin_function_exists(def->plugin, exports[i])) {
      err = sqlite3_mprintf("plug-in %s has no export named %s (check the name and the plug-in "
                            "file)",
                            def->label, exports[i]);
      goto done;
    }
  }
  if (aggregate) {
    /* Each group makes its own instance. */
    extism_plugin_free(def->plugin);
    def->plugin = NULL;
  }
  Slot *slot = find_slot(st, name);
  if (slot) {
    if (slot->aggregate != aggregate || slot->deterministic != o.deterministic) {
      err = sqlite3_mprintf("%s was registered as %s%s function in this connection, and SQLite "
                            "cannot change that while statements run: use another name (or a "
                            "new connection)",
                            slot->name, slot->deterministic ? "a deterministic " : "a non-deterministic ",
                            slot->aggregate ? "aggregate" : "scalar");
      goto done;
    }
    def_unref(slot->def);
    slot->def = def;
    def = NULL;
  } else {
    slot = sqlite3_malloc(sizeof *slot);
    char *slot_name = dup_str(name);
    if (!slot || !slot_name) {
      sqlite3_free(slot);
      sqlite3_free(slot_name);
      err = sqlite3_mprintf("out of memory");
      goto done;
    }
    memset(slot, 0, sizeof *slot);
    slot->name = slot_name;
    slot->aggregate = aggregate;
    slot->deterministic = o.deterministic;
    slot->def = def;
    def = NULL;
    int flags = SQLITE_UTF8 | (o.deterministic ? SQLITE_DETERMINISTIC : 0);
#ifdef SQLITE_RESULT_SUBTYPE
    flags |= SQLITE_RESULT_SUBTYPE; /* returns "json" sets the JSON subtype */
#endif
    int rc = sqlite3_create_function_v2(db, name, -1, flags, slot, aggregate ? NULL : scalar_func,
                                        aggregate ? agg_step : NULL, aggregate ? agg_final : NULL,
                                        slot_destroy);
    /* On failure SQLite has called slot_destroy already. */
    if (rc != SQLITE_OK) {
      err = sqlite3_mprintf("cannot create SQL function %s: %s", name, sqlite3_errmsg(db));
      goto done;
    }
    slot->state = st;
    st->refs++;
    slot->next = st->slots;
    st->slots = slot;
  }
  sqlite3_result_text(ctx, name, -1, SQLITE_TRANSIENT);
done:
  if (err) {
    char *m = sqlite3_mprintf("%s('%.80q'): %s", fn, name, err);
    sqlite3_result_error(ctx, m ? m : err, -1);
    sqlite3_free(m);
    sqlite3_free(err);
  }
  def_unref(def);
  sqlite3_free(manifest);
  sqlite3_free(label);
  sqlite3_free(o.config);
}

static void register_scalar(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  register_func(ctx, argc, argv, 0);
}

static void register_aggregate(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  register_func(ctx, argc, argv, 1);
}

static void unregister_func(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  State *st = sqlite3_user_data(ctx);
  const char *name = (const char *)sqlite3_value_text(argv[0]);
  Slot *slot = name ? find_slot(st, name) : NULL;
  if (!slot || !slot->def) {
    char *m = sqlite3_mprintf("plinth_unregister: no plug-in function named '%s' is registered",
                              name ? name : "NULL");
    sqlite3_result_error(ctx, m ? m : "plinth_unregister: no such function", -1);
    sqlite3_free(m);
    return;
  }
  def_unref(slot->def);
  slot->def = NULL;
  sqlite3_result_int(ctx, 1);
}

static void version_func(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  char *v = sqlite3_mprintf("plinth_sqlite %s (libplinth %s)", PLINTH_SQLITE_VERSION,
                            extism_version());
  if (!v) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, v, -1, sqlite3_free);
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_plinthsqlite_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  SQLITE_EXTENSION_INIT2(pApi);
  (void)pzErrMsg;
  State *st = sqlite3_malloc(sizeof *st);
  if (!st) return SQLITE_NOMEM;
  memset(st, 0, sizeof *st);
  st->refs = 1;
  /* The registering functions load code: DIRECTONLY keeps them out of triggers and views, so
   * opening a database file cannot make them run. */
  int flags = SQLITE_UTF8 | SQLITE_DIRECTONLY;
  struct {
    const char *name;
    int n;
    void (*f)(sqlite3_context *, int, sqlite3_value **);
  } fns[] = {{"plinth_register", -1, register_scalar},
             {"plinth_register_aggregate", -1, register_aggregate},
             {"plinth_unregister", 1, unregister_func},
             {"plinth_version", 0, version_func}};
  int rc = SQLITE_OK;
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof fns / sizeof fns[0]; i++) {
    st->refs++;
    rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].n, flags, st, fns[i].f, NULL, NULL,
                                    state_destroy);
  }
  state_unref(st);
  return rc;
}

/* The generic name, for hosts that load the extension under another file name. */
#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_extension_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  return sqlite3_plinthsqlite_init(db, pzErrMsg, pApi);
}
