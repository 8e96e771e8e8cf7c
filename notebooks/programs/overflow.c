/* overflow: memory-unsafe C inside the sandbox (course chapter 4).
 *
 *   overflow NAME [MOTTO]   store NAME (and MOTTO) in a user record, print the record's
 *                           bytes and the access line, then the notice /data/notice.txt
 *                           if a directory is granted at /data
 *
 * The record keeps the name in an 8-byte array, then an is_admin flag, then a pointer to
 * where the user's motto goes. store_name() decodes %XX escapes (as URLs do) while it
 * copies the name, with no idea how big the array is: a name longer than 7 characters runs
 * into the flag, a longer one into the pointer, and then the motto is written wherever the
 * pointer points. In linear memory that can be a "constant": the access format or the path
 * of the notice, which lie in the data segment, writable like every other byte. The program
 * is memory-unsafe, and WebAssembly does not stop it, because all of it lies inside the
 * guest's own linear memory. Rebuild overflow.wasm with: python3 notebooks/programs/build.py
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

struct user {
    char name[8];   /* 7 characters and the terminating NUL */
    int is_admin;   /* the neighbour: the 4 bytes right after name */
    char *motto;    /* where the motto is copied: a 4-byte address in wasm32 */
};

static char motto_buffer[32];
static const char ACCESS[] = "access: %s\n";     /* a constant, in the data segment */
static const char NOTICE[] = "/data/notice.txt"; /* the one file this program reads */

static int hex(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The bug: decodes and copies up to the terminating NUL, whatever the size of the array. */
__attribute__((noinline)) static void store_name(struct user *u, const char *name) {
    char *out = u->name;
    while (*name) {
        if (name[0] == '%' && hex(name[1]) >= 0 && hex(name[2]) >= 0) {
            *out++ = (char)(hex(name[1]) * 16 + hex(name[2]));
            name += 3;
        } else {
            *out++ = *name++;
        }
    }
    *out = '\0';
}

static void dump(const char *when, const struct user *u) {
    const unsigned char *p = (const unsigned char *)u;
    printf("%-6s bytes at %p:", when, (void *)u);
    for (size_t i = 0; i < sizeof *u; i++) printf(" %02x", p[i]);
    printf("\n");
}

static void show_notice(void) {
    FILE *f = fopen(NOTICE, "r");
    char line[128];
    if (!f) {
        printf("notice %s: %s\n", NOTICE, strerror(errno));
        return;
    }
    printf("notice %s:\n", NOTICE);
    while (fgets(line, sizeof line, f)) printf("  %s", line);
    fclose(f);
}

int main(int argc, char **argv) {
    struct user u = {"guest", 0, motto_buffer};
    const char *name = argc > 1 ? argv[1] : "alice";
    printf("name     at %p, %zu bytes\n", (void *)u.name, sizeof u.name);
    printf("is_admin at %p, %zu bytes\n", (void *)&u.is_admin, sizeof u.is_admin);
    printf("motto    at %p, %zu bytes, points to %p\n", (void *)&u.motto, sizeof u.motto,
           (void *)u.motto);
    printf("constants: ACCESS at %p, NOTICE at %p\n", (void *)ACCESS, (void *)NOTICE);
    dump("before", &u);
    store_name(&u, name);
    dump("after", &u);
    if (argc > 2) strcpy(u.motto, argv[2]);  /* writes wherever motto points */
    printf("is_admin = %d\n", u.is_admin);
    printf(ACCESS, u.is_admin ? "ADMIN" : "guest");
    show_notice();
    return 0;
}
