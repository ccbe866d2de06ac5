/*
 * libextism compatibility: libplinth provides Extism's C API. Every type, enumerator, macro
 * and function of Extism's extism.h is declared in plinth.h under the same name and with the
 * same signature (crates/capi/tests/c/extism_host.c checks this), so a C host written for
 * Extism builds against this header unchanged. Installed as include/extism.h by
 * scripts/install-libplinth.sh.
 */
#include "plinth.h"
