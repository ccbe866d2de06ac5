/* Exercises the rest of plinth-pdk.h (HTTP, config, vars, errors, logging) for the tests
 * that run C plug-ins on Plinth and on Extism. Each export is one check. */
#include "plinth-pdk.h"

/* The input as a C string; sets an error and returns NULL when memory runs out. */
static char *input_str(void) {
    char *s = (char *)plinth_input_read(NULL);
    if (!s) plinth_set_error("out of memory reading the input");
    return s;
}

static int32_t output_u64(uint64_t v) {
    plinth_buf b = {0};
    plinth_buf_u64(&b, v);
    int rc = b.failed ? -1 : plinth_output_bytes(b.data, b.len);
    plinth_buf_free(&b);
    return rc ? 1 : 0;
}

/* GET of the URL given as input; outputs the body. */
PLINTH_EXPORT(http_get) int32_t http_get(void) {
    char *url = input_str();
    if (!url) return 1;
    plinth_http_response res;
    int rc = plinth_http(NULL, url, NULL, NULL, 0, &res);
    free(url);
    if (rc) return 1;
    plinth_output_bytes(res.body, res.body_len);
    free(res.body);
    return 0;
}

/* GET of the URL given as input; outputs the status code. */
PLINTH_EXPORT(http_status) int32_t http_status(void) {
    char *url = input_str();
    if (!url) return 1;
    plinth_http_response res;
    int rc = plinth_http(NULL, url, NULL, NULL, 0, &res);
    free(url);
    if (rc) return 1;
    free(res.body);
    return output_u64((uint64_t)res.status);
}

/* POST to the URL given as input with a header and a body; outputs the response body. */
PLINTH_EXPORT(http_post) int32_t http_post(void) {
    static const char *const headers[] = {"X-Plinth", "c \"pdk\"", NULL};
    static const char body[] = "payload from C";
    char *url = input_str();
    if (!url) return 1;
    plinth_http_response res;
    int rc = plinth_http("POST", url, headers, body, sizeof body - 1, &res);
    free(url);
    if (rc) return 1;
    plinth_output_bytes(res.body, res.body_len);
    free(res.body);
    return 0;
}

/* Outputs the config value of the key given as input, or "missing". */
PLINTH_EXPORT(get_config) int32_t get_config(void) {
    char *key = input_str();
    if (!key) return 1;
    char *value = plinth_config_read(key);
    free(key);
    plinth_output_str(value ? value : "missing");
    free(value);
    return 0;
}

/* A counter in var `count` (u32 little-endian, as extism_vars keeps it). */
PLINTH_EXPORT(increment) int32_t increment(void) {
    uint32_t n = 0;
    size_t len;
    uint8_t *v = plinth_var_read("count", &len);
    if (v && len == 4) memcpy(&n, v, 4);
    free(v);
    n++;
    plinth_var_write("count", &n, 4);
    return output_u64(n);
}

PLINTH_EXPORT(reset) int32_t reset(void) {
    plinth_var_remove("count");
    return 0;
}

/* Fails with a message (and code 1). */
PLINTH_EXPORT(fail) int32_t fail(void) {
    char *in = input_str();
    if (!in) return 1;
    plinth_buf msg = {0};
    plinth_buf_str(&msg, "failed on purpose: ");
    plinth_buf_str(&msg, in);
    free(in);
    plinth_set_error(msg.failed ? "failed on purpose" : msg.data);
    plinth_buf_free(&msg);
    return 1;
}

/* Fails with a message and code 7. */
PLINTH_EXPORT(fail_with_code) int32_t fail_with_code(void) {
    plinth_set_error("failed with code 7");
    return 7;
}

/* Sets an error but returns 0: the error alone must fail the call. */
PLINTH_EXPORT(error_only) int32_t error_only(void) {
    plinth_set_error("error set, code 0");
    return 0;
}

/* Logs the input at every level; outputs the host's log level. */
PLINTH_EXPORT(log_all) int32_t log_all(void) {
    char *in = input_str();
    if (!in) return 1;
    for (int level = PLINTH_LOG_TRACE; level <= PLINTH_LOG_ERROR; level++) plinth_log(level, in);
    free(in);
    return output_u64((uint64_t)(int64_t)plinth_get_log_level());
}
