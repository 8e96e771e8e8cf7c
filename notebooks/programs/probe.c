/* probe: a small WASI command that tries one host capability and reports.
 *
 *   probe read PATH          print the file's contents, exit 0; on failure exit 1
 *   probe write PATH TEXT    create PATH holding TEXT, exit 0; on failure exit 1
 *   probe list PATH          print the directory's entries
 *   probe env NAME           print the variable, exit 1 when it is not set
 *   probe sleep SECONDS      sleep, then print "awake"
 *   probe echo               copy stdin to stdout
 *   probe flood MEGABYTES    write that many MiB of 'x' to stdout
 *   probe time               print the realtime clock and 8 random bytes
 *
 * Failures print "denied: <strerror>" to stderr. A copy of tests/testdata/probe.c for the
 * course; rebuild probe.wasm with: python3 notebooks/programs/build.py
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what) {
    fprintf(stderr, "denied: %s: %s\n", what, strerror(errno));
    return 1;
}

static int do_read(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return fail(path);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}

static int do_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return fail(path);
    if (fputs(text, f) < 0 || fclose(f) != 0) return fail(path);
    printf("wrote %s\n", path);
    return 0;
}

static int do_list(const char *path) {
    DIR *d = opendir(path);
    if (!d) return fail(path);
    struct dirent *e;
    while ((e = readdir(d))) printf("%s\n", e->d_name);
    closedir(d);
    return 0;
}

static int do_flood(int megabytes) {
    static char block[65536];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < megabytes * 16; i++) fwrite(block, 1, sizeof block, stdout);
    return 0;
}

static int do_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned char r[8];
    getentropy(r, sizeof r);
    printf("%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
    for (int i = 0; i < 8; i++) printf(" %02x", r[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: probe OP [ARGS]\n"); return 2; }
    const char *op = argv[1];
    if (!strcmp(op, "read") && argc == 3) return do_read(argv[2]);
    if (!strcmp(op, "write") && argc == 4) return do_write(argv[2], argv[3]);
    if (!strcmp(op, "list") && argc == 3) return do_list(argv[2]);
    if (!strcmp(op, "env") && argc == 3) {
        const char *v = getenv(argv[2]);
        if (!v) { fprintf(stderr, "unset: %s\n", argv[2]); return 1; }
        printf("%s\n", v);
        return 0;
    }
    if (!strcmp(op, "sleep") && argc == 3) { sleep(atoi(argv[2])); printf("awake\n"); return 0; }
    if (!strcmp(op, "echo")) {
        int c;
        while ((c = getchar()) != EOF) putchar(c);
        return 0;
    }
    if (!strcmp(op, "flood") && argc == 3) return do_flood(atoi(argv[2]));
    if (!strcmp(op, "time")) return do_time();
    fprintf(stderr, "usage: probe OP [ARGS]\n");
    return 2;
}
