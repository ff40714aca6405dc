/*
 * Build-time tool (runs on the build machine, never in a VM): compiles the runtime's start-up
 * script to QuickJS bytecode, so each `node` process loads it instead of parsing it. The same
 * QuickJS-NG sources build this tool and the WebAssembly runner; bytecode does not depend on
 * the pointer width, and both targets are little-endian.
 *
 *   bytecode INPUT.js SCRIPT-NAME OUTPUT.bin
 */
#include <stdio.h>
#include <stdlib.h>

#include "quickjs.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        return NULL;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    if (!data || fread(data, 1, (size_t)size, file) != (size_t)size) {
        fclose(file);
        free(data);
        return NULL;
    }
    data[size] = 0;
    fclose(file);
    *len = (size_t)size;
    return data;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bytecode INPUT.js SCRIPT-NAME OUTPUT.bin\n");
        return 2;
    }
    size_t len;
    char *source = read_all(argv[1], &len);
    if (!source) {
        perror(argv[1]);
        return 1;
    }
    JSRuntime *rt = JS_NewRuntime();
    JSContext *ctx = JS_NewContext(rt);
    JSValue compiled = JS_Eval(ctx, source, len, argv[2],
                               JS_EVAL_TYPE_GLOBAL | JS_EVAL_FLAG_STRICT | JS_EVAL_FLAG_COMPILE_ONLY);
    if (JS_IsException(compiled)) {
        JSValue error = JS_GetException(ctx);
        const char *text = JS_ToCString(ctx, error);
        fprintf(stderr, "bytecode: %s does not compile: %s\n", argv[1], text ? text : "?");
        return 1;
    }
    size_t out_len;
    /* The functions' source text is not kept: it was three quarters of the bytecode (1.2 MB
     * against 0.28 MB), and every process loads it. The layer's own functions then print as a
     * builtin's do. Line numbers (debug information) stay, for stacks. */
    uint8_t *out = JS_WriteObject(ctx, &out_len, compiled, JS_WRITE_OBJ_BYTECODE | JS_WRITE_OBJ_STRIP_SOURCE);
    if (!out) {
        fprintf(stderr, "bytecode: cannot serialise %s\n", argv[1]);
        return 1;
    }
    FILE *file = fopen(argv[3], "wb");
    if (!file || fwrite(out, 1, out_len, file) != out_len || fclose(file) != 0) {
        perror(argv[3]);
        return 1;
    }
    return 0;
}
