// A C host using libplinth: loads a plug-in (wasm, WAT or manifest), calls one function with
// the input given, and prints the output.
//   usage: c-host PLUGIN FUNCTION [INPUT]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plinth.h>

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)n);
  *len = fread(buf, 1, (size_t)n, f);
  fclose(f);
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PLUGIN FUNCTION [INPUT]\n", argv[0]);
    return 2;
  }
  size_t len = 0;
  unsigned char *wasm = read_file(argv[1], &len);
  if (!wasm) {
    fprintf(stderr, "Error: cannot read %s\n", argv[1]);
    return 1;
  }
  char *err = NULL;
  ExtismPlugin *plugin = extism_plugin_new(wasm, len, NULL, 0, true, &err);
  free(wasm);
  if (!plugin) {
    fprintf(stderr, "Error: %s\n", err);
    extism_plugin_new_error_free(err);
    return 1;
  }
  const char *input = argc > 3 ? argv[3] : "";
  int rc = extism_plugin_call(plugin, argv[2], (const uint8_t *)input, strlen(input));
  if (rc != 0) {
    fprintf(stderr, "Error: %s\n", extism_plugin_error(plugin));
    extism_plugin_free(plugin);
    return 1;
  }
  fwrite(extism_plugin_output_data(plugin), 1, extism_plugin_output_length(plugin), stdout);
  putchar('\n');
  extism_plugin_free(plugin);
  return 0;
}
