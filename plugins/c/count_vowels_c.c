/* count_vowels in C: the same contract as the Rust PDK example.
 * Input: text. Output: {"count":N,"total":T,"vowels":"..."} where N counts the characters of
 * the input found in config `vowels` (default "aeiouAEIOU") and T is the running total over
 * calls, kept in var `total` as an 8-byte little-endian integer. */
#include "plinth-pdk.h"

/* Next code point of UTF-8 text at *s, advancing *s. Invalid bytes read as themselves, so
 * any input is counted and nothing is skipped. */
static uint32_t next_char(const unsigned char **s) {
    const unsigned char *p = *s;
    uint32_t c = p[0];
    int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    for (int i = 1; i <= extra; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            extra = 0;
            break;
        }
    }
    if (extra) {
        c &= 0x3f >> extra;
        for (int i = 1; i <= extra; i++) c = (c << 6) | (p[i] & 0x3f);
    }
    *s = p + 1 + extra;
    return c;
}

static int is_vowel(uint32_t c, const char *vowels) {
    const unsigned char *v = (const unsigned char *)vowels;
    while (*v)
        if (next_char(&v) == c) return 1;
    return 0;
}

PLINTH_EXPORT(count_vowels) int32_t count_vowels(void) {
    size_t len;
    unsigned char *input = plinth_input_read(&len);
    char *configured = plinth_config_read("vowels");
    const char *vowels = configured ? configured : "aeiouAEIOU";
    if (!input) {
        plinth_set_error("out of memory reading the input");
        return 1;
    }

    uint64_t count = 0;
    const unsigned char *p = input, *end = input + len;
    while (p < end)
        if (is_vowel(next_char(&p), vowels)) count++;

    uint64_t total = 0;
    size_t n;
    uint8_t *stored = plinth_var_read("total", &n);
    if (stored && n == 8) memcpy(&total, stored, 8);
    free(stored);
    total += count;
    plinth_var_write("total", &total, 8);

    plinth_buf out = {0};
    plinth_buf_str(&out, "{\"count\":");
    plinth_buf_u64(&out, count);
    plinth_buf_str(&out, ",\"total\":");
    plinth_buf_u64(&out, total);
    plinth_buf_str(&out, ",\"vowels\":");
    plinth_buf_json_str(&out, vowels);
    plinth_buf_str(&out, "}");

    int rc = out.failed ? -1 : plinth_output_bytes(out.data, out.len);
    plinth_buf_free(&out);
    free(configured);
    free(input);
    if (rc != 0) {
        plinth_set_error("out of memory writing the output");
        return 1;
    }
    return 0;
}
