/* A wasm stand-in for the host function `greet`, for trying host_greet_c from the command
 * line: link it as the module `extism:host/user` and host_greet_c's import resolves to it:
 *     plinth call host_greet_c.wasm call_greet -i World --link extism:host/user=greeter_c.wasm
 * It uses no libc, so it needs no start-up of its own when linked. */
#include "plinth-pdk.h"

/* Copies n bytes from Extism address src to dst. */
static void copy(uint64_t dst, uint64_t src, uint64_t n) {
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) plinth_store_u64(dst + i, plinth_load_u64(src + i));
    for (; i < n; i++) plinth_store_u8(dst + i, plinth_load_u8(src + i));
}

/* greet(name) -> "Hello, <name>!" in a new block. */
PLINTH_EXPORT(greet) plinth_handle greet(plinth_handle name) {
    static const char hello[] = "Hello, ";
    uint64_t n = name ? plinth_length(name) : 0;
    uint64_t h = plinth_alloc(sizeof hello - 1 + n + 1);
    if (h == 0) return 0;
    for (uint64_t i = 0; i < sizeof hello - 1; i++) plinth_store_u8(h + i, (uint8_t)hello[i]);
    copy(h + sizeof hello - 1, name, n);
    plinth_store_u8(h + sizeof hello - 1 + n, '!');
    return h;
}
