/* The C SPSC ring peer (facts.md: "C, shm_open+mmap SPSC ring, 64-byte records"): the
 * throughput a plain C single-producer single-consumer ring of 64-byte records reaches on
 * this machine, to set tradingd's end-to-end figures beside.
 *
 *   spsc_ring TOTAL CAPACITY BATCH [READER_CPU WRITER_CPU]   ->   "rate R records/s"
 *
 * A MAP_SHARED anonymous mapping (shared by fork) holds the ring and two cursors on their
 * own cache lines. The writer fills records (seq, fields derived from it) and publishes
 * its cursor every BATCH records, waiting while the ring is full (a lossless ring: it
 * reads the reader's cursor); the reader copies up to BATCH records at a time out of the
 * ring, checks every record's seq and a field, and publishes its cursor. Exit 1 on a bad
 * record. The rate is records / the reader's time from the first to the last record.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uint64_t seq;
    uint64_t event_ns;
    uint64_t publish_ns;
    double f[5];
} rec_t;
_Static_assert(sizeof(rec_t) == 64, "64-byte records");

typedef struct {
    _Alignas(64) uint64_t wpos;
    _Alignas(64) uint64_t rpos;
    _Alignas(64) uint64_t go;
} ctl_t;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spsc_ring TOTAL CAPACITY BATCH [READER_CPU WRITER_CPU]\n");
        return 2;
    }
    uint64_t total = strtoull(argv[1], NULL, 10), cap = strtoull(argv[2], NULL, 10);
    uint64_t batch = strtoull(argv[3], NULL, 10);
    int rcpu = argc > 5 ? atoi(argv[4]) : -1, wcpu = argc > 5 ? atoi(argv[5]) : -1;
    if (!cap || (cap & (cap - 1)) || !batch || batch > cap) {
        fprintf(stderr, "capacity must be a power of two >= batch >= 1\n");
        return 2;
    }
    size_t size = sizeof(ctl_t) + cap * sizeof(rec_t);
    char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return 2;
    memset(mem, 0, size);
    ctl_t *ctl = (ctl_t *)mem;
    rec_t *ring = (rec_t *)(mem + sizeof(ctl_t));
    uint64_t mask = cap - 1;
    pid_t pid = fork();
    if (pid == 0) { /* writer */
        pin(wcpu);
        while (!__atomic_load_n(&ctl->go, __ATOMIC_ACQUIRE)) {}
        uint64_t limit = 0, t = now_ns();
        for (uint64_t s = 0; s < total;) {
            uint64_t k = total - s < batch ? total - s : batch;
            while (s + k > limit) limit = __atomic_load_n(&ctl->rpos, __ATOMIC_ACQUIRE) + cap;
            for (uint64_t j = 0; j < k; j++) {
                rec_t *r = &ring[(s + j) & mask];
                r->seq = s + j;
                r->event_ns = 3 * (s + j) + 1;
                r->publish_ns = t;
                for (int i = 0; i < 5; i++) r->f[i] = (double)(s + j);
            }
            s += k;
            __atomic_store_n(&ctl->wpos, s, __ATOMIC_RELEASE);
        }
        _exit(0);
    }
    pin(rcpu);
    rec_t *local = malloc(batch * sizeof(rec_t));
    __atomic_store_n(&ctl->go, 1, __ATOMIC_RELEASE);
    uint64_t p = 0, t0 = 0, bad = 0;
    while (p < total) {
        uint64_t w = __atomic_load_n(&ctl->wpos, __ATOMIC_ACQUIRE);
        if (w == p) continue;
        if (!t0) t0 = now_ns();
        uint64_t k = w - p < batch ? w - p : batch;
        for (uint64_t j = 0; j < k; j++) local[j] = ring[(p + j) & mask];
        for (uint64_t j = 0; j < k; j++)
            bad += local[j].seq != p + j || local[j].event_ns != 3 * (p + j) + 1;
        p += k;
        __atomic_store_n(&ctl->rpos, p, __ATOMIC_RELEASE);
    }
    uint64_t t1 = now_ns();
    waitpid(pid, NULL, 0);
    if (bad) {
        fprintf(stderr, "%llu bad records\n", (unsigned long long)bad);
        return 1;
    }
    printf("rate %.0f\n", (double)total * 1e9 / (double)(t1 - t0));
    return 0;
}
