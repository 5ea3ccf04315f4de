/* tradingd_reader: attach to a tradingd segment read-only from C and print the latest
 * value of every symbol. Shows how a C or C++ consumer uses tradingd_segment.h (the
 * header generated from tradingd/segment/layout.py) and the seqlock protocol.
 *
 *   gcc -O2 -std=c11 -Wall -Wextra -I tools/c tools/c/tradingd_reader.c -o tradingd_reader -lrt
 *   ./tradingd_reader tradingd        # segment name, as in /dev/shm/tradingd
 *
 * Output: one header line, then per symbol
 *   <name> seq=<n> price=<%.17g> volume=<%.17g> event_ns=<n> valid=<n>
 * Exit codes: 0 ok, 66 no such segment, 75 not ready (initialising, or the producer is
 * replacing it), 76 not a tradingd v1 segment of this layout, corrupt, or a slot stuck mid-
 * update, 77 permission denied or owned by another account, 1 other errors.
 *
 * It follows docs/segment-layout.md, "Writing a reader", step by step: open without
 * following a symlink or blocking on a FIFO, fstat (a regular file, owned by the expected
 * account: TRADINGD_OWNER_UID, default this process's euid; root is trusted too), read and
 * validate the header with pread, map exactly total_size bytes only then.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
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
    default: return "unknown";
    }
}

static double load_f64(const double *p) {
    uint64_t bits = LOAD_RLX((const uint64_t *)p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t round_up(uint64_t n) {
    return (n + TRADINGD_CACHE_LINE - 1) / TRADINGD_CACHE_LINE * TRADINGD_CACHE_LINE;
}

static int fail(const char *path, int code, const char *why) {
    fprintf(stderr, "tradingd_reader: segment %s: %s\n", path, why);
    return code;
}

/* Steps 4-13 of "Writing a reader" on a header read with pread: 0 if usable, else the exit
 * code (and the reason in *why). Every product and sum is bounded before it is formed. */
static int check_header(const tradingd_header *h, uint64_t file_size, const char **why) {
    if (h->magic != TRADINGD_MAGIC) {
        *why = h->magic == 0 && h->state <= TRADINGD_STATE_INITIALISING
                   ? "still initialising" : "not a tradingd segment";
        return h->magic == 0 && h->state <= TRADINGD_STATE_INITIALISING ? 75 : 76;
    }
    if (h->layout_major != TRADINGD_LAYOUT_MAJOR ||
        h->layout_fingerprint != TRADINGD_LAYOUT_FINGERPRINT) {
        *why = "layout version or fingerprint differs";
        return 76;
    }
    if (h->producer_pid > TRADINGD_MAX_PRODUCER_PID) return *why = "producer_pid out of range", 76;
    if (h->state <= TRADINGD_STATE_INITIALISING) return *why = "still initialising", 75;
    uint64_t cap = h->ring_capacity, syms = h->symtab_capacity;
    if (h->header_size != sizeof(tradingd_header) ||
        h->symtab_entry_size != sizeof(tradingd_symbol) ||
        h->latest_slot_size != sizeof(tradingd_latest) ||
        h->ring_record_size != sizeof(tradingd_record))
        return *why = "element sizes differ", 76;
    if (syms < 1 || syms > TRADINGD_MAX_SYMTAB_CAPACITY || cap < 2 || (cap & (cap - 1)) ||
        cap > TRADINGD_MAX_RING_CAPACITY || h->ring_window < 1 || h->ring_window > cap / 2)
        return *why = "capacities out of range", 76;
    uint64_t sym_off = round_up(sizeof(tradingd_header));
    uint64_t latest_off = round_up(sym_off + syms * sizeof(tradingd_symbol));
    uint64_t ring_off = round_up(latest_off + syms * sizeof(tradingd_latest));
    uint64_t total = ring_off + cap * sizeof(tradingd_record);
    if (h->symtab_offset != sym_off || h->latest_offset != latest_off ||
        h->ring_offset != ring_off || h->total_size != total)
        return *why = "region table does not follow the placement rule", 76;
    if (file_size != total) return *why = "file size is not the header's total_size", 76;
    if (h->symbol_count > syms || h->ring_cursor > TRADINGD_MAX_RING_CURSOR)
        return *why = "symbol_count or ring_cursor out of range", 76;
    if (h->state > TRADINGD_STATE_STOPPED) return *why = "unknown state", 76;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEGMENT_NAME\n", argv[0]);
        return 64;
    }
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", argv[1]);
    /* what shm_open does, plus O_NONBLOCK: a FIFO at the name must not block us */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tradingd_reader: segment %s: %s\n", path, strerror(errno));
        return errno == ENOENT ? 66 : errno == ELOOP ? 76 : errno == EACCES ? 77 : 1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) return close(fd), fail(path, 1, strerror(errno));
    if (!S_ISREG(st.st_mode)) return close(fd), fail(path, 76, "not a regular file");
    const char *owner_env = getenv("TRADINGD_OWNER_UID");
    uid_t owner = owner_env ? (uid_t)strtoul(owner_env, NULL, 10) : geteuid();
    if (st.st_uid != owner && st.st_uid != 0)
        return close(fd), fail(path, 77, "owned by another account than the producer's");
    tradingd_header h;
    if (st.st_size == 0) return close(fd), fail(path, 75, "empty (being created)");
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        return close(fd), fail(path, 76, "smaller than the header");
    const char *why = "";
    int code = check_header(&h, (uint64_t)st.st_size, &why);
    if (code) return close(fd), fail(path, code, why);
    const char *base = mmap(NULL, (size_t)h.total_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return fail(path, 1, strerror(errno));
    const tradingd_header *m = (const tradingd_header *)base;
    if (LOAD_ACQ(&m->generation) != h.generation || m->total_size != h.total_size)
        return munmap((void *)base, (size_t)h.total_size), fail(path, 75, "replaced meanwhile");
    uint64_t state = LOAD_ACQ(&m->state);
    printf("segment %s generation %016" PRIx64 " state %s cursor %" PRIu64 "\n", path,
           h.generation, state_name(state), LOAD_ACQ(&m->ring_cursor));
    const tradingd_symbol *syms = (const tradingd_symbol *)(base + h.symtab_offset);
    const tradingd_latest *slots = (const tradingd_latest *)(base + h.latest_offset);
    uint64_t count = LOAD_ACQ(&m->symbol_count);
    if (count > h.symtab_capacity) count = h.symtab_capacity;
    for (uint64_t i = 0; i < count; i++) {
        char name[sizeof syms[i].name + 1];
        memcpy(name, syms[i].name, sizeof syms[i].name);
        name[sizeof syms[i].name] = '\0';
        const tradingd_latest *lt = &slots[i];
        /* seqlock read: retry until the same even lock brackets the copy; a lock that stays
         * odd (the writer died or froze mid-update) is given up on after ~1 s */
        for (unsigned long tries = 0;; tries++) {
            if (tries > 1000000ul) {
                if (tries == 1000001ul) {
                    struct timespec ts = {0, 1000000}; /* 1000 x 1 ms */
                    for (int k = 0; k < 1000 && (LOAD_ACQ(&lt->lock) & 1); k++)
                        nanosleep(&ts, NULL);
                }
                if (LOAD_ACQ(&lt->lock) & 1) {
                    munmap((void *)base, (size_t)h.total_size);
                    return fail(path, 76, "a latest slot stays locked (writer stuck)");
                }
            }
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
    munmap((void *)base, (size_t)h.total_size);
    return 0;
}
