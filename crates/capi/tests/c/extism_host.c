// A C host written the way Extism's documentation writes one, built against the extism.h that
// scripts/install-libplinth.sh installs. It checks at compile time that every type,
// enumerator, macro and function of Extism 1.x's extism.h exists with the same signature (a
// function whose type differs fails to convert to the pointer type below under -Werror), and
// at run time that a plug-in with a host function runs. Prints "ok" and exits 0 on success.

#include <extism.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Names a host program may well use for itself: the header must not take them.
typedef struct {
  int bits;
} I32;
enum { I64 = 64, F32, F64, V128, FuncRef, ExternRef, PTR };

// Macros.
#ifndef EXTISM_SUCCESS
#error "EXTISM_SUCCESS is missing"
#endif
#if EXTISM_SUCCESS != 0
#error "EXTISM_SUCCESS is not 0"
#endif
#ifndef EXTISM_PTR
#error "EXTISM_PTR is missing"
#endif
#ifndef EXTISM_FUNCTION
#error "EXTISM_FUNCTION is missing"
#endif
#ifndef EXTISM_GO_FUNCTION
#error "EXTISM_GO_FUNCTION is missing"
#endif

// Enumerators, with Extism's values (bindings pass them as integers).
_Static_assert(ExtismValType_I32 == 0, "I32");
_Static_assert(ExtismValType_I64 == 1, "I64");
_Static_assert(ExtismValType_F32 == 2, "F32");
_Static_assert(ExtismValType_F64 == 3, "F64");
_Static_assert(ExtismValType_V128 == 4, "V128");
_Static_assert(ExtismValType_FuncRef == 5, "FuncRef");
_Static_assert(ExtismValType_ExternRef == 6, "ExternRef");
_Static_assert(EXTISM_PTR == ExtismValType_I64, "EXTISM_PTR");
// libplinth reads the enum as a 32-bit integer.
_Static_assert(sizeof(ExtismValType) == 4, "ExtismValType is 4 bytes");
_Static_assert(sizeof(ExtismVal) == 16, "ExtismVal is a 4-byte type, padding, an 8-byte union");

// Types: each used the way Extism's header defines it.
static ExtismSize size_type = 0;
static ExtismMemoryHandle handle_type = 0;
static ExtismValUnion union_type = {.i64 = 0};
static void drain_line(const char *data, ExtismSize size) {
  (void)data;
  (void)size;
}
static ExtismLogDrainFunctionType drain_type = drain_line;

// Every function, as a pointer of the type Extism declares it with.
static void check_signatures(void) {
  const uint8_t *(*plugin_id)(ExtismPlugin *) = extism_plugin_id;
  void *(*host_context)(ExtismCurrentPlugin *) = extism_current_plugin_host_context;
  uint8_t *(*memory)(ExtismCurrentPlugin *) = extism_current_plugin_memory;
  ExtismMemoryHandle (*memory_alloc)(ExtismCurrentPlugin *, ExtismSize) =
      extism_current_plugin_memory_alloc;
  ExtismSize (*memory_length)(ExtismCurrentPlugin *, ExtismMemoryHandle) =
      extism_current_plugin_memory_length;
  void (*memory_free)(ExtismCurrentPlugin *, ExtismMemoryHandle) = extism_current_plugin_memory_free;
  ExtismFunction *(*function_new)(const char *, const ExtismValType *, ExtismSize,
                                  const ExtismValType *, ExtismSize, ExtismFunctionType, void *,
                                  void (*)(void *)) = extism_function_new;
  void (*function_free)(ExtismFunction *) = extism_function_free;
  void (*set_namespace)(ExtismFunction *, const char *) = extism_function_set_namespace;
  ExtismCompiledPlugin *(*compiled_new)(const uint8_t *, ExtismSize, const ExtismFunction **,
                                        ExtismSize, bool, char **) = extism_compiled_plugin_new;
  ExtismCompiledPlugin *(*compiled_new_fuel)(const uint8_t *, ExtismSize, const ExtismFunction **,
                                             ExtismSize, bool, uint64_t, char **) =
      extism_compiled_plugin_new_with_fuel_limit;
  void (*compiled_free)(ExtismCompiledPlugin *) = extism_compiled_plugin_free;
  ExtismPlugin *(*plugin_new)(const uint8_t *, ExtismSize, const ExtismFunction **, ExtismSize,
                              bool, char **) = extism_plugin_new;
  ExtismPlugin *(*from_compiled)(const ExtismCompiledPlugin *, char **) =
      extism_plugin_new_from_compiled;
  ExtismPlugin *(*plugin_new_fuel)(const uint8_t *, ExtismSize, const ExtismFunction **,
                                   ExtismSize, bool, uint64_t, char **) =
      extism_plugin_new_with_fuel_limit;
  void (*allow_headers)(ExtismPlugin *) = extism_plugin_allow_http_response_headers;
  void (*error_free)(char *) = extism_plugin_new_error_free;
  void (*plugin_free)(ExtismPlugin *) = extism_plugin_free;
  const ExtismCancelHandle *(*cancel_handle)(const ExtismPlugin *) = extism_plugin_cancel_handle;
  bool (*cancel)(const ExtismCancelHandle *) = extism_plugin_cancel;
  bool (*config)(ExtismPlugin *, const uint8_t *, ExtismSize) = extism_plugin_config;
  bool (*exists)(ExtismPlugin *, const char *) = extism_plugin_function_exists;
  int32_t (*call)(ExtismPlugin *, const char *, const uint8_t *, ExtismSize) = extism_plugin_call;
  int32_t (*call_ctx)(ExtismPlugin *, const char *, const uint8_t *, ExtismSize, void *) =
      extism_plugin_call_with_host_context;
  const char *(*error)(ExtismPlugin *) = extism_error;
  const char *(*plugin_error)(ExtismPlugin *) = extism_plugin_error;
  ExtismSize (*output_length)(ExtismPlugin *) = extism_plugin_output_length;
  const uint8_t *(*output_data)(ExtismPlugin *) = extism_plugin_output_data;
  bool (*log_file)(const char *, const char *) = extism_log_file;
  bool (*log_custom)(const char *) = extism_log_custom;
  void (*log_drain)(ExtismLogDrainFunctionType) = extism_log_drain;
  bool (*reset)(ExtismPlugin *) = extism_plugin_reset;
  const char *(*version)(void) = extism_version;

  int missing = !plugin_id || !host_context || !memory || !memory_alloc || !memory_length ||
                !memory_free || !function_new || !function_free || !set_namespace ||
                !compiled_new || !compiled_new_fuel || !compiled_free || !plugin_new ||
                !from_compiled || !plugin_new_fuel || !allow_headers || !error_free ||
                !plugin_free || !cancel_handle || !cancel || !config || !exists || !call ||
                !call_ctx || !error || !plugin_error || !output_length || !output_data ||
                !log_file || !log_custom || !log_drain || !reset || !version;
  if (missing) {
    fprintf(stderr, "a function is null\n");
    exit(1);
  }
}

