/* A regular-expression matcher (Kernighan and Pike's: literals, '.', '^', '$', '*',
   backtracking) counting the lines that match each of PATTERNS in a generated text. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LINES 25000

static const char *WORDS[] = {"wasm", "sandbox", "fuel", "epoch", "store", "trap",
                              "module", "linker", "memory", "table", "stack", "host"};
static const char *PATTERNS[] = {"fuel.*trap", "^st.*k$", "e.*o.*h", "a*b*c*d*x",
                                 "m.d.le", "s*t*o*r*e*z", "^host", "linker$"};
static char text[LINES][96];

static int match_here(const char *re, const char *s);

static int match_star(char c, const char *re, const char *s) {
    do {
        if (match_here(re, s)) return 1;
    } while (*s != '\0' && (*s++ == c || c == '.'));
    return 0;
}

static int match_here(const char *re, const char *s) {
    if (re[0] == '\0') return 1;
    if (re[1] == '*') return match_star(re[0], re + 2, s);
    if (re[0] == '$' && re[1] == '\0') return *s == '\0';
    if (*s != '\0' && (re[0] == '.' || re[0] == *s)) return match_here(re + 1, s + 1);
    return 0;
}

static int match(const char *re, const char *s) {
    if (re[0] == '^') return match_here(re + 1, s);
    do {
        if (match_here(re, s)) return 1;
    } while (*s++ != '\0');
    return 0;
}

int main(void) {
    uint32_t x = 2463534242u; /* xorshift32 */
    size_t nwords = sizeof WORDS / sizeof WORDS[0], npatterns = sizeof PATTERNS / sizeof *PATTERNS;
    for (int i = 0; i < LINES; i++) {
        char *line = text[i];
        for (int w = 0; w < 8; w++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            line += sprintf(line, w ? " %s" : "%s", WORDS[x % nwords]);
        }
    }
    long counts[sizeof PATTERNS / sizeof *PATTERNS] = {0};
    for (size_t p = 0; p < npatterns; p++)
        for (int i = 0; i < LINES; i++) counts[p] += match(PATTERNS[p], text[i]);
    for (size_t p = 0; p < npatterns; p++) printf("%-12s %ld\n", PATTERNS[p], counts[p]);
    return 0;
}
