/* HTTP with streamed bodies, with the C PDK: `fetch` streams the answer to the request in
 * config key `request` (the ABI's JSON) to its output, after a line with the status;
 * `upload` sends its input stream as the request body first. On a Plinth host the body goes
 * out and the answer comes in a chunk at a time; on Extism the PDK's fallback sends the whole
 * request through http_request and gives the same output. */
#define PLINTH_STREAM
#include "plinth-pdk.h"

static uint8_t chunk[16384];

/* Writes the status line, then the answer's body, to the output stream. */
static int32_t pass_answer(int64_t h) {
    plinth_buf line = {0};
    plinth_buf_u64(&line, (uint64_t)plinth_http_stream_status(h));
    plinth_buf_add(&line, "\n", 1);
    int32_t ok = line.failed ? -1 : plinth_output_stream_write((const uint8_t *)line.data,
                                                               (int32_t)line.len);
    plinth_buf_free(&line);
    int32_t n;
    while (ok == 0 && (n = plinth_http_stream_read_into(h, chunk, (int32_t)sizeof chunk)) > 0) {
        ok = plinth_output_stream_write(chunk, n);
    }
    return ok;
}

/* Starts the request in config key `request`, or fails the call. */
static int64_t open_request(void) {
    char *req = plinth_config_read("request");
    if (!req) {
        plinth_set_error("config key `request` is not set: give the request's JSON");
        return 0;
    }
    int64_t h = plinth_http_stream_open(req);
    free(req);
    if (!h) plinth_set_error("cannot start the request");
    return h;
}

PLINTH_EXPORT(fetch) int32_t fetch(void) {
    int64_t h = open_request();
    int32_t ok = h ? pass_answer(h) : -1;
    if (h) plinth_http_stream_close(h);
    plinth_stream_finish();
    return ok < 0 ? 1 : 0;
}

PLINTH_EXPORT(upload) int32_t upload(void) {
    int64_t h = open_request();
    if (!h) {
        plinth_stream_finish();
        return 1;
    }
    int32_t n, ok = 0;
    while (ok == 0 && (n = plinth_input_stream_read(chunk, (int32_t)sizeof chunk)) > 0) {
        ok = plinth_http_stream_write(h, chunk, n);
    }
    if (ok == 0) ok = pass_answer(h);
    plinth_http_stream_close(h);
    plinth_stream_finish();
    return ok < 0 ? 1 : 0;
}
