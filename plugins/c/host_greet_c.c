/* host_greet in C. Its export `call_greet` (named as in the Rust example) passes the input
 * to the host function `greet` (namespace extism:host/user, (i64 handle) -> i64 handle)
 * and outputs what the host returns. */
#include "plinth-pdk.h"

PLINTH_HOST_FN(plinth_handle, greet, plinth_handle name);

PLINTH_EXPORT(call_greet) int32_t call_greet(void) {
    size_t len;
    uint8_t *input = plinth_input_read(&len);
    if (!input) {
        plinth_set_error("out of memory reading the input");
        return 1;
    }
    plinth_handle name = plinth_alloc_bytes(input, len);
    free(input);
    plinth_handle reply = greet(name);
    /* The reply block is ours: output_set takes it over, so no copy is needed. */
    plinth_output_set(reply, reply ? plinth_length(reply) : 0);
    if (name) plinth_free(name);
    return 0;
}
