/* Ping-pong latency floor: two processes, two counters in a MAP_SHARED anonymous mapping.
 *
 *     gcc -O2 -o pingpong pingpong.c && ./pingpong N [MAIN_CPU ECHO_CPU]
 *
 * The hardware floor for bench/peers.py: the same ping-pong as the Python peers with no
 * interpreter in the way. The main process stores i into counter a, the echo process (a
 * fork) spins until it sees i and stores i into counter b, the main process spins until it
 * sees i. Each round trip is timed with clock_gettime(CLOCK_MONOTONIC); one-way = rtt / 2.
 * Prints "p50 <ns> p99 <ns>" (linear interpolation, as numpy.percentile) on stdout.
 *
 * With a fourth argument PERIOD_NS it measures one-way latency one record at a time
 * instead, as bench_consumer's paced rows do: the forked process is a writer that sleeps
 * until the next period (clock_nanosleep), stores its CLOCK_MONOTONIC time, then the
 * counter; the main process spins on the counter and takes now - that time. The floor for
 * a reader that waits for a writer which sleeps between records.
 *
 * The counters sit 128 bytes apart: separate cache lines, and not the two halves of one
 * 128-byte pair that the adjacent-line prefetcher fetches together. Stores are release and
 * loads acquire (plain MOVs on x86-64). CPUs < 0 (or omitted) mean no pinning. Each wait
 * gives up after 10 s (exit 2, message on stderr); the echo dies with its parent.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STALL_NS (10ull * 1000000000ull)
#define CHECK_EVERY 0xFFFFF /* spins between two looks at the clock while waiting */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pin(int cpu) {
    if (cpu < 0) return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* Spin until *word >= want; 0 on success, -1 after STALL_NS without it. */
static int wait_for(const volatile uint64_t *word, uint64_t want) {
    uint64_t spins = 0, deadline = 0;
    while (__atomic_load_n(word, __ATOMIC_ACQUIRE) < want) {
        if ((++spins & CHECK_EVERY) == 0) {
            uint64_t t = now_ns();
            if (deadline == 0) deadline = t + STALL_NS;
            else if (t > deadline) return -1;
        }
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default (linear) on sorted values. */
static double percentile(const double *sorted, long n, double q) {
    double pos = q / 100.0 * (double)(n - 1);
    long lo = (long)pos; /* pos >= 0: truncation is floor */
    if (lo >= n - 1) return sorted[n - 1];
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - (double)lo);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s N [MAIN_CPU ECHO_CPU [PERIOD_NS]]\n", argv[0]);
        return 1;
    }
    long n = strtol(argv[1], NULL, 10);
    int main_cpu = argc >= 4 ? atoi(argv[2]) : -1;
    int echo_cpu = argc >= 4 ? atoi(argv[3]) : -1;
    long period = argc == 5 ? strtol(argv[4], NULL, 10) : 0;
    if (n < 1) {
        fprintf(stderr, "pingpong: N must be >= 1\n");
        return 1;
    }
    double *one_way = malloc((size_t)n * sizeof *one_way);
    void *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (one_way == NULL || mem == MAP_FAILED) {
        perror("pingpong: allocation");
        return 1;
    }
    volatile uint64_t *a = (volatile uint64_t *)mem;                   /* ping: main -> echo */
    volatile uint64_t *b = (volatile uint64_t *)((char *)mem + 128);   /* pong: echo -> main */
    volatile uint64_t *sent = (volatile uint64_t *)((char *)mem + 256); /* paced: send time */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("pingpong: fork");
        return 1;
    }
    if (pid == 0) { /* echo */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        if (pin(echo_cpu) != 0) {
            perror("pingpong: pin echo");
            _exit(1);
        }
        if (period > 0) { /* paced writer */
            struct timespec next;
            clock_gettime(CLOCK_MONOTONIC, &next);
            for (uint64_t i = 1; i <= (uint64_t)n; i++) {
                next.tv_nsec += period;
                while (next.tv_nsec >= 1000000000L) {
                    next.tv_nsec -= 1000000000L;
                    next.tv_sec += 1;
                }
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
                *sent = now_ns();
                __atomic_store_n(a, i, __ATOMIC_RELEASE);
            }
            _exit(0);
        }
        for (uint64_t i = 1; i <= (uint64_t)n; i++) {
            if (wait_for(a, i) != 0) {
                fprintf(stderr, "pingpong: echo waited 10 s for ping %lu\n", (unsigned long)i);
                _exit(2);
            }
            __atomic_store_n(b, __atomic_load_n(a, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
        }
        _exit(0);
    }
    if (pin(main_cpu) != 0) {
        perror("pingpong: pin main");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    for (uint64_t i = 1; period > 0 && i <= (uint64_t)n; i++) { /* paced reader */
        if (wait_for(a, i) != 0) {
            fprintf(stderr, "pingpong: waited 10 s for record %lu\n", (unsigned long)i);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 2;
        }
        one_way[i - 1] = (double)(now_ns() - *sent);
    }
    for (uint64_t i = 1; period == 0 && i <= (uint64_t)n; i++) {
        uint64_t t = now_ns();
        __atomic_store_n(a, i, __ATOMIC_RELEASE);
        if (wait_for(b, i) != 0) {
            fprintf(stderr, "pingpong: waited 10 s for pong %lu\n", (unsigned long)i);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 2;
        }
        one_way[i - 1] = (double)(now_ns() - t) / 2.0;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pingpong: echo failed (status %d)\n", status);
        return 1;
    }
    qsort(one_way, (size_t)n, sizeof *one_way, cmp_double);
    printf("p50 %.1f p99 %.1f\n", percentile(one_way, n, 50), percentile(one_way, n, 99));
    free(one_way);
    munmap(mem, 4096);
    return 0;
}
