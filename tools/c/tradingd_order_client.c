/* tradingd_order_client: a tradingd-exec client in C, using tradingd_orders.h (generated from
 * tradingd/segment/layout.py and tradingd/exec/protocol.py). Shows the order/report ring
 * protocol from C: register by creating the order ring, wait for exec's report ring, then
 * send orders and spin on the reports.
 *
 *   gcc -O2 -std=c11 -Wall -Wextra -I tools/c tools/c/tradingd_order_client.c -o order_client
 *   ./order_client tradingd alice 1000 AAPL     # segment, client name, round trips, symbol
 *
 * Each round trip: a buy limit of 1 at 0.01 (it rests: NEW), then its cancel (CANCELED);
 * both answers are waited for by spinning on the report ring. Output:
 *   connected order ring <gen> report ring <gen> first id <n>
 *   acks <n> ack_p50_ns <n> ack_p99_ns <n> cancel_p50_ns <n> cancel_p99_ns <n>
 *   last_report_seq <n> rejects <n>
 * Exit codes: 0 ok, 64 usage, 69 exec did not answer / an answer was missing, 73 another
 * live process owns the order ring, 1 other errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tradingd_orders.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAPACITY 1024u

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t start_ticks(void) { /* field 22 of /proc/self/stat */
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

typedef struct {
    tradingd_channel_header *h;
    char *ring;
    uint64_t cap;
    size_t size;
} channel;

static int create_orders(const char *path, const char *client, channel *c) {
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) { /* a leftover: reclaim it only if its owner is dead */
        int rfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        tradingd_channel_header old;
        if (rfd >= 0 && read(rfd, &old, sizeof old) == (ssize_t)sizeof old &&
            old.magic == TRADINGD_ORDERS_MAGIC && old.owner_pid &&
            kill((pid_t)old.owner_pid, 0) == 0 && old.state == TRADINGD_CHANNEL_STATE_LIVE) {
            fprintf(stderr, "order_client: %s is owned by live PID %" PRIu64 "\n", path,
                    old.owner_pid);
            close(rfd);
            return 73;
        }
        if (rfd >= 0) close(rfd);
        unlink(path);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        fprintf(stderr, "order_client: create %s: %s\n", path, strerror(errno));
        return 1;
    }
    c->cap = CAPACITY;
    c->size = sizeof(tradingd_channel_header) + CAPACITY * sizeof(tradingd_order);
    if (ftruncate(fd, (off_t)c->size) < 0) {
        fprintf(stderr, "order_client: ftruncate: %s\n", strerror(errno));
        return 1;
    }
    void *m = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "order_client: mmap: %s\n", strerror(errno));
        return 1;
    }
    memset(m, 0, c->size);
    c->h = m;
    c->ring = (char *)m + sizeof(tradingd_channel_header);
    tradingd_channel_header *h = c->h;
    h->state = TRADINGD_CHANNEL_STATE_INITIALISING;
    for (uint64_t i = 0; i < CAPACITY; i++) /* every slot marked: never reads as record i */
        ((tradingd_order *)c->ring)[i].seq_lo = ~(uint32_t)i;
    uint64_t gen = 0;
    while (gen == 0)
        if (getrandom(&gen, sizeof gen, 0) != sizeof gen) gen = mono_ns() ^ (uint64_t)getpid();
    h->layout_major = TRADINGD_CHANNEL_MAJOR;
    h->layout_minor = TRADINGD_CHANNEL_MINOR;
    h->layout_fingerprint = TRADINGD_CHANNEL_FINGERPRINT;
    h->header_size = sizeof(tradingd_channel_header);
    h->total_size = c->size;
    h->generation = gen;
    h->owner_pid = (uint64_t)getpid();
    h->owner_start_ns = (uint64_t)time(NULL) * 1000000000ull;
    h->heartbeat_ns = mono_ns();
    h->heartbeat_interval_ns = 100000000ull;
    h->owner_start_ticks = start_ticks();
    h->ring_offset = sizeof(tradingd_channel_header);
    h->ring_capacity = CAPACITY;
    h->record_size = sizeof(tradingd_order);
    strncpy(h->client, client, sizeof h->client - 1);
    STORE_REL(&h->magic, TRADINGD_ORDERS_MAGIC); /* after every other header field */
    fchmod(fd, 0640);
    close(fd);
    STORE_REL(&h->state, (uint64_t)TRADINGD_CHANNEL_STATE_LIVE); /* the ready word, last */
    return 0;
}

/* exec's report ring answering our order ring generation, or 0 while it is not there */
static int attach_reports(const char *path, uint64_t our_gen, channel *c) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(tradingd_channel_header)) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return 0;
    const tradingd_channel_header *h = m;
    if (LOAD_ACQ(&h->state) != TRADINGD_CHANNEL_STATE_LIVE ||
        h->magic != TRADINGD_REPORTS_MAGIC ||
        h->layout_fingerprint != TRADINGD_CHANNEL_FINGERPRINT ||
        h->peer_generation != our_gen || h->record_size != sizeof(tradingd_report) ||
        h->total_size > (uint64_t)st.st_size) {
        munmap(m, (size_t)st.st_size);
        return 0;
    }
    c->h = m;
    c->ring = (char *)m + h->ring_offset;
    c->cap = h->ring_capacity;
    c->size = (size_t)st.st_size;
    return 1;
}

static channel orders, reports;
static uint64_t report_pos, next_seq;

