// A C host using libplinth: loads a plug-in (wasm, WAT or manifest), calls one function with
// the input given, and prints the output. With --stdin, streams standard input to the
// plug-in and its output to standard output as it comes (plinth_plugin_call_stream).
//   usage: c-host PLUGIN FUNCTION [INPUT | --stdin]
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <plinth.h>

// Plug-in text is untrusted: on a terminal, escape sequences in it would be obeyed. Writes
// `data` with control characters other than newline and tab (when `keep_layout`) shown as \xNN.
static void write_escaped(FILE *out, const uint8_t *data, size_t len, int keep_layout) {
  for (size_t i = 0; i < len; i++) {
    uint8_t c = data[i];
    if ((c < 0x20 && !(keep_layout && (c == '\n' || c == '\t'))) || c == 0x7f) {
      fprintf(out, "\\x%02x", c);
    } else {
      fputc(c, out);
    }
  }
}

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

// Streaming input: reads standard input as the plug-in asks for it.
static int64_t read_stdin(void *user_data, uint8_t *buf, uint64_t len) {
  (void)user_data;
  size_t n = fread(buf, 1, len, stdin);
  if (n == 0 && ferror(stdin)) return -1;
  return (int64_t)n;
}

// Streaming output: each chunk goes out at once (escaped on a terminal).
static int64_t write_stdout(void *user_data, const uint8_t *buf, uint64_t len) {
  int tty = *(const int *)user_data;
  if (tty) {
    write_escaped(stdout, buf, len, 1);
  } else if (fwrite(buf, 1, len, stdout) != len) {
    return -1;
  }
  return fflush(stdout) == 0 ? 0 : -1;
}

static void print_error(ExtismPlugin *plugin) {
  const char *msg = extism_plugin_error(plugin);
  if (!msg) msg = "(no message)";
  fputs("Error: ", stderr);
  write_escaped(stderr, (const uint8_t *)msg, strlen(msg), 0);
  fputc('\n', stderr);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PLUGIN FUNCTION [INPUT | --stdin]\n", argv[0]);
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
    fputs("Error: ", stderr);
    write_escaped(stderr, (const uint8_t *)err, strlen(err), 0);
    fputc('\n', stderr);
    extism_plugin_new_error_free(err);
    return 1;
  }
  if (argc > 3 && strcmp(argv[3], "--stdin") == 0) {
    int tty = isatty(STDOUT_FILENO);
    int rc = plinth_plugin_call_stream(plugin, argv[2], read_stdin, write_stdout, &tty, NULL);
    if (rc != EXTISM_SUCCESS) print_error(plugin);
    extism_plugin_free(plugin);
    return rc == EXTISM_SUCCESS ? 0 : 1;
  }
  const char *input = argc > 3 ? argv[3] : "";
  int rc = extism_plugin_call(plugin, argv[2], (const uint8_t *)input, strlen(input));
  if (rc != EXTISM_SUCCESS) {
    print_error(plugin);
    extism_plugin_free(plugin);
    return 1;
  }
  const uint8_t *out = extism_plugin_output_data(plugin);
  size_t out_len = extism_plugin_output_length(plugin);
  if (isatty(STDOUT_FILENO)) {
    write_escaped(stdout, out, out_len, 1);
  } else {
    fwrite(out, 1, out_len, stdout);
  }
  putchar('\n');
  extism_plugin_free(plugin);
  return 0;
}
