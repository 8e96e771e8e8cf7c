/* overflow: a stack buffer overflow inside the sandbox (course chapter 4).
 *
 *   overflow NAME    store NAME in a user record, then print the record's bytes
 *
 * The record keeps the name in an 8-byte array followed by an is_admin flag, and
 * store_name() copies the name with strcpy, which has no idea how big the array is.
 * A name longer than 7 characters runs past the array into the flag: the program is
 * memory-unsafe, and WebAssembly does not stop it, because both fields lie inside the
 * guest's own linear memory. Rebuild overflow.wasm with: python3 notebooks/programs/build.py
 */
#include <stdio.h>
#include <string.h>

struct user {
    char name[8];   /* 7 characters and the terminating NUL */
    int is_admin;   /* the neighbour: the 4 bytes right after name */
};

/* The bug: strcpy copies up to the terminating NUL, whatever the size of the array. */
__attribute__((noinline)) static void store_name(struct user *u, const char *name) {
    strcpy(u->name, name);
}

static void dump(const char *when, const struct user *u) {
    const unsigned char *p = (const unsigned char *)u;
    printf("%-6s bytes at %p:", when, (void *)u);
    for (size_t i = 0; i < sizeof *u; i++) printf(" %02x", p[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    struct user u = {"guest", 0};
    const char *name = argc > 1 ? argv[1] : "alice";
    printf("name     at %p, %zu bytes\n", (void *)u.name, sizeof u.name);
    printf("is_admin at %p, %zu bytes\n", (void *)&u.is_admin, sizeof u.is_admin);
    dump("before", &u);
    store_name(&u, name);
    dump("after", &u);
    printf("is_admin = %d\n", u.is_admin);
    printf("access: %s\n", u.is_admin ? "ADMIN" : "guest");
    return 0;
}