static int send(uint32_t msg, uint64_t id, uint32_t side, uint32_t type, uint32_t tif,
                int64_t qty, double px, const char *symbol) {
    tradingd_channel_header *h = orders.h;
    uint64_t s = h->ring_cursor;
    uint64_t deadline = mono_ns() + 5000000000ull;
    while (s - LOAD_ACQ(&reports.h->peer_consumed) >= orders.cap) /* credit */
        if (mono_ns() > deadline) return 69;
    tradingd_order *r = &((tradingd_order *)orders.ring)[s & (orders.cap - 1)];
    __atomic_store_n(&r->seq_lo, ~(uint32_t)s, __ATOMIC_RELAXED); /* the mark */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    r->msg_type = msg;
    r->client_seq = ++next_seq;
    r->client_order_id = id;
    r->side = side;
    r->ord_type = type;
    r->time_in_force = tif;
    r->quantity = qty;
    r->limit_price = px;
    uint64_t now = mono_ns();
    r->send_ns = now;
    memset(r->symbol, 0, sizeof r->symbol);
    strncpy(r->symbol, symbol, sizeof r->symbol - 1);
    STORE_REL(&r->seq_lo, (uint32_t)s); /* the stamp, after the body */
    STORE_REL(&h->ring_cursor, s + 1);
    STORE_REL(&h->heartbeat_ns, now);
    return 0;
}

static int next_report(tradingd_report *out, uint64_t timeout_ns) {
    uint64_t deadline = mono_ns() + timeout_ns;
    const tradingd_report *slot =
        &((const tradingd_report *)reports.ring)[report_pos & (reports.cap - 1)];
    for (;;) {
        if (LOAD_ACQ(&slot->seq_lo) == (uint32_t)report_pos) {
            memcpy(out, slot, sizeof *out);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (LOAD_ACQ(&slot->seq_lo) == (uint32_t)report_pos) break;
        }
        if (mono_ns() > deadline) return 0;
    }
    report_pos++;
    STORE_REL(&orders.h->peer_consumed, report_pos);
    STORE_REL(&orders.h->last_report_seq, out->report_seq);
    return 1;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s SEGMENT CLIENT ROUND_TRIPS [SYMBOL]\n", argv[0]);
        return 64;
    }
    const char *seg = argv[1], *client = argv[2], *symbol = argc > 4 ? argv[4] : "AAPL";
    long n = atol(argv[3]);
    if (n <= 0 || strlen(client) > 31) {
        fprintf(stderr, "order_client: bad ROUND_TRIPS or CLIENT\n");
        return 64;
    }
    char opath[512], rpath[512];
    snprintf(opath, sizeof opath, "/dev/shm/%s.orders.%s", seg, client);
    snprintf(rpath, sizeof rpath, "/dev/shm/%s.reports.%s", seg, client);
    int rc = create_orders(opath, client, &orders);
    if (rc) return rc;
    uint64_t deadline = mono_ns() + 10000000000ull;
    while (!attach_reports(rpath, orders.h->generation, &reports)) {
        if (mono_ns() > deadline) {
            fprintf(stderr, "order_client: no report ring from tradingd-exec at %s\n", rpath);
            unlink(opath);
            return 69;
        }
        usleep(1000);
    }
    STORE_REL(&orders.h->peer_consumed, 0);
    STORE_REL(&orders.h->peer_generation, reports.h->generation);
    next_seq = reports.h->last_client_seq;
    uint64_t id = reports.h->last_client_order_id + 1;
    printf("connected order ring %016" PRIx64 " report ring %016" PRIx64 " first id %" PRIu64
           "\n", orders.h->generation, reports.h->generation, id);
    uint64_t *ack = calloc((size_t)n, sizeof *ack), *can = calloc((size_t)n, sizeof *can);
    long acks = 0, rejects = 0;
    uint64_t last_seq = 0;
    tradingd_report r;
    rc = 0;
    for (long i = 0; i < n && rc == 0; i++, id++) {
        uint64_t t0 = mono_ns();
        if ((rc = send(TRADINGD_MSG_NEW_ORDER, id, TRADINGD_SIDE_BUY, TRADINGD_ORD_TYPE_LIMIT,
                       TRADINGD_TIF_GTC, 1, 0.01, symbol)))
            break;
        do {
            if (!next_report(&r, 5000000000ull)) { rc = 69; break; }
            last_seq = r.report_seq;
        } while (r.client_order_id != id);
        if (rc) break;
        ack[acks] = mono_ns() - t0;
        if (r.ord_status == TRADINGD_ORD_STATUS_REJECTED) { rejects++; acks++; continue; }
        uint64_t t1 = mono_ns();
        if ((rc = send(TRADINGD_MSG_CANCEL, id, 0, 0, 0, 0, 0.0, "")))
            break;
        do {
            if (!next_report(&r, 5000000000ull)) { rc = 69; break; }
            last_seq = r.report_seq;
        } while (r.client_order_id != id);
        can[acks] = mono_ns() - t1;
        acks++;
    }
    if (rc) fprintf(stderr, "order_client: no answer from tradingd-exec after %ld acks\n", acks);
    qsort(ack, (size_t)acks, sizeof *ack, cmp);
    qsort(can, (size_t)acks, sizeof *can, cmp);
    long p99 = acks ? (long)(acks * 99 / 100) : 0;
    printf("acks %ld ack_p50_ns %" PRIu64 " ack_p99_ns %" PRIu64 " cancel_p50_ns %" PRIu64
           " cancel_p99_ns %" PRIu64 "\n", acks, acks ? ack[acks / 2] : 0,
           acks ? ack[p99] : 0, acks ? can[acks / 2] : 0, acks ? can[p99] : 0);
    printf("last_report_seq %" PRIu64 " rejects %ld\n", last_seq, rejects);
    STORE_REL(&orders.h->state, (uint64_t)TRADINGD_CHANNEL_STATE_STOPPED);
    unlink(opath);
    free(ack);
    free(can);
    return rc;
}
