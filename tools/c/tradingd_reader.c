/* tradingd_reader: attach to a tradingd segment read-only from C and print the latest
 * value of every symbol. Shows how a C or C++ consumer uses tradingd_segment.h (the
 * header generated from tradingd/segment/layout.py) and the seqlock protocol.
 *
 *   gcc -O2 -std=c11 -Wall -Wextra -I tools/c tools/c/tradingd_reader.c -o tradingd_reader -lrt
 *   ./tradingd_reader tradingd        # segment name, as in /dev/shm/tradingd
 *
 * Output: one header line, then per symbol
 *   <name> seq=<n> price=<%.17g> volume=<%.17g> event_ns=<n> valid=<n>
 * Exit codes: 0 ok, 66 no such segment, 76 not a tradingd v1 segment / layout mismatch,
 * 75 not ready (initialising), 1 other errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tradingd_segment.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static const char *state_name(uint64_t s) {
    switch (s) {
    case TRADINGD_STATE_EMPTY: return "empty";
    case TRADINGD_STATE_INITIALISING: return "initialising";
    case TRADINGD_STATE_LIVE: return "live";
    case TRADINGD_STATE_FINISHED: return "finished";
    case TRADINGD_STATE_STOPPED: return "stopped";
    case TRADINGD_STATE_UPSTREAM_DOWN: return "upstream_down";
    default: return "unknown";
    }
}

static double load_f64(const double *p) {
    uint64_t bits = LOAD_RLX((const uint64_t *)p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEGMENT_NAME\n", argv[0]);
        return 64;
    }
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", argv[1]);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC); /* what shm_open does */
    if (fd < 0) {
        fprintf(stderr, "tradingd_reader: segment %s: %s\n", path, strerror(errno));
        return errno == ENOENT ? 66 : 1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(tradingd_header)) {
        fprintf(stderr, "tradingd_reader: segment %s: smaller than the header\n", path);
        return 76;
    }
    const char *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        fprintf(stderr, "tradingd_reader: mmap %s: %s\n", path, strerror(errno));
        return 1;
    }
    const tradingd_header *h = (const tradingd_header *)base;
    uint64_t state = LOAD_ACQ(&h->state);
    if (h->magic != TRADINGD_MAGIC) {
        fprintf(stderr, "tradingd_reader: segment %s: not a tradingd segment\n", path);
        return state <= TRADINGD_STATE_INITIALISING ? 75 : 76;
    }
    if (h->layout_major != TRADINGD_LAYOUT_MAJOR ||
        h->layout_fingerprint != TRADINGD_LAYOUT_FINGERPRINT) {
        fprintf(stderr, "tradingd_reader: segment %s: layout fingerprint 0x%016" PRIx64
                " != 0x%016llx expected\n", path, h->layout_fingerprint,
                (unsigned long long)TRADINGD_LAYOUT_FINGERPRINT);
        return 76;
    }
    if (state <= TRADINGD_STATE_INITIALISING) {
        fprintf(stderr, "tradingd_reader: segment %s: still initialising\n", path);
        return 75;
    }
    if (h->total_size > (uint64_t)st.st_size || h->symbol_count > h->symtab_capacity ||
        h->latest_offset + h->symtab_capacity * sizeof(tradingd_latest) > h->total_size ||
        h->symtab_offset + h->symtab_capacity * sizeof(tradingd_symbol) > h->total_size) {
        fprintf(stderr, "tradingd_reader: segment %s: header sizes exceed the file\n", path);
        return 76;
    }
    printf("segment %s generation %016" PRIx64 " state %s cursor %" PRIu64 "\n", path,
           h->generation, state_name(state), LOAD_ACQ(&h->ring_cursor));
    const tradingd_symbol *syms = (const tradingd_symbol *)(base + h->symtab_offset);
    const tradingd_latest *slots = (const tradingd_latest *)(base + h->latest_offset);
    for (uint64_t i = 0; i < h->symbol_count; i++) {
        char name[sizeof syms[i].name + 1];
        memcpy(name, syms[i].name, sizeof syms[i].name);
        name[sizeof syms[i].name] = '\0';
        const tradingd_latest *lt = &slots[i];
        for (;;) { /* seqlock read: retry until the same even lock brackets the copy */
            uint64_t a = LOAD_ACQ(&lt->lock);
            if (a == 0) {
                printf("%s never-written\n", name);
                break;
            }
            if (a & 1) continue;
            double price = load_f64(&lt->price), volume = load_f64(&lt->volume);
            int64_t ev = LOAD_RLX(&lt->event_ns);
            uint64_t valid = LOAD_RLX(&lt->valid);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (LOAD_RLX(&lt->lock) != a) continue;
            printf("%s seq=%" PRIu64 " price=%.17g volume=%.17g event_ns=%" PRId64
                   " valid=%" PRIu64 "\n", name, (a - 2) >> 1, price, volume, ev, valid);
            break;
        }
    }
    munmap((void *)base, (size_t)st.st_size);
    return 0;
}
