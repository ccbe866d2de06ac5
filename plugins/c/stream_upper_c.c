/* Streaming with the C PDK: `upper` copies its input to its output with ASCII letters
 * uppercased, one 64 KiB chunk at a time (other bytes, UTF-8 included, pass unchanged, so a
 * character cut by a chunk boundary stays whole). On hosts that do not stream (Extism) the
 * PDK's fallback gives the same output as one buffer. `upper_whole` does the same with the
 * whole input at once (plinth_input_read), which works whether the host streams or not. */
#define PLINTH_STREAM
#include "plinth-pdk.h"

static uint8_t chunk[65536];

PLINTH_EXPORT(upper) int32_t upper(void) {
    int32_t n;
    while ((n = plinth_input_stream_read(chunk, (int32_t)sizeof chunk)) > 0) {
        for (int32_t i = 0; i < n; i++) {
            if (chunk[i] >= 'a' && chunk[i] <= 'z') chunk[i] -= 'a' - 'A';
        }
        if (plinth_output_stream_write(chunk, n) < 0) {
            plinth_stream_finish();
            plinth_set_error("upper: the host closed the output stream");
            return 1;
        }
    }
    plinth_stream_finish();
    if (n < 0) {
        plinth_set_error("upper: the host's input stream failed");
        return 1;
    }
    return 0;
}

PLINTH_EXPORT(upper_whole) int32_t upper_whole(void) {
    size_t n;
    uint8_t *all = plinth_input_read(&n);
    if (!all) {
        plinth_stream_finish();
        plinth_set_error("upper_whole: out of memory for the input");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (all[i] >= 'a' && all[i] <= 'z') all[i] -= 'a' - 'A';
    }
    int32_t rc = plinth_output_stream_write(all, (int32_t)n);
    free(all);
    plinth_stream_finish();
    if (rc < 0) {
        plinth_set_error("upper_whole: the host closed the output stream");
        return 1;
    }
    return 0;
}
