/* A JSON parser (recursive descent, RFC 8259 syntax) over a generated ~1 MB document,
   parsed PASSES times; prints value counts, the sum of the numbers and a hash of the
   decoded strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEMS 8000
#define PASSES 4

static char doc[1 << 21];

typedef struct {
    const char *p;
    long objects, arrays, strings, numbers, literals;
    double sum;
    uint32_t hash; /* FNV-1a over the decoded string bytes */
} Parser;

static int value(Parser *ps);

static void skip_space(Parser *ps) {
    while (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\t' || *ps->p == '\r') ps->p++;
}

static void hash_byte(Parser *ps, uint8_t c) { ps->hash = (ps->hash ^ c) * 16777619u; }

static int string(Parser *ps) {
    if (*ps->p++ != '"') return 0;
    for (;;) {
        char c = *ps->p++;
        if (c == '"') break;
        if ((uint8_t)c < 0x20) return 0;
        if (c == '\\') {
            const char *escapes = "\"\"\\\\//b\bf\fn\nr\rt\t";
            const char *hit = strchr(escapes, *ps->p);
            if (*ps->p == 'u') {
                char hex[5] = {0};
                memcpy(hex, ps->p + 1, 4);
                c = (char)strtol(hex, NULL, 16), ps->p += 5;
            } else if (hit && (hit - escapes) % 2 == 0) {
                c = hit[1], ps->p++;
            } else {
                return 0;
            }
        }
        hash_byte(ps, (uint8_t)c);
    }
    ps->strings++;
    return 1;
}

static int number(Parser *ps) {
    char *end;
    double v = strtod(ps->p, &end);
    if (end == ps->p) return 0;
    ps->p = end, ps->sum += v, ps->numbers++;
    return 1;
}

static int literal(Parser *ps, const char *word) {
    size_t n = strlen(word);
    if (strncmp(ps->p, word, n) != 0) return 0;
    ps->p += n, ps->literals++;
    return 1;
}

/* Members of an object (close '}') or elements of an array (close ']'). */
static int members(Parser *ps, char close, int keyed) {
    ps->p++;
    skip_space(ps);
    if (*ps->p == close) return ps->p++, 1;
    for (;;) {
        skip_space(ps);
        if (keyed) {
            if (!string(ps)) return 0;
            skip_space(ps);
            if (*ps->p++ != ':') return 0;
        }
        if (!value(ps)) return 0;
        skip_space(ps);
        char c = *ps->p++;
        if (c == close) return 1;
        if (c != ',') return 0;
    }
}

static int value(Parser *ps) {
    skip_space(ps);
    switch (*ps->p) {
    case '{': return ps->objects++, members(ps, '}', 1);
    case '[': return ps->arrays++, members(ps, ']', 0);
    case '"': return string(ps);
    case 't': return literal(ps, "true");
    case 'f': return literal(ps, "false");
    case 'n': return literal(ps, "null");
    default: return number(ps);
    }
}

static size_t generate(void) {
    size_t n = 0;
    n += sprintf(doc + n, "{\"items\": [\n");
    for (int i = 0; i < ITEMS; i++) {
        n += sprintf(doc + n,
                     "  {\"id\": %d, \"name\": \"item \\\"%d\\\"\\n\", \"price\": %d.%02d, "
                     "\"ratio\": %de-3, \"ok\": %s, \"note\": null, \"tags\": [\"t%d\", "
                     "\"\\u00e9t\\u00e9\", \"x\"], \"pos\": {\"x\": %d, \"y\": [%d, %d, -%d]}}%s\n",
                     i, i, i % 997, i % 100, i % 50, i % 3 ? "true" : "false", i % 7, i % 61,
                     i % 17, i % 19, i % 23, i + 1 < ITEMS ? "," : "");
    }
    n += sprintf(doc + n, "], \"count\": %d}\n", ITEMS);
    return n;
}

int main(void) {
    size_t size = generate();
    Parser ps = {0};
    for (int pass = 0; pass < PASSES; pass++) {
        Parser one = {doc};
        one.hash = 2166136261u;
        if (!value(&one) || (skip_space(&one), *one.p != '\0')) {
            printf("parse error at byte %ld\n", (long)(one.p - doc));
            return 1;
        }
        ps = one;
    }
    printf("%zu bytes x%d: %ld objects, %ld arrays, %ld strings, %ld numbers, %ld literals, "
           "sum %.3f, strings hash %08x\n",
           size, PASSES, ps.objects, ps.arrays, ps.strings, ps.numbers, ps.literals, ps.sum,
           ps.hash);
    return 0;
}
