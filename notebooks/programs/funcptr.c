/* funcptr: a function-pointer overwrite inside the sandbox (course chapter 4).
 *
 *   funcptr NAME     decode NAME ("%41" is 'A'), then answer through req.reply
 *
 * A request holds a 16-byte name followed by a pointer to the function that answers it.
 * decode_name() percent-decodes the name with no bound on its output, so a long name
 * overwrites the pointer. In WebAssembly a function pointer is an index into the
 * module's function table, and call_indirect checks only the type of the function it
 * finds there: any function of the same type can be reached, one of another type traps.
 * Rebuild funcptr.wasm with: python3 notebooks/programs/build.py
 */
#include <stdio.h>

typedef void (*handler_t)(const char *name);

struct request {
    char name[16];
    handler_t reply;   /* the neighbour: a table index, right after name */
};

static void greet(const char *name) { printf("Hello, %.16s!\n", name); }
static void grant_admin(const char *name) { printf("*** %.16s is now an ADMIN ***\n", name); }
static int next_number(int n) { return n + 1; }  /* another type: int (int) */

/* Taking a function's address puts it in the table. */
handler_t handlers[] = {greet, grant_admin};
int (*counters[])(int) = {next_number};

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The bug: nothing limits how many bytes are written to out. */
__attribute__((noinline)) static void decode_name(char *out, const char *in) {
    while (*in) {
        if (in[0] == '%' && hex(in[1]) >= 0 && hex(in[2]) >= 0) {
            *out++ = (char)(hex(in[1]) * 16 + hex(in[2]));
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);  /* print every line at once, even before a trap */
    struct request req;
    req.reply = handlers[0];
    printf("table: greet = %d, grant_admin = %d, next_number = %d\n",
           (int)(size_t)greet, (int)(size_t)grant_admin, (int)(size_t)next_number);
    printf("reply before: %d\n", (int)(size_t)req.reply);
    decode_name(req.name, argc > 1 ? argv[1] : "alice");
    printf("reply after:  %d\n", (int)(size_t)req.reply);
    req.reply(req.name);  /* call_indirect through the pointer, overwritten or not */
    return 0;
}
