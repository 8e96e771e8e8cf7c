/* Sorting ROUNDS arrays of N pseudo-random ints: libc qsort (a call through a function
   pointer per comparison) and a bottom-up merge sort, checked against each other. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 200000
#define ROUNDS 2

static int32_t a[N], b[N], tmp[N];

static int compare(const void *x, const void *y) {
    int32_t p = *(const int32_t *)x, q = *(const int32_t *)y;
    return (p > q) - (p < q);
}

static void merge_sort(int32_t *v, size_t n) {
    int32_t *src = v, *dst = tmp;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = src[i] <= src[j] ? src[i++] : src[j++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        int32_t *swap = src;
        src = dst, dst = swap;
    }
    if (src != v) memcpy(v, src, n * sizeof v[0]);
}

int main(void) {
    uint64_t x = 88172645463325252ull, checksum = 0; /* xorshift64 */
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < N; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            a[i] = b[i] = (int32_t)(x % 1000000) - 500000;
        }
        qsort(a, N, sizeof a[0], compare);
        merge_sort(b, N);
        for (size_t i = 0; i < N; i++) {
            if (a[i] != b[i] || (i && a[i - 1] > a[i])) {
                printf("sort mismatch at %zu\n", i);
                return 1;
            }
            checksum = checksum * 31 + (uint32_t)a[i];
        }
    }
    printf("sorted %d x %d ints, checksum %016llx\n", ROUNDS, N, (unsigned long long)checksum);
    return 0;
}