// A host function declared with Extism's macro and defined as its docs show.
EXTISM_FUNCTION(hello_world);
// Declared only: Go hosts implement these through cgo.
EXTISM_GO_FUNCTION(go_host_function);

void hello_world(ExtismCurrentPlugin *plugin, const ExtismVal *inputs, ExtismSize n_inputs,
                 ExtismVal *outputs, ExtismSize n_outputs, void *data) {
  (void)n_inputs;
  (void)n_outputs;
  const char *greeting = data;
  ExtismSize len = extism_current_plugin_memory_length(plugin, inputs[0].v.i64);
  size_t glen = strlen(greeting);
  ExtismMemoryHandle out = extism_current_plugin_memory_alloc(plugin, glen + len);
  uint8_t *mem = extism_current_plugin_memory(plugin);
  memcpy(mem + out, greeting, glen);
  memcpy(mem + out + glen, mem + inputs[0].v.i64, len);
  outputs[0].t = EXTISM_PTR;
  outputs[0].v.i64 = (int64_t)out;
}

static const char *PLUGIN =
    "(module"
    " (import \"extism:host/user\" \"hello_world\" (func $hello (param i64) (result i64)))"
    " (import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))"
    " (import \"extism:host/env\" \"length\" (func $length (param i64) (result i64)))"
    " (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"
    " (memory 1)"
    " (func (export \"greet\") (result i32) (local $h i64)"
    "  (local.set $h (call $hello (call $input_offset)))"
    "  (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))";

int main(void) {
  check_signatures();
  I32 mine = {.bits = PTR};
  (void)mine;
  (void)size_type;
  (void)handle_type;
  (void)union_type;
  (void)drain_type;

  ExtismValType types[] = {EXTISM_PTR};
  ExtismFunction *f =
      extism_function_new("hello_world", types, 1, types, 1, hello_world, "Hello, ", NULL);
  const ExtismFunction *functions[] = {f};
  char *errmsg = NULL;
  ExtismPlugin *plugin =
      extism_plugin_new((const uint8_t *)PLUGIN, strlen(PLUGIN), functions, 1, true, &errmsg);
  if (plugin == NULL) {
    fprintf(stderr, "ERROR: %s\n", errmsg);
    extism_plugin_new_error_free(errmsg);
    return 1;
  }
  const char *input = "world";
  if (extism_plugin_call(plugin, "greet", (const uint8_t *)input, strlen(input)) !=
      EXTISM_SUCCESS) {
    fprintf(stderr, "ERROR: %s\n", extism_plugin_error(plugin));
    return 1;
  }
  ExtismSize out_len = extism_plugin_output_length(plugin);
  const uint8_t *output = extism_plugin_output_data(plugin);
  if (out_len != strlen("Hello, world") || memcmp(output, "Hello, world", out_len) != 0) {
    fprintf(stderr, "ERROR: unexpected output %.*s\n", (int)out_len, (const char *)output);
    return 1;
  }
  extism_plugin_free(plugin);
  extism_function_free(f);
  puts("ok");
  return 0;
}
