/* tradingd.segment._fastpath: the per-record hot paths of the segment protocol in C.
 *
 * Why: in plain Python one publish costs ~0.5-1 us here (a struct.pack_into, four 8-byte
 * stores and the call overhead), a latest-slot snapshot ~0.3-1 us. The same protocol in C
 * costs ~0.1 us per call, most of it CPython's call overhead. The pure-Python code in
 * writer.py / reader.py stays the reference implementation and the fallback when this
 * module is not built; the tests run the protocol through both.
 *
 * The layout comes from tools/c/tradingd_segment.h, which is generated from
 * tradingd/segment/layout.py: no offset is written by hand here.
 *
 * Memory ordering: stores the readers poll use release semantics, loads of them acquire,
 * seqlock payloads are read with relaxed loads between an acquire load and an acquire
 * fence. On x86-64 these are plain moves plus compiler barriers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <linux/futex.h>
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tradingd_segment.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static inline uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline double load_f64(const double *p) {
    uint64_t bits = LOAD_RLX((const uint64_t *)p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* ----------------------------------------------------------------------------------- */
/* Segment: a mapped segment (writable for the writer, read-only for readers).          */
/* ----------------------------------------------------------------------------------- */

/* What a reader may conclude from a ring slot's stamp (seq_lo), by layout minor version:
 * nothing (v1.0: stamp stored first); that the body is whole (v1.1: stored last); and that
 * it was not overwritten during a copy made between two equal reads of it (v1.2: its
 * complement is stored before the body). See the protocol in tradingd/segment/layout.py. */
enum { STAMP_NONE = 0, STAMP_LAST = 1, STAMP_MARKED = 2 };

typedef struct {
    PyObject_HEAD
    Py_buffer buf;
    int have_buf;
    int writable;
    int wake;
    int stamp_mode; /* what the writer's ring stamps promise: STAMP_NONE/LAST/MARKED */
    tradingd_header *hdr;
    tradingd_latest *latest;
    tradingd_record *ring;
    uint64_t mask;
    uint64_t symcap;
    uint64_t lag; /* ring_capacity - ring_window: records below cursor - lag may be torn */
    uint64_t latest_offset;
    PyObject *where; /* the segment's path, for error messages */
    /* The sleepers flag (tradingd/segment/waiters.py): a word in the small group-writable
     * companion segment that blocking readers set before they sleep. While one is attached
     * the writer wakes only when it is set: no syscall per publish when nobody sleeps. */
    Py_buffer wbuf;
    int have_wbuf;
    uint64_t *sleepers;
    /* The flow-control gate (waiters.py, replay.flow_control: slowest): the read positions
     * gated consumers publish in the companion. publish_gated never overwrites a record a
     * live gated consumer has not read; publish_stream ignores the gate. The minimum is
     * cached (positions only grow) and rescanned when short or when a consumer joined
     * (the epoch word changed). */
    Py_buffer gbuf;
    int have_gbuf;
    uint64_t *gate_ctl;
    char *gate_slots;
    uint64_t gate_nslots;
    uint64_t gate_min;
    uint64_t gate_epoch;
    int gate_min_valid;
    uint64_t gate_lead; /* most records the writer runs ahead of the slowest gated reader */
    unsigned long long gate_waits; /* times publish_gated slept on the gate (futex) */
    unsigned long long gate_timeouts; /* of those, sleeps that ended by their time limit */
} Segment;

/* The gate's words in the companion segment (tradingd/segment/waiters.py owns the layout
 * and passes the offsets; these are word indices inside the control line and a slot). */
enum { GC_MODE = 0, GC_EPOCH = 1, GC_WAITING = 2, GC_WAKE_AT = 3, GC_SEQ = 4 };
enum { GS_STATE = 0, GS_POSITION = 1, GS_PID = 2, GS_TICKS = 3 };
enum { GATE_FREE = 0, GATE_CLAIMED = 1, GATE_ACTIVE = 2, GATE_DROPPED = 3 };
#define GATE_SLOT_SIZE 64

/* The oldest record a reader may still take when the cursor is c: c - lag, or 0. Unsigned
 * and saturating: a hostile cursor near 2^63 or 2^64 cannot overflow it (it did, as
 * int64_t arithmetic, and a reader then never returned). */
static inline uint64_t oldest_intact(const Segment *seg, uint64_t c) {
    return c > seg->lag ? c - seg->lag : 0;
}

/* Raise tradingd.errors.<name>(where, message): the same typed errors as pure Python. */
static void raise_segment_error(Segment *seg, const char *name, PyObject *message) {
    PyObject *mod = PyImport_ImportModule("tradingd.errors");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, name) : NULL;
    Py_XDECREF(mod);
    if (!cls || !message) {
        Py_XDECREF(cls);
        Py_XDECREF(message);
        return;
    }
    PyObject *where = seg->where ? seg->where : Py_None;
    PyObject *exc = PyObject_CallFunctionObjArgs(cls, where, message, NULL);
    Py_DECREF(cls);
    Py_DECREF(message);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

static int Segment_init(Segment *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"buffer", "writable", "wake", "layout_minor", "where", NULL};
    PyObject *obj, *where = NULL;
    int writable = 0, wake = 0;
    unsigned int minor = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|ppIU", kwlist, &obj, &writable, &wake,
                                     &minor, &where))
        return -1;
    if (self->have_buf) {
        PyErr_SetString(PyExc_RuntimeError, "Segment already initialised");
        return -1;
    }
    if (PyObject_GetBuffer(obj, &self->buf, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return -1;
    self->have_buf = 1;
    if ((size_t)self->buf.len < sizeof(tradingd_header)) {
        PyErr_SetString(PyExc_ValueError, "buffer smaller than the segment header");
        return -1;
    }
    char *base = (char *)self->buf.buf;
    tradingd_header *h = (tradingd_header *)base;
    /* The caller (SegmentReader/SegmentWriter) validated the header; check the bounds we
     * rely on again so a bad caller cannot make us read outside the buffer. */
    uint64_t cap = h->ring_capacity, symcap = h->symtab_capacity, len = (uint64_t)self->buf.len;
    /* Each product and sum bounded before it is formed: no overflow on hostile values. */
    if (cap < 2 || (cap & (cap - 1)) || h->ring_window < 1 || h->ring_window >= cap ||
        cap > len / sizeof(tradingd_record) || h->ring_offset > len - cap * sizeof(tradingd_record) ||
        h->ring_offset % 8 || symcap > len / sizeof(tradingd_latest) ||
        h->latest_offset > len - symcap * sizeof(tradingd_latest) || h->latest_offset % 8) {
        PyErr_SetString(PyExc_ValueError, "segment header region table out of bounds");
        return -1;
    }
    self->hdr = h;
    self->latest = (tradingd_latest *)(base + h->latest_offset);
    self->ring = (tradingd_record *)(base + h->ring_offset);
    self->mask = cap - 1;
    self->symcap = symcap;
    self->lag = cap - h->ring_window;
    self->latest_offset = h->latest_offset;
    Py_XINCREF(where);
    Py_XSETREF(self->where, where);
    self->writable = writable;
    self->wake = wake;
    self->stamp_mode = minor >= TRADINGD_STAMP_MARKED_MINOR ? STAMP_MARKED
                       : minor >= TRADINGD_STAMP_LAST_MINOR ? STAMP_LAST
                                                            : STAMP_NONE;
    return 0;
}

static void Segment_release_buf(Segment *self) {
    if (self->have_gbuf) {
        PyBuffer_Release(&self->gbuf);
        self->have_gbuf = 0;
        self->gate_ctl = NULL;
        self->gate_slots = NULL;
        self->gate_nslots = 0;
    }
    if (self->have_wbuf) {
        PyBuffer_Release(&self->wbuf);
        self->have_wbuf = 0;
        self->sleepers = NULL;
    }
    if (self->have_buf) {
        PyBuffer_Release(&self->buf);
        self->have_buf = 0;
        self->hdr = NULL;
    }
}

static void Segment_dealloc(Segment *self) {
    Segment_release_buf(self);
    Py_CLEAR(self->where);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_open(Segment *self) {
    if (!self->have_buf) {
        PyErr_SetString(PyExc_ValueError, "segment is closed");
        return -1;
    }
    return 0;
}

/* check_open, and a writer's mapping (the publish calls). */
static int check_writable(Segment *self) {
    if (check_open(self) < 0) return -1;
    if (!self->writable) {
        PyErr_SetString(PyExc_PermissionError, "segment mapped read-only");
        return -1;
    }
    return 0;
}

static void wake_readers(Segment *self) {
    tradingd_header *h = self->hdr;
    STORE_REL(&h->wake_seq, LOAD_RLX(&h->wake_seq) + 1);
    syscall(SYS_futex, (uint32_t *)&h->wake_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* After a cursor store: wake blocked readers. With a sleepers flag attached, only when a
 * reader said it sleeps. The fence orders our cursor store before the flag load; the
 * reader stores the flag, fences, then loads the cursor (Dekker): either we see its flag
 * or it sees our cursor. The flag is cleared before the wake: a reader that sleeps again
 * sets it again. */
static inline void maybe_wake(Segment *self) {
    if (!self->wake) return;
    if (self->sleepers) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (!LOAD_RLX(self->sleepers)) return;
        __atomic_store_n(self->sleepers, 0, __ATOMIC_SEQ_CST);
    }
    wake_readers(self);
}

/* The record body: everything after the stamp (seq_lo). The writer marks the stamp (its
 * complement, which no record of the slot carries: the low bits differ), writes the body,
 * then stores the stamp. */
#define BODY_AT offsetof(tradingd_record, symbol_id)
_Static_assert(offsetof(tradingd_record, seq_lo) == 0 && BODY_AT == sizeof(uint32_t),
               "the stamp leads the record");

static inline void mark_slot(tradingd_record *r, uint64_t s) {
    STORE_RLX(&r->seq_lo, ~(uint32_t)s);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* the mark before any body store */
}

/* publish(symbol_id, event_ns, open, high, low, close, volume) -> seq */
static PyObject *Segment_publish(Segment *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "publish(symbol_id, event_ns, open, high, low, close, volume)");
        return NULL;
    }
    if (check_writable(self) < 0) return NULL;
    unsigned long long sym = PyLong_AsUnsignedLongLong(args[0]);
    long long ev = PyLong_AsLongLong(args[1]);
    double o = PyFloat_AsDouble(args[2]), hi = PyFloat_AsDouble(args[3]);
    double lo = PyFloat_AsDouble(args[4]), c = PyFloat_AsDouble(args[5]);
    double v = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) return NULL;
    if (sym >= self->symcap) {
        PyErr_Format(PyExc_IndexError, "symbol id %llu outside the symbol table", sym);
        return NULL;
    }
    tradingd_header *h = self->hdr;
    uint64_t s = LOAD_RLX(&h->ring_cursor); /* we are the only writer */
    uint64_t now = mono_ns();
    tradingd_record *r = &self->ring[s & self->mask];
    mark_slot(r, s);
    r->symbol_id = (uint32_t)sym;
    r->event_ns = ev;
    r->publish_ns = now;
    r->open = o;
    r->high = hi;
    r->low = lo;
    r->close = c;
    r->volume = v;
    STORE_REL(&r->seq_lo, (uint32_t)s); /* the stamp last: from here a reader may take it */
    tradingd_latest *lt = &self->latest[sym];
    STORE_RLX(&lt->lock, 2 * s + 1);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    lt->price = c;
    lt->volume = v;
    lt->event_ns = ev;
    lt->publish_ns = now;
    lt->valid = 1;
    STORE_REL(&lt->lock, 2 * s + 2);
    STORE_REL(&h->ring_cursor, s + 1);
    maybe_wake(self);
    return PyLong_FromUnsignedLongLong(s);
}

/* publish_records(buffer) -> first seq: a batch of RECORD-sized records (seq_lo and
 * publish_ns are filled in here), in chunks of at most ring_window records; each chunk's
 * records are written (mark, body, stamp), the latest slot of every symbol in it updated
 * from its last record, then the cursor stored. */
static PyObject *Segment_publish_records(Segment *self, PyObject *arg) {
    if (check_writable(self) < 0) return NULL;
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (in.len % (Py_ssize_t)sizeof(tradingd_record)) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "buffer is not a whole number of records");
        return NULL;
    }
    const tradingd_record *src = (const tradingd_record *)in.buf;
    uint64_t n = (uint64_t)in.len / sizeof(tradingd_record);
    for (uint64_t i = 0; i < n; i++) {
        if (src[i].symbol_id >= self->symcap) {
            PyBuffer_Release(&in);
            PyErr_Format(PyExc_IndexError, "record %llu: symbol id %u outside the symbol table",
                         (unsigned long long)i, src[i].symbol_id);
            return NULL;
        }
    }
    tradingd_header *h = self->hdr;
    uint64_t first = LOAD_RLX(&h->ring_cursor);
    uint64_t window = h->ring_window;
    uint8_t seen[4096 / 8];
    for (uint64_t pos = 0; pos < n; pos += window) {
        uint64_t k = n - pos < window ? n - pos : window;
        uint64_t s = LOAD_RLX(&h->ring_cursor), now = mono_ns();
        for (uint64_t j = 0; j < k; j++) { /* each: mark, body, stamp */
            tradingd_record *r = &self->ring[(s + j) & self->mask];
            mark_slot(r, s + j);
            memcpy((char *)r + BODY_AT, (const char *)&src[pos + j] + BODY_AT,
                   sizeof(tradingd_record) - BODY_AT);
            r->publish_ns = now;
            STORE_REL(&r->seq_lo, (uint32_t)(s + j));
        }
        /* latest slots: walk the chunk backwards, first sighting of a symbol is its last */
        uint64_t nsym = self->symcap < 4096 ? self->symcap : 4096;
        memset(seen, 0, (nsym + 7) / 8);
        for (uint64_t j = k; j-- > 0;) {
            const tradingd_record *r = &src[pos + j];
            uint32_t sym = r->symbol_id;
            if (sym >= nsym || (seen[sym >> 3] & (1u << (sym & 7)))) continue;
            seen[sym >> 3] |= (uint8_t)(1u << (sym & 7));
            tradingd_latest *lt = &self->latest[sym];
            uint64_t seq = s + j;
            STORE_RLX(&lt->lock, 2 * seq + 1);
            __atomic_thread_fence(__ATOMIC_RELEASE);
            lt->price = r->close;
            lt->volume = r->volume;
            lt->event_ns = r->event_ns;
            lt->publish_ns = now;
            lt->valid = 1;
            STORE_REL(&lt->lock, 2 * seq + 2);
        }
        STORE_REL(&h->ring_cursor, s + k);
        maybe_wake(self);
    }
    PyBuffer_Release(&in);
    return PyLong_FromUnsignedLongLong(first);
}

/* The ring writes of one chunk of prebuilt records: each slot marked (its complement, in
 * one 8-byte store with the symbol id), the body with event_ns shifted and publish_ns set,
 * then the stamp. 8-byte word stores: the record is built in registers, no memcpy. */
/* Records ahead whose ring line is prefetched for writing: the hardware prefetcher stops
 * at each 4 KiB page (64 records), and a ring beyond the caches then costs a read-for-
 * ownership miss per record that nothing overlaps (measured: 2^20 ring, 11.1 -> 9.1 ns a
 * record published). */
#define WRITE_PREFETCH 16

static inline void write_chunk(Segment *self, const tradingd_record *src, uint64_t k,
                               uint64_t s, int64_t shift, uint64_t now) {
    for (uint64_t j = 0; j < k; j++) {
        const tradingd_record *in = &src[j];
        tradingd_record *r = &self->ring[(s + j) & self->mask];
        __builtin_prefetch(&self->ring[(s + j + WRITE_PREFETCH) & self->mask], 1, 3);
        uint64_t *w = (uint64_t *)r;
        const uint64_t *iw = (const uint64_t *)in;
        uint64_t w0 = (uint64_t)(~(uint32_t)(s + j)) | ((uint64_t)in->symbol_id << 32);
        STORE_RLX(&w[0], w0);
        __atomic_thread_fence(__ATOMIC_RELEASE); /* the mark before any body store */
        STORE_RLX(&w[1], (uint64_t)(in->event_ns + shift));
        STORE_RLX(&w[2], now);
        for (int i = 3; i < 8; i++) STORE_RLX(&w[i], iw[i]);
        STORE_REL(&r->seq_lo, (uint32_t)(s + j)); /* the stamp last */
    }
}

/* The latest slot of every symbol in a chunk, from its last record (walked backwards). */
static inline void latest_from_chunk(Segment *self, const tradingd_record *src, uint64_t k,
                                     uint64_t s, int64_t shift, uint64_t now) {
    uint8_t seen[4096 / 8];
    uint64_t nsym = self->symcap < 4096 ? self->symcap : 4096;
    uint64_t left = nsym;
    memset(seen, 0, (nsym + 7) / 8);
    for (uint64_t j = k; j-- > 0 && left;) {
        const tradingd_record *r = &src[j];
        uint32_t sym = r->symbol_id;
        if (sym >= nsym || (seen[sym >> 3] & (1u << (sym & 7)))) continue;
        seen[sym >> 3] |= (uint8_t)(1u << (sym & 7));
        left--;
        tradingd_latest *lt = &self->latest[sym];
        uint64_t seq = s + j;
        STORE_RLX(&lt->lock, 2 * seq + 1);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        lt->price = r->close;
        lt->volume = r->volume;
        lt->event_ns = r->event_ns + shift;
        lt->publish_ns = now;
        lt->valid = 1;
        STORE_REL(&lt->lock, 2 * seq + 2);
    }
}

/* The arguments publish_stream and publish_gated share (args[0..3]: buffer, start, stop,
 * event_shift_ns) checked: an open, writable segment; records [start, stop) of a whole
 * RECORD buffer, every symbol id inside the table. On success *in holds the buffer (the
 * caller releases it) and *src, *n, *shift the records to publish; -1 with an exception
 * (and nothing held) otherwise. */
static int stream_records(Segment *self, PyObject *const *args, Py_buffer *in,
                          const tradingd_record **src, uint64_t *n, long long *shift) {
    if (check_writable(self) < 0) return -1;
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), stop = PyLong_AsSsize_t(args[2]);
    *shift = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred()) return -1;
    if (PyObject_GetBuffer(args[0], in, PyBUF_C_CONTIGUOUS) < 0) return -1;
    Py_ssize_t total = in->len / (Py_ssize_t)sizeof(tradingd_record);
    if (in->len % (Py_ssize_t)sizeof(tradingd_record)) {
        PyErr_SetString(PyExc_ValueError, "buffer is not a whole number of records");
        goto fail;
    }
    if (start < 0 || stop < start || stop > total) {
        PyErr_Format(PyExc_IndexError, "records [%zd, %zd) outside a stream of %zd", start,
                     stop, total);
        goto fail;
    }
    *src = (const tradingd_record *)in->buf + start;
    *n = (uint64_t)(stop - start);
    for (uint64_t i = 0; i < *n; i++) {
        if ((*src)[i].symbol_id >= self->symcap) {
            PyErr_Format(PyExc_IndexError, "record %llu: symbol id %u outside the symbol table",
                         (unsigned long long)(i + (uint64_t)start), (*src)[i].symbol_id);
            goto fail;
        }
    }
    return 0;
fail:
    PyBuffer_Release(in);
    return -1;
}

/* One chunk of a stream published at ring position s: the records, the latest slots, the
 * cursor, a wake if one is due. */
static inline void publish_chunk(Segment *self, const tradingd_record *src, uint64_t k,
                                 uint64_t s, int64_t shift) {
    uint64_t now = mono_ns();
    write_chunk(self, src, k, s, shift, now);
    latest_from_chunk(self, src, k, s, shift, now);
    STORE_REL(&self->hdr->ring_cursor, s + k);
    maybe_wake(self);
}

/* publish_stream(buffer, start, stop, event_shift_ns) -> first seq: records [start, stop)
 * of a prebuilt RECORD array (the replay's merged stream: seq_lo and publish_ns are
 * ignored), event_ns shifted by event_shift_ns (a replay loop's offset), in chunks of
 * ring_window records: per chunk the records (mark, body, stamp), the latest slots, the
 * cursor, and a wake only if a reader sleeps (sleepers flag) or wake is on without one.
 * The replay's fast mode: no copy or arithmetic in Python, one call per large batch. */
static PyObject *Segment_publish_stream(Segment *self, PyObject *const *args,
                                        Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "publish_stream(buffer, start, stop, event_shift_ns)");
        return NULL;
    }
    Py_buffer in;
    const tradingd_record *src;
    uint64_t n;
    long long shift;
    if (stream_records(self, args, &in, &src, &n, &shift) < 0) return NULL;
    tradingd_header *h = self->hdr;
    uint64_t first = LOAD_RLX(&h->ring_cursor), window = h->ring_window;
    for (uint64_t pos = 0; pos < n; pos += window) {
        uint64_t k = n - pos < window ? n - pos : window;
        publish_chunk(self, src + pos, k, LOAD_RLX(&h->ring_cursor), (int64_t)shift);
    }
    PyBuffer_Release(&in);
    return PyLong_FromUnsignedLongLong(first);
}


/* ----------------------------------------------------------------------------------- */
/* The flow-control gate, writer side (waiters.py documents the protocol).              */
/* ----------------------------------------------------------------------------------- */

/* Pauses spun before the writer sleeps on the gate (~15 us: a consumer a chunk short gets
 * there that soon; longer spins take the CPU a consumer on a 2-core host needs), then
 * futex sleeps of at most GATE_SLICE_NS each. */
#define GATE_SPINS 256u
#define GATE_SLICE_NS 5000000ull

static inline uint64_t *gate_slot(char *base, uint64_t i) {
    return (uint64_t *)(base + i * GATE_SLOT_SIZE);
}

/* The smallest position of the active slots (UINT64_MAX: none). */
static uint64_t gate_scan(const Segment *self) {
    uint64_t m = UINT64_MAX;
    for (uint64_t i = 0; i < self->gate_nslots; i++) {
        uint64_t *slot = gate_slot(self->gate_slots, i);
        if (LOAD_ACQ(&slot[GS_STATE]) != GATE_ACTIVE) continue;
        uint64_t p = LOAD_ACQ(&slot[GS_POSITION]);
        if (p < m) m = p;
    }
    return m;
}

/* True when every active gated consumer has read up to `need` (records below it may be
 * overwritten). The epoch is read before the slots: a consumer stores its slot, then
 * bumps the epoch, so a changed epoch means a rescan sees the new slot. */
static inline int gate_open(Segment *self, uint64_t need) {
    uint64_t e = LOAD_ACQ(&self->gate_ctl[GC_EPOCH]);
    if (self->gate_min_valid && e == self->gate_epoch && self->gate_min >= need) return 1;
    self->gate_epoch = e;
    self->gate_min = gate_scan(self);
    self->gate_min_valid = 1;
    return self->gate_min >= need;
}

/* Wait until the gate admits `need` or `deadline` passes (0: it did not open). Spins
 * briefly, then sleeps on the gate's futex word with the waiting flag set (Dekker, as the
 * sleepers flag): a consumer that stores its position, fences and sees the flag, and has
 * just crossed wake_at, clears it and wakes us. wake_at asks for room for half the ring
 * at once (at most the cursor, which every consumer can reach): one wake-up per half
 * ring, not one per chunk. The GIL is released while asleep. */
static int gate_wait(Segment *self, uint64_t need, uint64_t cursor, uint64_t deadline) {
    uint64_t *ctl = self->gate_ctl;
    for (unsigned n = 0; n < GATE_SPINS; n++) {
        cpu_relax();
        if ((n & 31) == 31) {
            self->gate_min_valid = 0;
            if (gate_open(self, need)) return 1;
        }
    }
    uint64_t room = self->gate_lead / 2;
    uint64_t wake_at = need + room < cursor ? need + room : cursor;
    if (wake_at < need) wake_at = need;
    for (;;) {
        uint32_t seq = (uint32_t)LOAD_ACQ(&ctl[GC_SEQ]);
        STORE_REL(&ctl[GC_WAKE_AT], wake_at);
        __atomic_store_n(&ctl[GC_WAITING], 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the flag before the positions */
        self->gate_min_valid = 0;
        if (gate_open(self, wake_at)) break;
        uint64_t now = mono_ns();
        if (now >= deadline) break;
        uint64_t left = deadline - now < GATE_SLICE_NS ? deadline - now : GATE_SLICE_NS;
        struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        self->gate_waits++;
        long rc;
        Py_BEGIN_ALLOW_THREADS
        rc = syscall(SYS_futex, (uint32_t *)&ctl[GC_SEQ], FUTEX_WAIT, seq, &ts, NULL, 0);
        Py_END_ALLOW_THREADS
        if (rc != 0 && errno == ETIMEDOUT) self->gate_timeouts++;
        /* back to the top: sleep on until wake_at is reached (the hysteresis: one wake-up
         * per half ring) or the deadline passes (then whatever `need` allows) */
    }
    __atomic_store_n(&ctl[GC_WAITING], 0, __ATOMIC_SEQ_CST);
    self->gate_min_valid = 0;
    return gate_open(self, need);
}

/* attach_gate(buffer | None, control_offset, slots_offset, nslots[, lead]): the
 * companion's gate words (writer: publish_gated honours them). lead: the most records
 * the writer may run ahead of the slowest gated reader (0 or more than the ring allows:
 * ring_capacity - ring_window). A lead that fits the caches keeps what a reader reads
 * in them (the writer wrote it moments ago), at the price of more wake-ups. */
static PyObject *Segment_attach_gate(Segment *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "attach_gate(buffer, control_offset, slots_offset, nslots, lead=0)");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    if (self->have_gbuf) {
        PyBuffer_Release(&self->gbuf);
        self->have_gbuf = 0;
        self->gate_ctl = NULL;
        self->gate_slots = NULL;
        self->gate_nslots = 0;
    }
    if (args[0] == Py_None) Py_RETURN_NONE;
    Py_ssize_t ctl = PyLong_AsSsize_t(args[1]), slots = PyLong_AsSsize_t(args[2]);
    Py_ssize_t nslots = PyLong_AsSsize_t(args[3]);
    unsigned long long lead = nargs == 5 ? PyLong_AsUnsignedLongLong(args[4]) : 0;
    if (PyErr_Occurred()) return NULL;
    uint64_t window = self->hdr->ring_window;
    if (lead == 0 || lead > self->lag) lead = self->lag;
    if (lead < 2 * window) lead = 2 * window < self->lag ? 2 * window : self->lag;
    self->gate_lead = lead;
    if (PyObject_GetBuffer(args[0], &self->gbuf, PyBUF_WRITABLE) < 0) return NULL;
    if (ctl < 0 || ctl % 64 || ctl + 64 > self->gbuf.len || slots < 0 || slots % 64 ||
        nslots < 0 || nslots > 4096 || slots + nslots * GATE_SLOT_SIZE > self->gbuf.len) {
        PyBuffer_Release(&self->gbuf);
        PyErr_SetString(PyExc_ValueError, "gate offsets outside the companion buffer");
        return NULL;
    }
    self->have_gbuf = 1;
    self->gate_ctl = (uint64_t *)((char *)self->gbuf.buf + ctl);
    self->gate_slots = (char *)self->gbuf.buf + slots;
    self->gate_nslots = (uint64_t)nslots;
    self->gate_min_valid = 0;
    Py_RETURN_NONE;
}

/* gate_cas(slot, expected_state, new_state) -> bool: change a slot's state atomically (the
 * producer dropping a stalled consumer, freeing a dead one's slot); resets the cache. */
static PyObject *Segment_gate_cas(Segment *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "gate_cas(slot, expected_state, new_state)");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    if (!self->gate_ctl) {
        PyErr_SetString(PyExc_ValueError, "no gate attached");
        return NULL;
    }
    unsigned long long i = PyLong_AsUnsignedLongLong(args[0]);
    unsigned long long expected = PyLong_AsUnsignedLongLong(args[1]);
    unsigned long long desired = PyLong_AsUnsignedLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (i >= self->gate_nslots) {
        PyErr_Format(PyExc_IndexError, "gate slot %llu outside %llu slots", i,
                     (unsigned long long)self->gate_nslots);
        return NULL;
    }
    uint64_t exp = expected;
    int ok = __atomic_compare_exchange_n(&gate_slot(self->gate_slots, i)[GS_STATE], &exp,
                                         (uint64_t)desired, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST);
    self->gate_min_valid = 0;
    return PyBool_FromLong(ok);
}

/* publish_gated(buffer, start, stop, event_shift_ns, max_wait_s) -> records published:
 * publish_stream's chunks, each only once every active gated consumer has read far
 * enough that the chunk overwrites nothing it has not read (position >= cursor + chunk -
 * (ring_capacity - ring_window): a reader's own check then never counts a loss). Returns
 * early, with fewer records, when the gate stays shut for max_wait_s (the caller
 * heartbeats, checks its consumers' liveness and calls again). */
static PyObject *Segment_publish_gated(Segment *self, PyObject *const *args,
                                       Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "publish_gated(buffer, start, stop, event_shift_ns, max_wait_s)");
        return NULL;
    }
    double max_wait = PyFloat_AsDouble(args[4]);
    if (PyErr_Occurred()) return NULL;
    if (!(max_wait > 0)) max_wait = 0;
    if (max_wait > 86400.0) max_wait = 86400.0;
    Py_buffer in;
    const tradingd_record *src;
    uint64_t n;
    long long shift;
    if (stream_records(self, args, &in, &src, &n, &shift) < 0) return NULL;
    tradingd_header *h = self->hdr;
    uint64_t window = h->ring_window, deadline = 0, pos = 0;
    while (pos < n) {
        uint64_t k = n - pos < window ? n - pos : window;
        uint64_t s = LOAD_RLX(&h->ring_cursor);
        if (self->gate_ctl && s + k > self->gate_lead) {
            uint64_t need = s + k - self->gate_lead;
            if (!gate_open(self, need)) {
                if (!deadline) deadline = mono_ns() + (uint64_t)(max_wait * 1e9);
                if (!gate_wait(self, need, s, deadline)) break;
            }
        }
        publish_chunk(self, src + pos, k, s, (int64_t)shift);
        pos += k;
    }
    PyBuffer_Release(&in);
    return PyLong_FromUnsignedLongLong(pos);
}

static PyObject *Segment_get_gate_waits(Segment *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(self->gate_waits);
}

static PyObject *Segment_get_gate_timeouts(Segment *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(self->gate_timeouts);
}

static PyObject *Segment_get_gate_lead(Segment *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(self->gate_ctl ? self->gate_lead : 0);
}

static PyGetSetDef Segment_getset[] = {
    {"gate_lead", (getter)Segment_get_gate_lead, NULL,
     "the most records publish_gated runs ahead of the slowest gated reader (0: no gate)",
     NULL},
    {"gate_waits", (getter)Segment_get_gate_waits, NULL,
     "times publish_gated slept on the gate", NULL},
    {"gate_timeouts", (getter)Segment_get_gate_timeouts, NULL,
     "of those, sleeps that ended by their time limit (not woken by a consumer)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* attach_sleepers(buffer, offset): the companion segment's sleepers flag (writer: wake only
 * when set; reader: set it before blocking). None detaches. */
static PyObject *Segment_attach_sleepers(Segment *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "attach_sleepers(buffer, offset)");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    if (self->have_wbuf) {
        PyBuffer_Release(&self->wbuf);
        self->have_wbuf = 0;
        self->sleepers = NULL;
    }
    if (args[0] == Py_None) Py_RETURN_NONE;
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &self->wbuf, PyBUF_WRITABLE) < 0) return NULL;
    self->have_wbuf = 1;
    if (off < 0 || off % 8 || off + 8 > self->wbuf.len) {
        PyBuffer_Release(&self->wbuf);
        self->have_wbuf = 0;
        PyErr_SetString(PyExc_ValueError, "sleepers offset outside the companion buffer");
        return NULL;
    }
    self->sleepers = (uint64_t *)((char *)self->wbuf.buf + off);
    Py_RETURN_NONE;
}

/* wait_blocking(position, expected_wake, timeout_s) -> bool: the blocking reader's sleep.
 * Sets the sleepers flag (when attached), fences, and sleeps on wake_seq only if the
 * cursor is still at or below `position` (False: it was, True: records are there). */
static PyObject *Segment_wait_blocking(Segment *self, PyObject *const *args,
                                       Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "wait_blocking(position, expected_wake, timeout_s)");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    unsigned long long pos = PyLong_AsUnsignedLongLong(args[0]);
    unsigned long long expected = PyLong_AsUnsignedLongLong(args[1]);
    double timeout = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (timeout < 0) timeout = 0;
    if (self->sleepers) {
        __atomic_store_n(self->sleepers, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the flag before the cursor load */
    }
    if (LOAD_ACQ(&self->hdr->ring_cursor) > pos) Py_RETURN_TRUE;
    struct timespec ts = {(time_t)timeout, (long)((timeout - (double)(time_t)timeout) * 1e9)};
    uint32_t *word = (uint32_t *)&self->hdr->wake_seq;
    Py_BEGIN_ALLOW_THREADS
    syscall(SYS_futex, word, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(LOAD_ACQ(&self->hdr->ring_cursor) > pos);
}

/* latest(symbol_id[, timeout_s=1.0]) -> (seq, price, volume, event_ns, publish_ns, valid)
 * | None. A lock still odd after timeout_s raises tradingd.errors.SegmentStuck. */
static PyObject *Segment_latest(Segment *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "latest(symbol_id, timeout_s=1.0)");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    unsigned long long sym = PyLong_AsUnsignedLongLong(args[0]);
    if (PyErr_Occurred()) return NULL;
    double timeout = 1.0;
    if (nargs == 2) {
        timeout = PyFloat_AsDouble(args[1]);
        if (timeout == -1.0 && PyErr_Occurred()) return NULL;
        if (!(timeout > 0)) timeout = 0;
        if (timeout > 86400.0) timeout = 86400.0;
    }
    uint64_t budget_ns = (uint64_t)(timeout * 1e9);
    if (sym >= self->symcap) {
        PyErr_Format(PyExc_IndexError, "symbol id %llu outside the symbol table", sym);
        return NULL;
    }
    tradingd_latest *lt = &self->latest[sym];
    uint64_t deadline = 0;
    for (unsigned tries = 1;; tries++) {
        if ((tries & 127) == 0) { /* contended: yield to a descheduled writer, 1 s budget */
            uint64_t now = mono_ns();
            if (!deadline) deadline = now + budget_ns;
            if (now >= deadline) break;
            Py_BEGIN_ALLOW_THREADS
            sched_yield();
            Py_END_ALLOW_THREADS
        }
        uint64_t a = LOAD_ACQ(&lt->lock);
        if (a == 0) Py_RETURN_NONE;
        if (a & 1) {
            cpu_relax();
            continue;
        }
        double price = load_f64(&lt->price), volume = load_f64(&lt->volume);
        int64_t ev = LOAD_RLX(&lt->event_ns);
        uint64_t pub = LOAD_RLX(&lt->publish_ns), valid = LOAD_RLX(&lt->valid);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (LOAD_RLX(&lt->lock) == a) {
            PyObject *t = PyTuple_New(6);
            if (!t) return NULL;
            PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLongLong((a - 2) >> 1));
            PyTuple_SET_ITEM(t, 1, PyFloat_FromDouble(price));
            PyTuple_SET_ITEM(t, 2, PyFloat_FromDouble(volume));
            PyTuple_SET_ITEM(t, 3, PyLong_FromLongLong(ev));
            PyTuple_SET_ITEM(t, 4, PyLong_FromUnsignedLongLong(pub));
            PyTuple_SET_ITEM(t, 5, PyLong_FromUnsignedLongLong(valid));
            return t;
        }
    }
    char secs[32];
    snprintf(secs, sizeof secs, "%g", timeout); /* as pure Python's f"{timeout_s:g}" */
    raise_segment_error(self, "SegmentStuck",
                        PyUnicode_FromFormat("latest slot %llu (offset %llu) not stable for %s "
                                             "s: the writer died mid-update?", sym,
                                             (unsigned long long)(self->latest_offset +
                                                                  sym * sizeof(tradingd_latest)),
                                             secs));
    return NULL;
}

/* futex_wait(expected_wake, timeout_s): sleep until wake_seq changes or timeout. */
static PyObject *Segment_futex_wait(Segment *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "futex_wait(expected, timeout_s)");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    unsigned long long expected = PyLong_AsUnsignedLongLong(args[0]);
    double timeout = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred()) return NULL;
    if (!(timeout > 0)) timeout = 0; /* negative or NaN */
    if (timeout > 86400.0) timeout = 86400.0; /* no overflow in the time_t conversion */
    struct timespec ts = {(time_t)timeout, (long)((timeout - (double)(time_t)timeout) * 1e9)};
    uint32_t *word = (uint32_t *)&self->hdr->wake_seq;
    Py_BEGIN_ALLOW_THREADS
    syscall(SYS_futex, word, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Segment_release(Segment *self, PyObject *Py_UNUSED(ignored)) {
    Segment_release_buf(self);
    Py_RETURN_NONE;
}

static PyMethodDef Segment_methods[] = {
    {"publish", (PyCFunction)(void (*)(void))Segment_publish, METH_FASTCALL,
     "publish(symbol_id, event_ns, open, high, low, close, volume) -> seq"},
    {"publish_records", (PyCFunction)Segment_publish_records, METH_O,
     "publish_records(buffer of records) -> first seq"},
    {"latest", (PyCFunction)(void (*)(void))Segment_latest, METH_FASTCALL,
     "latest(symbol_id, timeout_s=1.0) -> (seq, price, volume, event_ns, publish_ns, valid) "
     "or None; SegmentStuck if the lock stays odd"},
    {"futex_wait", (PyCFunction)(void (*)(void))Segment_futex_wait, METH_FASTCALL,
     "futex_wait(expected_wake, timeout_s): block until the producer wakes readers"},
    {"release", (PyCFunction)Segment_release, METH_NOARGS,
     "release the buffer (call before closing the mmap)"},
    {"publish_stream", (PyCFunction)(void (*)(void))Segment_publish_stream, METH_FASTCALL,
     "publish_stream(records, start, stop, event_shift_ns) -> first seq"},
    {"attach_sleepers", (PyCFunction)(void (*)(void))Segment_attach_sleepers, METH_FASTCALL,
     "attach_sleepers(companion buffer | None, offset): the blocking readers' sleepers flag"},
    {"wait_blocking", (PyCFunction)(void (*)(void))Segment_wait_blocking, METH_FASTCALL,
     "wait_blocking(position, expected_wake, timeout_s) -> True if records are there"},
    {"attach_gate", (PyCFunction)(void (*)(void))Segment_attach_gate, METH_FASTCALL,
     "attach_gate(companion buffer | None, control_offset, slots_offset, nslots)"},
    {"gate_cas", (PyCFunction)(void (*)(void))Segment_gate_cas, METH_FASTCALL,
     "gate_cas(slot, expected_state, new_state) -> True if the slot's state was changed"},
    {"publish_gated", (PyCFunction)(void (*)(void))Segment_publish_gated, METH_FASTCALL,
     "publish_gated(records, start, stop, event_shift_ns, max_wait_s) -> records published"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SegmentType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tradingd.segment._fastpath.Segment",
    .tp_basicsize = sizeof(Segment),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A mapped segment: Segment(buffer, writable=False, wake=False, layout_minor=0)\n"
              "(layout_minor: the segment's, for what its ring stamps promise readers)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Segment_init,
    .tp_dealloc = (destructor)Segment_dealloc,
    .tp_methods = Segment_methods,
    .tp_getset = Segment_getset,
};

/* ----------------------------------------------------------------------------------- */
/* Cursor: one reader's position in the ring (position, lost, rejected).              */
/* ----------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Segment *seg;
    unsigned long long position;
    unsigned long long lost;
    unsigned long long rejected;
    unsigned long long stamp_reads;
    unsigned long long trusted_reads;
    /* Record trusted_pos - 1 was taken intact and published at trusted_pub: the next one,
     * if published soon after, is the record its stamp says (STAMP_MARKED, layout.py). */
    uint64_t trusted_pos;
    uint64_t trusted_pub;
    /* A gated consumer's slot in the companion (waiters.py): the position is published
     * there after every read call, and the writer woken if it sleeps on the gate. */
    Py_buffer gbuf;
    int have_gbuf;
    uint64_t *gate_slot;
    uint64_t *gate_ctl;
    uint64_t gate_published;
} Cursor;

static void cursor_release_gate(Cursor *self) {
    if (self->have_gbuf) {
        PyBuffer_Release(&self->gbuf);
        self->have_gbuf = 0;
    }
    self->gate_slot = self->gate_ctl = NULL;
}

/* After a read: publish the position in our gate slot (while it is active: the producer
 * may have dropped us), fence, and wake the writer if it sleeps on the gate and we have
 * just crossed the position it waits for (edge-triggered: a consumer already past it
 * does not wake it again and again while a slower one holds it). */
static inline void gate_publish(Cursor *self) {
    uint64_t *slot = self->gate_slot;
    if (!slot) return;
    uint64_t p = self->position, before = self->gate_published;
    if (p == before || LOAD_RLX(&slot[GS_STATE]) != GATE_ACTIVE) return;
    STORE_REL(&slot[GS_POSITION], p);
    self->gate_published = p;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the position before the flag (Dekker) */
    uint64_t *ctl = self->gate_ctl;
    if (!LOAD_RLX(&ctl[GC_WAITING])) return;
    uint64_t at = LOAD_RLX(&ctl[GC_WAKE_AT]);
    if (p < at || before >= at) return;
    uint64_t one = 1;
    if (__atomic_compare_exchange_n(&ctl[GC_WAITING], &one, 0, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&ctl[GC_SEQ], 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, (uint32_t *)&ctl[GC_SEQ], FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

static int Cursor_init(Cursor *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"segment", "position", NULL};
    PyObject *seg;
    unsigned long long position = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!K", kwlist, &SegmentType, &seg, &position))
        return -1;
    Py_INCREF(seg);
    Py_XSETREF(self->seg, (Segment *)seg);
    self->position = position;
    return 0;
}

static void Cursor_dealloc(Cursor *self) {
    cursor_release_gate(self);
    Py_XDECREF(self->seg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* One step of the ring protocol. Returns 1 and fills out and seq with the next intact
 * record, 0 if there is none yet. Updates position, lost and rejected. */
static int cursor_take(Cursor *self, tradingd_record *out, uint64_t *seq) {
    Segment *seg = self->seg;
    tradingd_header *h = seg->hdr;
    uint64_t p = self->position;
    for (;;) {
        uint64_t c1 = LOAD_ACQ(&h->ring_cursor);
        if (p >= c1) {
            self->position = p;
            return 0;
        }
        uint64_t oldest = oldest_intact(seg, c1);
        if (p < oldest) {
            self->lost += oldest - p;
            p = oldest;
        }
        const uint64_t *sw = (const uint64_t *)&seg->ring[p & seg->mask];
        uint64_t w[8];
        for (int i = 0; i < 8; i++) w[i] = LOAD_RLX(&sw[i]);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint64_t c2 = LOAD_RLX(&h->ring_cursor);
        p += 1;
        if (p - 1 < oldest_intact(seg, c2)) { /* overwritten while we copied */
            self->lost += 1;
            continue;
        }
        memcpy(out, w, sizeof *out);
        if (out->seq_lo != (uint32_t)(p - 1)) {
            self->rejected += 1;
            continue;
        }
        self->position = p;
        self->trusted_pos = p;
        self->trusted_pub = out->publish_ns;
        *seq = p - 1;
        return 1;
    }
}

/* ----------------------------------------------------------------------------------- */
/* Record: one ring record as read, a 64-byte copy plus the full sequence number.       */
/*                                                                                     */
/* Why not a tuple: a 9-tuple costs nine object allocations to build and nine frees to  */
/* drop (~200 ns here, the largest part of a spin read). A Record is one allocation;    */
/* fields become Python objects only when asked for. It reads like a tuple in           */
/* tradingd.segment.model.Record order (index, slice, unpack, compare equal) and by name.       */
/* ----------------------------------------------------------------------------------- */

#define RECORD_NFIELDS 9

typedef struct {
    PyObject_HEAD
    uint64_t seq;
    tradingd_record rec;
} Record;

static PyTypeObject RecordType;

static PyObject *Record_field(const Record *self, Py_ssize_t i) {
    const tradingd_record *r = &self->rec;
    switch (i) {
    case 0: return PyLong_FromUnsignedLongLong(self->seq);
    case 1: return PyLong_FromUnsignedLong(r->symbol_id);
    case 2: return PyLong_FromLongLong(r->event_ns);
    case 3: return PyLong_FromUnsignedLongLong(r->publish_ns);
    case 4: return PyFloat_FromDouble(r->open);
    case 5: return PyFloat_FromDouble(r->high);
    case 6: return PyFloat_FromDouble(r->low);
    case 7: return PyFloat_FromDouble(r->close);
    case 8: return PyFloat_FromDouble(r->volume);
    }
    PyErr_SetString(PyExc_IndexError, "Record index out of range");
    return NULL;
}

static PyObject *Record_as_tuple(const Record *self) {
    PyObject *t = PyTuple_New(RECORD_NFIELDS);
    if (!t) return NULL;
    for (Py_ssize_t i = 0; i < RECORD_NFIELDS; i++) {
        PyObject *v = Record_field(self, i);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *record_new(const tradingd_record *rec, uint64_t seq) {
    Record *self = PyObject_New(Record, &RecordType);
    if (!self) return NULL;
    self->seq = seq;
    memcpy(&self->rec, rec, sizeof *rec);
    return (PyObject *)self;
}

static void Record_dealloc(Record *self) { PyObject_Free(self); }

static Py_ssize_t Record_length(PyObject *Py_UNUSED(self)) { return RECORD_NFIELDS; }

static PyObject *Record_item(PyObject *self, Py_ssize_t i) {
    return Record_field((Record *)self, i);
}

static PyObject *Record_subscript(PyObject *self, PyObject *key) {
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return NULL;
        if (i < 0) i += RECORD_NFIELDS;
        return Record_field((Record *)self, i);
    }
    PyObject *t = Record_as_tuple((Record *)self);
    if (!t) return NULL;
    PyObject *res = PyObject_GetItem(t, key);
    Py_DECREF(t);
    return res;
}

static PyObject *Record_richcompare(PyObject *a, PyObject *b, int op) {
    PyObject *ta = PyObject_TypeCheck(a, &RecordType) ? Record_as_tuple((Record *)a) : Py_NewRef(a);
    if (!ta) return NULL;
    PyObject *tb = PyObject_TypeCheck(b, &RecordType) ? Record_as_tuple((Record *)b) : Py_NewRef(b);
    if (!tb) {
        Py_DECREF(ta);
        return NULL;
    }
    PyObject *res = PyTuple_Check(ta) && PyTuple_Check(tb) ? PyObject_RichCompare(ta, tb, op)
                                                          : Py_NewRef(Py_NotImplemented);
    Py_DECREF(ta);
    Py_DECREF(tb);
    return res;
}

static Py_hash_t Record_hash(PyObject *self) {
    PyObject *t = Record_as_tuple((Record *)self);
    if (!t) return -1;
    Py_hash_t h = PyObject_Hash(t);
    Py_DECREF(t);
    return h;
}

static const char *const record_names[RECORD_NFIELDS] = {
    "seq", "symbol_id", "event_ns", "publish_ns", "open", "high", "low", "close", "volume",
};

static PyObject *Record_repr(PyObject *self) {
    PyObject *parts = PyList_New(RECORD_NFIELDS);
    if (!parts) return NULL;
    for (Py_ssize_t i = 0; i < RECORD_NFIELDS; i++) {
        PyObject *v = Record_field((Record *)self, i);
        PyObject *s = v ? PyUnicode_FromFormat("%s=%R", record_names[i], v) : NULL;
        Py_XDECREF(v);
        if (!s) {
            Py_DECREF(parts);
            return NULL;
        }
        PyList_SET_ITEM(parts, i, s);
    }
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *body = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(parts);
    if (!body) return NULL;
    PyObject *res = PyUnicode_FromFormat("Record(%U)", body);
    Py_DECREF(body);
    return res;
}

static PyObject *Record_get(PyObject *self, void *closure) {
    return Record_field((Record *)self, (Py_ssize_t)(intptr_t)closure);
}

static PyGetSetDef Record_getset[] = {
    {"seq", Record_get, NULL, "sequence number", (void *)0},
    {"symbol_id", Record_get, NULL, "index into the symbol table", (void *)1},
    {"event_ns", Record_get, NULL, "event time (ns since epoch, UTC)", (void *)2},
    {"publish_ns", Record_get, NULL, "CLOCK_MONOTONIC ns when published", (void *)3},
    {"open", Record_get, NULL, "open price", (void *)4},
    {"high", Record_get, NULL, "high price", (void *)5},
    {"low", Record_get, NULL, "low price", (void *)6},
    {"close", Record_get, NULL, "close price", (void *)7},
    {"volume", Record_get, NULL, "volume", (void *)8},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *Record_reduce(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *t = Record_as_tuple((Record *)self);
    if (!t) return NULL;
    return Py_BuildValue("(O(N))", (PyObject *)&PyTuple_Type, t);
}

static PyMethodDef Record_methods[] = {
    {"__reduce__", (PyCFunction)Record_reduce, METH_NOARGS, "pickles as a plain tuple"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Record_as_sequence = {
    .sq_length = Record_length,
    .sq_item = Record_item,
};

static PyMappingMethods Record_as_mapping = {
    .mp_length = Record_length,
    .mp_subscript = Record_subscript,
};

static PyTypeObject RecordType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tradingd.segment._fastpath.Record",
    .tp_basicsize = sizeof(Record),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_SEQUENCE,
    .tp_doc = "One ring record: indexes like a tuple in tradingd.segment.model.Record order, "
              "fields by name",
    .tp_dealloc = (destructor)Record_dealloc,
    .tp_repr = Record_repr,
    .tp_hash = Record_hash,
    .tp_richcompare = Record_richcompare,
    .tp_as_sequence = &Record_as_sequence,
    .tp_as_mapping = &Record_as_mapping,
    .tp_getset = Record_getset,
    .tp_methods = Record_methods,
};

/* Stamp-first reads (layout >= 1.1, see tradingd/segment/layout.py): record `p` may be taken as
 * soon as its slot's stamp says so, before the cursor moves, because the writer stores
 * the stamp after the body. Only once the ring has wrapped: a never-written slot's zero
 * stamp would match p = 0, 2^32, ... Waiting on the slot instead of the cursor saves one
 * cross-core cache-line transfer per record (the cursor's, before the slot's). */
static inline int stamp_usable(const Segment *seg, uint64_t p) {
    return seg->stamp_mode != STAMP_NONE && p > seg->mask;
}

static inline int stamp_ready(const Segment *seg, uint64_t p) {
    return stamp_usable(seg, p) && LOAD_ACQ(&seg->ring[p & seg->mask].seq_lo) == (uint32_t)p;
}

/* Take the next record by its stamp: 1 with the record, 0 when the stamp cannot decide
 * (not there yet, or lapped: the cursor protocol then decides and counts). The record is
 * copied between two reads of the stamp. With marked stamps (v1.2), equal reads (and an
 * unchanged publish_ns) mean the copy is whole, and a record published within
 * STAMP_TRUST_NS of its intact predecessor is the one the stamp names (not one 2^32
 * records on): no cursor read. Otherwise the cursor is read after the copy as in
 * cursor_take (c2), which decides both. */
static int cursor_take_stamped(Cursor *self, tradingd_record *out, uint64_t *seq) {
    Segment *seg = self->seg;
    uint64_t p = self->position;
    if (!stamp_ready(seg, p)) return 0;
    const tradingd_record *slot = &seg->ring[p & seg->mask];
    const uint64_t *sw = (const uint64_t *)slot;
    uint64_t w[8];
    for (int i = 0; i < 8; i++) w[i] = LOAD_RLX(&sw[i]);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    memcpy(out, w, sizeof *out);
    if (out->seq_lo != (uint32_t)p) return 0;
    /* The stamp and publish_ns read again after the copy: unchanged, nothing was written
     * to the slot meanwhile, even by a writer that went round 2^32 records while we were
     * preempted mid-copy (that record's publish_ns differs). */
    int trusted = seg->stamp_mode == STAMP_MARKED && self->trusted_pos == p &&
                  out->publish_ns - self->trusted_pub <= TRADINGD_STAMP_TRUST_NS &&
                  LOAD_ACQ(&slot->seq_lo) == (uint32_t)p &&
                  LOAD_RLX(&slot->publish_ns) == out->publish_ns;
    if (trusted) {
        self->trusted_reads += 1;
    } else {
        uint64_t c2 = LOAD_RLX(&seg->hdr->ring_cursor);
        if (p < oldest_intact(seg, c2)) return 0;
    }
    self->position = self->trusted_pos = p + 1;
    self->trusted_pub = out->publish_ns;
    self->stamp_reads += 1;
    *seq = p;
    return 1;
}

/* The next record by its stamp if that can decide, else by the cursor protocol. */
static int take(Cursor *self, tradingd_record *out, uint64_t *seq) {
    return cursor_take_stamped(self, out, seq) || cursor_take(self, out, seq);
}

/* poll_one() -> Record | None: the next record if there is one, without waiting. */
static PyObject *Cursor_poll_one(Cursor *self, PyObject *Py_UNUSED(ignored)) {
    if (check_open(self->seg) < 0) return NULL;
    tradingd_record rec;
    uint64_t seq;
    int got = take(self, &rec, &seq);
    gate_publish(self);
    if (!got) Py_RETURN_NONE;
    return record_new(&rec, seq);
}

/* Spin until record `pos` is there (its stamp, or the cursor passing it) or `timeout_ns`
 * passes. The first SPIN_HOLD_NS are spun holding the GIL (a GIL hand-off costs more than
 * a short wait); after that the GIL is released so other threads (the metrics server)
 * run. The clock is first read after 256 spins: a record that arrives sooner costs none.
 * Where the stamp can tell, only the slot is watched, and the cursor read once every
 * CURSOR_EVERY spins (it tells a lapped reader, whose stamp never comes, to go on): the
 * cursor's cache line stays with the writer. */
#define SPIN_HOLD_NS 50000ull
#define CURSOR_EVERY 64u
static int arrived(const Segment *seg, uint64_t pos, unsigned n) {
    if (stamp_usable(seg, pos)) {
        if (LOAD_ACQ(&seg->ring[pos & seg->mask].seq_lo) == (uint32_t)pos) return 1;
        if (n % CURSOR_EVERY != CURSOR_EVERY - 1) return 0;
    }
    return LOAD_ACQ(&seg->hdr->ring_cursor) > pos;
}

static int spin_until(Segment *seg, uint64_t pos, uint64_t timeout_ns) {
    uint64_t start = 0;
    for (unsigned n = 0;; n++) {
        if (arrived(seg, pos, n)) return 1;
        if ((n & 255) == 255) {
            uint64_t now = mono_ns();
            if (!start) start = now;
            if (now - start >= timeout_ns) return 0;
            if (now - start >= SPIN_HOLD_NS) break;
        }
        cpu_relax();
    }
    int found = 0;
    Py_BEGIN_ALLOW_THREADS
    for (unsigned n = 0;; n++) {
        if (arrived(seg, pos, n)) {
            found = 1;
            break;
        }
        if ((n & 1023) == 1023 && mono_ns() - start >= timeout_ns) break;
        cpu_relax();
    }
    Py_END_ALLOW_THREADS
    return found;
}

static int timeout_arg(PyObject *arg, uint64_t *timeout_ns) {
    double timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred()) return -1;
    /* NaN and negatives: 0; beyond a day: a day (no overflow converting to uint64) */
    *timeout_ns = timeout > 0 ? (uint64_t)((timeout < 86400.0 ? timeout : 86400.0) * 1e9) : 0;
    return 0;
}

/* next(timeout_s) -> Record | None: spin for the next record and return it, in one call
 * (the spin wait strategy's lowest-latency path). */
static PyObject *Cursor_next(Cursor *self, PyObject *arg) {
    Segment *seg = self->seg;
    if (check_open(seg) < 0) return NULL;
    uint64_t timeout_ns;
    if (timeout_arg(arg, &timeout_ns) < 0) return NULL;
    tradingd_record rec;
    uint64_t seq, start = 0, left = timeout_ns;
    for (unsigned spun = 0;; spun++) {
        if (cursor_take_stamped(self, &rec, &seq)) {
            gate_publish(self);
            return record_new(&rec, seq);
        }
        /* The stamp could not decide. Ask the cursor, except before the first spin on a
         * stamp: the record is most likely not published yet, and reading the cursor would
         * pull its cache line from the writer for nothing (spin_until reads it now and then). */
        if ((spun || !stamp_usable(seg, self->position)) && cursor_take(self, &rec, &seq)) {
            gate_publish(self);
            return record_new(&rec, seq);
        }
        /* The wait as a whole honours the timeout (one clock read per round, none when
         * the record is there at once): a slot whose stamp says "here" while neither read
         * can take it (a hostile or corrupt segment) must not keep us here, and beyond a
         * short bound other threads get the GIL between rounds. */
        uint64_t now = mono_ns();
        if (!spun) {
            start = now;
        } else {
            if (now - start >= timeout_ns) Py_RETURN_NONE;
            left = timeout_ns - (now - start);
            if (now - start >= SPIN_HOLD_NS) {
                Py_BEGIN_ALLOW_THREADS
                sched_yield();
                Py_END_ALLOW_THREADS
            }
        }
        if (!spin_until(seg, self->position, left)) Py_RETURN_NONE;
    }
}

/* spin(timeout_s) -> bool: busy-wait until a record beyond our position exists or the
 * timeout passes. The spin wait strategy: lowest latency, one core busy. */
static PyObject *Cursor_spin(Cursor *self, PyObject *arg) {
    Segment *seg = self->seg;
    if (check_open(seg) < 0) return NULL;
    gate_publish(self); /* a position moved by hand is published before we wait */
    uint64_t timeout_ns;
    if (timeout_arg(arg, &timeout_ns) < 0) return NULL;
    return PyBool_FromLong(spin_until(seg, self->position, timeout_ns));
}

/* read_into(out, max_records) -> records kept: poll_batch's protocol in one pass (the
 * batch read path). Reads the cursor, skips (and counts) records the writer may already
 * be overwriting, copies up to max_records into `out` (a writable RECORD buffer), reads
 * the cursor again and drops (counts as lost) the leading records the writer may have
 * overwritten meanwhile, then drops (counts as rejected) any whose stamp is not its
 * sequence number. The records kept are packed at the start of `out`; the position moves
 * past every record considered. Same result as the pure-Python poll_batch. */
static PyObject *Cursor_read_into(Cursor *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_into(out, max_records)");
        return NULL;
    }
    Segment *seg = self->seg;
    if (check_open(seg) < 0) return NULL;
    Py_ssize_t maxr = PyLong_AsSsize_t(args[1]);
    if (maxr == -1 && PyErr_Occurred()) return NULL;
    Py_buffer ob;
    if (PyObject_GetBuffer(args[0], &ob, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    Py_ssize_t room = ob.len / (Py_ssize_t)sizeof(tradingd_record);
    if (maxr > room) maxr = room;
    uint64_t kept = 0;
    if (maxr > 0) {
        tradingd_header *h = seg->hdr;
        tradingd_record *out = (tradingd_record *)ob.buf;
        uint64_t c1 = LOAD_ACQ(&h->ring_cursor), p = self->position;
        if (c1 > p) {
            uint64_t oldest = oldest_intact(seg, c1);
            if (p < oldest) {
                self->lost += oldest - p;
                p = oldest;
            }
            uint64_t n = c1 - p < (uint64_t)maxr ? c1 - p : (uint64_t)maxr;
            uint64_t cap = seg->mask + 1, i0 = p & seg->mask;
            uint64_t head = n < cap - i0 ? n : cap - i0;
            memcpy(out, &seg->ring[i0], head * sizeof *out);
            if (head < n) memcpy(out + head, &seg->ring[0], (n - head) * sizeof *out);
            __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the copies before the second read */
            uint64_t c2 = LOAD_RLX(&h->ring_cursor);
            uint64_t start = 0;
            uint64_t oldest2 = oldest_intact(seg, c2);
            if (p < oldest2) {
                start = oldest2 - p < n ? oldest2 - p : n;
                self->lost += start;
            }
            for (uint64_t i = start; i < n; i++) {
                if (out[i].seq_lo != (uint32_t)(p + i)) {
                    self->rejected += 1;
                    continue;
                }
                if (kept != i) out[kept] = out[i];
                kept++;
            }
            self->position = p + n;
        }
    }
    gate_publish(self);
    PyBuffer_Release(&ob);
    return PyLong_FromUnsignedLongLong(kept);
}

static PyObject *Cursor_read_analyse(Cursor *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *Cursor_attach_gate(Cursor *self, PyObject *const *args, Py_ssize_t nargs);

/* publish_gate(): publish the position in the gate slot now (it was set by hand, or the
 * consumer is about to sleep): a gated writer must not wait for a position we left. */
static PyObject *Cursor_publish_gate(Cursor *self, PyObject *Py_UNUSED(ignored)) {
    gate_publish(self);
    Py_RETURN_NONE;
}

static PyMethodDef Cursor_methods[] = {
    {"read_analyse", (PyCFunction)(void (*)(void))Cursor_read_analyse, METH_FASTCALL,
     "read_analyse(max_records, now_ns, latency_from, analytics, latency, recent_n) -> "
     "(read, ignored, latency samples, latency sum)"},
    {"attach_gate", (PyCFunction)(void (*)(void))Cursor_attach_gate, METH_FASTCALL,
     "attach_gate(companion buffer | None, slot_offset, control_offset)"},
    {"publish_gate", (PyCFunction)Cursor_publish_gate, METH_NOARGS,
     "publish the position in the gate slot now"},
    {"poll_one", (PyCFunction)Cursor_poll_one, METH_NOARGS,
     "the next record (a Record), or None"},
    {"next", (PyCFunction)Cursor_next, METH_O,
     "next(timeout_s) -> the next record (spinning for it), or None on timeout"},
    {"spin", (PyCFunction)Cursor_spin, METH_O,
     "spin(timeout_s) -> True when records beyond the position exist"},
    {"read_into", (PyCFunction)(void (*)(void))Cursor_read_into, METH_FASTCALL,
     "read_into(out, max_records) -> records kept at the start of out (poll_batch)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Cursor_members[] = {
    {"position", T_ULONGLONG, offsetof(Cursor, position), 0, "next sequence number to read"},
    {"lost", T_ULONGLONG, offsetof(Cursor, lost), 0, "records lost to lapping"},
    {"rejected", T_ULONGLONG, offsetof(Cursor, rejected), 0, "records failing the seq stamp"},
    {"stamp_reads", T_ULONGLONG, offsetof(Cursor, stamp_reads), READONLY,
     "records taken by their stamp (stamp-first reads), not by the cursor"},
    {"trusted_reads", T_ULONGLONG, offsetof(Cursor, trusted_reads), READONLY,
     "stamp reads that needed no cursor read at all (marked stamps, layout v1.2)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CursorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tradingd.segment._fastpath.Cursor",
    .tp_basicsize = sizeof(Cursor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A reader's ring position: Cursor(segment, position)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Cursor_init,
    .tp_dealloc = (destructor)Cursor_dealloc,
    .tp_methods = Cursor_methods,
    .tp_members = Cursor_members,
};

/* ----------------------------------------------------------------------------------- */
/* analytics_update: the consumer's per-symbol state, updated from a batch in one pass.  */
/*                                                                                     */
/* Why in C: the numpy update groups a batch with ~30 array passes (bincounts, a sort,  */
/* a scatter), ~13 ns a record; a consumer must be at least as fast as a producer that  */
/* publishes 80-150 M records/s or it is lapped. One pass here is ~2-4 ns a record with */
/* few symbols. tradingd/consumer/analytics.py owns the state and its meaning; its      */
/* numpy path is the reference (the tests compare the two).                             */
/* ----------------------------------------------------------------------------------- */

typedef struct {
    Py_buffer b;
    int have;
} Buf;

static int get_buf(PyObject *obj, Buf *out, Py_ssize_t min_items, Py_ssize_t item,
                   const char *what) {
    if (PyObject_GetBuffer(obj, &out->b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    out->have = 1;
    if (out->b.len < min_items * item) {
        PyErr_Format(PyExc_ValueError, "analytics_update: %s holds %zd bytes, needs %zd", what,
                     out->b.len, min_items * item);
        return -1;
    }
    return 0;
}

/* The analytics state's arrays (tradingd/consumer/analytics.py owns them), as pointers. */
typedef struct {
    Py_ssize_t cap, window, stride;
    double *buf, *last, *prev, *first, *lvol, *tvol;
    int64_t *count, *levent;
    uint64_t *lpub;
    /* each symbol's next buffer slot: one division at its first record of a call, then
     * an increment (a 64-bit division per record costs more than the rest) */
    uint32_t *next_slot;
    uint8_t *seen;
    uint32_t slot_stack[4096];
    uint8_t seen_stack[4096 / 8];
    Buf b[9];
} AnState;

static void an_release(AnState *st) {
    if (st->cap > 4096) {
        PyMem_Free(st->next_slot);
        PyMem_Free(st->seen);
    }
    st->next_slot = NULL;
    st->seen = NULL;
    for (int i = 0; i < 9; i++)
        if (st->b[i].have) PyBuffer_Release(&st->b[i].b);
}

/* args: symbol_capacity, window, buf, count, last, prev, first, last_volume, total_volume,
 * last_event, last_publish. 0 or -1 with an exception (release with an_release). */
static int an_setup(AnState *st, PyObject *const *args) {
    memset(st->b, 0, sizeof st->b);
    st->next_slot = NULL;
    st->seen = NULL;
    st->cap = 0;
    Py_ssize_t cap = PyLong_AsSsize_t(args[0]), window = PyLong_AsSsize_t(args[1]);
    if (PyErr_Occurred()) return -1;
    if (cap < 1 || window < 1 || cap > (Py_ssize_t)1 << 30 || window > (Py_ssize_t)1 << 30) {
        PyErr_SetString(PyExc_ValueError, "analytics_update: bad capacity or window");
        return -1;
    }
    static const char *names[9] = {"buf", "count", "last", "prev", "first", "last_volume",
                                   "total_volume", "last_event", "last_publish"};
    for (int i = 0; i < 9; i++) {
        Py_ssize_t items = i == 0 ? cap * window * 4 : cap;
        if (get_buf(args[2 + i], &st->b[i], items, 8, names[i]) < 0) return -1;
    }
    /* buf's rows may be padded (analytics.py pads them off cache-set aliasing): the row
     * stride in slots is what the buffer holds per symbol */
    Py_ssize_t stride = st->b[0].b.len / (cap * 32);
    if (st->b[0].b.len % (cap * 32) || stride < window) {
        PyErr_SetString(PyExc_ValueError, "analytics_update: buf is not [capacity][>= window][4]");
        return -1;
    }
    st->window = window;
    st->stride = stride;
    st->buf = st->b[0].b.buf;
    st->count = st->b[1].b.buf;
    st->last = st->b[2].b.buf;
    st->prev = st->b[3].b.buf;
    st->first = st->b[4].b.buf;
    st->lvol = st->b[5].b.buf;
    st->tvol = st->b[6].b.buf;
    st->levent = st->b[7].b.buf;
    st->lpub = st->b[8].b.buf;
    if (cap > 4096) {
        st->next_slot = PyMem_Malloc((size_t)cap * sizeof *st->next_slot);
        st->seen = PyMem_Calloc(((size_t)cap + 7) / 8, 1);
        st->cap = cap;
        if (!st->next_slot || !st->seen) {
            PyErr_NoMemory();
            return -1;
        }
    } else {
        st->next_slot = st->slot_stack;
        st->seen = st->seen_stack;
        memset(st->seen_stack, 0, ((size_t)cap + 7) / 8);
    }
    st->cap = cap;
    return 0;
}

/* A run of records with one publish_ns (a writer chunk's): binned once. */
typedef struct {
    uint64_t pub, n;
} LatRun;

/* Where an_apply_core's records come from when they are the ring itself (read_analyse):
 * each record is read, then checked, then applied, so nothing a writer may be rewriting
 * reaches the analytics, and nothing is copied first (copying each chunk out, then
 * checking and analysing the copy, cost ~1 ns a record: measured, 2^20 ring, one
 * consumer behind a producer flat out, 9.6-10.3 -> 8.4-9.1 ns a record). */
typedef struct {
    const Segment *seg;
    uint64_t pos;      /* sequence number of the first record */
    uint64_t lat_from; /* kept records at or past this position: their publish_ns ... */
    LatRun *runs;      /* ... as runs of equal ones, in order (room for n) */
    uint64_t nruns, lost, rejected;
} RingCheck;

/* Records ahead whose ring line a reader prefetches: as for the writer (WRITE_PREFETCH),
 * the hardware prefetcher stops at each 4 KiB page. Measured on a 2^20 ring, 4 symbols,
 * 2-vCPU VM, a consumer's CPU per record: none 9.0-10.0 ns; 8 ahead 9.4-10.1, 16 ahead
 * 9.0-9.5, 32 ahead 8.6-8.9, 64 ahead 8.7-9.2 (the checked pass, same runs). */
#define READ_PREFETCH 32

/* Apply n records, in sequence order; returns how many were ignored (symbol id too big).
 * chk NULL: r is an array nobody writes meanwhile. Else r is the ring at chk->pos (no
 * wrap within the n records): each record's fields are loaded, then (acquire fence) the
 * ring cursor; a record the writer may have begun to rewrite by then (below
 * oldest_intact) is counted lost, one whose stamp is not its position's rejected, and
 * neither is applied. The writer stores the cursor that makes a position lapped before
 * its first store to that slot's next record, so a body load that saw such a store is
 * followed by a cursor load that sees the lap. (read_into checks a chunk at once, after
 * copying it; the result is the same when nothing is rewritten meanwhile.)
 *
 * The state of the symbol of the previous record is kept in registers while records of
 * the same symbol follow (64 % of the bundled stream): otherwise each record would wait
 * for the previous one's stores to its count, total volume and slot counter to be
 * forwarded (~5 cycles each, a chain through memory), which cost 4 ns a record; a run
 * in registers costs the adds' latency only. The same sums in the same order as one
 * record at a time: the results are identical. */
static inline __attribute__((always_inline)) unsigned long long
an_apply_core(AnState *st, const tradingd_record *r, Py_ssize_t n, RingCheck *chk) {
    Py_ssize_t cap = st->cap, stride = st->stride;
    uint32_t window = (uint32_t)st->window;
    double *buf = st->buf, *last = st->last, *prev = st->prev;
    double *first = st->first, *lvol = st->lvol, *tvol = st->tvol;
    int64_t *count = st->count, *levent = st->levent;
    uint64_t *lpub = st->lpub;
    uint32_t *next_slot = st->next_slot;
    uint8_t *seen = st->seen;
    unsigned long long ignored = 0;
    uint32_t cur = UINT32_MAX; /* the symbol held in registers (none yet) */
    int64_t c_count = 0;
    uint32_t c_at = 0;
    double c_tvol = 0, c_last = 0, c_prev = 0, *c_row = NULL;
    double c_vol = 0; /* the last record of the held symbol: volume, event, publish time */
    int64_t c_event = 0;
    uint64_t c_pub = 0;
    /* the check's state in locals: the fence below makes the compiler reload anything
     * it reaches through memory */
    const tradingd_record *ring = chk ? chk->seg->ring : NULL;
    const uint64_t *cursor = chk ? &chk->seg->hdr->ring_cursor : NULL;
    const uint64_t mask = chk ? chk->seg->mask : 0, lag = chk ? chk->seg->lag : 0;
    const uint64_t pos0 = chk ? chk->pos : 0, lat_from = chk ? chk->lat_from : 0;
    LatRun *runs = chk ? chk->runs : NULL;
    uint64_t nruns = 0, run_pub = 0, run_n = 0, lost = 0, rejected = 0;
    for (Py_ssize_t i = 0; i < n; i++, r++) {
        uint32_t sym;
        double high, low, close, volume;
        int64_t event;
        uint64_t pub;
        if (chk) {
            uint64_t pos = pos0 + (uint64_t)i;
            __builtin_prefetch(&ring[(pos + READ_PREFETCH) & mask], 0, 3);
            uint32_t stamp = LOAD_ACQ(&r->seq_lo);
            sym = LOAD_RLX(&r->symbol_id);
            event = LOAD_RLX(&r->event_ns);
            pub = LOAD_RLX(&r->publish_ns);
            high = load_f64(&r->high);
            low = load_f64(&r->low);
            close = load_f64(&r->close);
            volume = load_f64(&r->volume);
            __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the record before the cursor */
            uint64_t c = LOAD_RLX(cursor);
            if (__builtin_expect(c > lag && pos < c - lag, 0)) { /* below oldest_intact */
                lost++;
                continue;
            }
            if (__builtin_expect(stamp != (uint32_t)pos, 0)) {
                rejected++;
                continue;
            }
            if (pos >= lat_from) {
                if (run_n && pub != run_pub) {
                    runs[nruns++] = (LatRun){run_pub, run_n};
                    run_n = 0;
                }
                run_pub = pub;
                run_n++;
            }
        } else {
            sym = r->symbol_id;
            event = r->event_ns;
            pub = r->publish_ns;
            high = r->high;
            low = r->low;
            close = r->close;
            volume = r->volume;
        }
        if (sym != cur) {
            if ((Py_ssize_t)sym >= cap) {
                ignored++;
                continue;
            }
            if (cur != UINT32_MAX) { /* spill the held symbol */
                count[cur] = c_count;
                next_slot[cur] = c_at;
                tvol[cur] = c_tvol;
                last[cur] = c_last;
                prev[cur] = c_prev;
                lvol[cur] = c_vol;
                levent[cur] = c_event;
                lpub[cur] = c_pub;
            }
            cur = sym;
            c_count = count[sym];
            if (seen[sym >> 3] & (1u << (sym & 7))) {
                c_at = next_slot[sym];
            } else {
                seen[sym >> 3] |= (uint8_t)(1u << (sym & 7));
                c_at = (uint32_t)(c_count % (int64_t)window);
            }
            c_tvol = tvol[sym];
            c_last = last[sym];
            c_prev = prev[sym];
            c_row = &buf[(Py_ssize_t)sym * stride * 4];
        }
        double *slot = &c_row[(Py_ssize_t)c_at * 4];
        slot[0] = high;
        slot[1] = low;
        slot[2] = close;
        slot[3] = volume;
        c_at = c_at + 1 == window ? 0 : c_at + 1;
        if (c_count == 0) first[sym] = close;
        c_prev = c_last;
        c_last = close;
        c_tvol += volume;
        c_count++;
        c_vol = volume;
        c_event = event;
        c_pub = pub;
    }
    if (cur != UINT32_MAX) {
        count[cur] = c_count;
        next_slot[cur] = c_at;
        tvol[cur] = c_tvol;
        last[cur] = c_last;
        prev[cur] = c_prev;
        lvol[cur] = c_vol;
        levent[cur] = c_event;
        lpub[cur] = c_pub;
    }
    if (chk) {
        if (run_n) runs[nruns++] = (LatRun){run_pub, run_n};
        chk->nruns += nruns;
        chk->lost += lost;
        chk->rejected += rejected;
    }
    return ignored;
}

static unsigned long long an_apply(AnState *st, const tradingd_record *r, Py_ssize_t n) {
    return an_apply_core(st, r, n, NULL);
}

static unsigned long long an_apply_ring(AnState *st, const tradingd_record *r, Py_ssize_t n,
                                        RingCheck *chk) {
    return an_apply_core(st, r, n, chk);
}

/* analytics_update(records, symbol_capacity, window, buf, count, last, prev, first,
 *                  last_volume, total_volume, last_event, last_publish) -> records ignored
 * records: RECORD-sized records in sequence order (read only). buf: float64
 * [symbol_capacity][stride >= window][4] (high, low, close, volume); count: int64; last, prev, first,
 * last_volume, total_volume: float64; last_event: int64; last_publish: uint64, all
 * [symbol_capacity]. Records with a symbol id >= symbol_capacity are skipped and counted. */
static PyObject *fp_analytics_update(PyObject *Py_UNUSED(m), PyObject *const *args,
                                     Py_ssize_t nargs) {
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "analytics_update(records, symbol_capacity, window, "
                                         "buf, count, last, prev, first, last_volume, "
                                         "total_volume, last_event, last_publish)");
        return NULL;
    }
    Py_buffer in;
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    AnState st;
    PyObject *result = NULL;
    if (an_setup(&st, args + 1) < 0) goto done;
    if (in.len % (Py_ssize_t)sizeof(tradingd_record)) {
        PyErr_SetString(PyExc_ValueError, "records buffer is not a whole number of records");
        goto done;
    }
    result = PyLong_FromUnsignedLongLong(
        an_apply(&st, (const tradingd_record *)in.buf, in.len / (Py_ssize_t)sizeof(tradingd_record)));
done:
    an_release(&st);
    PyBuffer_Release(&in);
    return result;
}

/* The latency histogram's arrays (tradingd/consumer/latency.py owns them). */
typedef struct {
    const int64_t *bounds;
    Py_ssize_t nb, cap;
    int64_t *counts, *recent;
    unsigned long long at; /* ring position of the next sample */
    Buf b[3];
} LatState;

static void lat_release(LatState *st) {
    for (int i = 0; i < 3; i++)
        if (st->b[i].have) PyBuffer_Release(&st->b[i].b);
}

/* bounds, counts, recent (recent_n: samples written so far). */
static int lat_setup(LatState *st, PyObject *bounds, PyObject *counts, PyObject *recent,
                     unsigned long long recent_n) {
    memset(st->b, 0, sizeof st->b);
    if (get_buf(bounds, &st->b[0], 1, 8, "bounds") < 0 || get_buf(counts, &st->b[1], 2, 8, "counts") < 0 ||
        get_buf(recent, &st->b[2], 1, 8, "recent") < 0)
        return -1;
    st->nb = st->b[0].b.len / 8;
    st->cap = st->b[2].b.len / 8;
    if (st->b[1].b.len / 8 < st->nb + 1) {
        PyErr_SetString(PyExc_ValueError, "latency_observe: counts shorter than bounds + 1");
        return -1;
    }
    st->bounds = st->b[0].b.buf;
    st->counts = st->b[1].b.buf;
    st->recent = st->b[2].b.buf;
    st->at = recent_n % (unsigned long long)st->cap;
    return 0;
}

/* Bin a run of n latencies now - pub (0 if negative) with one bin lookup; its last
 * `keep` samples go to the recent ring. Returns the run's sum (ns). */
static long long lat_run(LatState *st, uint64_t pub, Py_ssize_t n, Py_ssize_t keep,
                         long long now) {
    const int64_t *bounds = st->bounds;
    long long v = now - (long long)pub;
    if (v < 0) v = 0;
    Py_ssize_t lo = 0, hi = st->nb; /* first bound >= v (searchsorted side=left) */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (bounds[mid] < v) lo = mid + 1; else hi = mid;
    }
    st->counts[lo] += n;
    /* the run's samples into the ring: contiguous fills (vectorised), wrapping once */
    unsigned long long at = st->at, cap = (unsigned long long)st->cap;
    unsigned long long left = (unsigned long long)keep;
    while (left) {
        unsigned long long part = left < cap - at ? left : cap - at;
        int64_t *dst = st->recent + at;
        for (unsigned long long j = 0; j < part; j++) dst[j] = v;
        at += part;
        if (at == cap) at = 0;
        left -= part;
    }
    st->at = at;
    return v * (long long)n;
}

/* Bin n records' latencies, one lookup per run of equal publish_ns; samples from index
 * first_kept on go to the recent ring. Sum (ns). */
static long long lat_apply(LatState *st, const tradingd_record *r, Py_ssize_t n,
                           long long now, Py_ssize_t first_kept) {
    long long sum = 0;
    for (Py_ssize_t start = 0; start < n;) {
        Py_ssize_t end = start + 1;
        uint64_t pub = r[start].publish_ns;
        /* runs are a writer chunk long (~1,000): four compares, one branch */
        while (end + 4 <= n && ((r[end].publish_ns ^ pub) | (r[end + 1].publish_ns ^ pub) |
                                (r[end + 2].publish_ns ^ pub) | (r[end + 3].publish_ns ^ pub)) == 0)
            end += 4;
        while (end < n && r[end].publish_ns == pub) end++;
        Py_ssize_t keep = end <= first_kept ? 0 : end - (start > first_kept ? start : first_kept);
        sum += lat_run(st, pub, end - start, keep, now);
        start = end;
    }
    return sum;
}

/* latency_observe(records, now_ns, bounds, counts, recent, recent_n) -> added sum (ns):
 * the consumer's latency histogram fed from a batch in one pass. Latency = now_ns -
 * publish_ns (0 if negative); equal publish_ns come in runs (one per writer chunk), each
 * run binned once: counts[i] += run length for the first bound >= latency (counts has
 * len(bounds) + 1 items: the last is above the top bound). The newest min(n, len(recent))
 * latencies go to the ring `recent`, sample j of the stream at j % len(recent) (j counted
 * from recent_n). The caller adds n to recent_n and to its count. */
static PyObject *fp_latency_observe(PyObject *Py_UNUSED(m), PyObject *const *args,
                                    Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "latency_observe(records, now_ns, bounds, counts, recent, recent_n)");
        return NULL;
    }
    long long now = PyLong_AsLongLong(args[1]);
    unsigned long long rn = PyLong_AsUnsignedLongLong(args[5]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer in;
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    LatState st;
    PyObject *result = NULL;
    Py_ssize_t n = in.len / (Py_ssize_t)sizeof(tradingd_record);
    if (lat_setup(&st, args[2], args[3], args[4], 0) < 0) goto done;
    if (in.len % (Py_ssize_t)sizeof(tradingd_record)) {
        PyErr_SetString(PyExc_ValueError, "records buffer is not a whole number of records");
        goto done;
    }
    {
        Py_ssize_t first_kept = n > st.cap ? n - st.cap : 0;
        /* ring position of the first kept sample; then incremented (no division a record) */
        st.at = (rn + (unsigned long long)first_kept) % (unsigned long long)st.cap;
        result = PyLong_FromLongLong(lat_apply(&st, (const tradingd_record *)in.buf, n, now,
                                               first_kept));
    }
done:
    lat_release(&st);
    PyBuffer_Release(&in);
    return result;
}

/* Records read_analyse applies per step before it bins their latencies (their runs of
 * equal publish_ns wait on the stack: at most 256, 4 KiB). */
#define ANALYSE_CHUNK 256

/* read_analyse(max_records, now_ns, latency_from, analytics, latency, recent_n)
 *   -> (records read, ignored, latency samples, latency sum ns)
 * The consumer daemon's whole data path for a batch in one pass, with nothing copied out
 * to Python and nothing copied at all: records are read straight from the ring, each
 * checked (an_apply_core: the cursor re-read after its fields, its stamp) before it is
 * fed to the analytics (analytics_update's state); for kept records with seq >=
 * latency_from, the runs of equal publish times go to the latency histogram
 * (latency_observe's state; latency None: none) per ANALYSE_CHUNK records. analytics: the tuple (symbol_capacity,
 * window, buf, count, last, prev, first, last_volume, total_volume, last_event,
 * last_publish); latency: (bounds, counts, recent) or None. Records the cursor shows
 * lapped before the call are skipped and counted lost, as read_into counts them; during
 * the call, a record found lapped is lost, one with a wrong stamp rejected (read_into
 * decides per chunk copied, so the two may split a race differently, never accept a
 * torn record). */
static PyObject *Cursor_read_analyse(Cursor *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "read_analyse(max_records, now_ns, latency_from, "
                                         "analytics, latency, recent_n)");
        return NULL;
    }
    Segment *seg = self->seg;
    if (check_open(seg) < 0) return NULL;
    Py_ssize_t maxr = PyLong_AsSsize_t(args[0]);
    long long now = PyLong_AsLongLong(args[1]);
    unsigned long long lat_from = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long rn = PyLong_AsUnsignedLongLong(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (!PyTuple_Check(args[3]) || PyTuple_GET_SIZE(args[3]) != 11) {
        PyErr_SetString(PyExc_TypeError, "read_analyse: analytics must be an 11-tuple");
        return NULL;
    }
    int with_latency = args[4] != Py_None;
    if (with_latency && (!PyTuple_Check(args[4]) || PyTuple_GET_SIZE(args[4]) != 3)) {
        PyErr_SetString(PyExc_TypeError, "read_analyse: latency must be a 3-tuple or None");
        return NULL;
    }
    AnState *an = PyMem_Malloc(sizeof *an);
    if (!an) return PyErr_NoMemory();
    LatState lat;
    memset(&lat, 0, sizeof lat);
    PyObject *result = NULL;
    unsigned long long kept = 0, ignored = 0, lat_n = 0;
    long long lat_sum = 0;
    if (an_setup(an, &PyTuple_GET_ITEM(args[3], 0)) < 0) goto done;
    if (with_latency && lat_setup(&lat, PyTuple_GET_ITEM(args[4], 0), PyTuple_GET_ITEM(args[4], 1),
                                  PyTuple_GET_ITEM(args[4], 2), rn) < 0)
        goto done;
    if (maxr > 0) {
        uint64_t c1 = LOAD_ACQ(&seg->hdr->ring_cursor), p = self->position;
        if (c1 > p) {
            uint64_t oldest = oldest_intact(seg, c1);
            if (p < oldest) {
                self->lost += oldest - p;
                p = oldest;
            }
            uint64_t n = c1 - p < (uint64_t)maxr ? c1 - p : (uint64_t)maxr;
            LatRun runs[ANALYSE_CHUNK];
            RingCheck chk = {seg, 0, lat_from, runs, 0, 0, 0};
            for (uint64_t off = 0; off < n;) {
                uint64_t q = p + off, i0 = q & seg->mask;
                uint64_t k = n - off < ANALYSE_CHUNK ? n - off : ANALYSE_CHUNK;
                if (k > seg->mask + 1 - i0) k = seg->mask + 1 - i0; /* up to the ring's end */
                chk.pos = q;
                chk.nruns = 0;
                ignored += an_apply_ring(an, &seg->ring[i0], (Py_ssize_t)k, &chk);
                if (with_latency)
                    for (uint64_t j = 0; j < chk.nruns; j++) {
                        lat_sum += lat_run(&lat, runs[j].pub, (Py_ssize_t)runs[j].n,
                                           (Py_ssize_t)runs[j].n, now);
                        lat_n += runs[j].n;
                    }
                off += k;
            }
            kept = n - chk.lost - chk.rejected;
            self->lost += chk.lost;
            self->rejected += chk.rejected;
            self->position = p + n;
        }
    }
    gate_publish(self);
    result = Py_BuildValue("(KKKL)", kept, ignored, lat_n, lat_sum);
done:
    an_release(an);
    PyMem_Free(an);
    lat_release(&lat);
    return result;
}

/* attach_gate(buffer | None, slot_offset, control_offset): publish this cursor's position
 * in a gate slot of the companion after every read (the slot was claimed by the caller). */
static PyObject *Cursor_attach_gate(Cursor *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "attach_gate(buffer, slot_offset, control_offset)");
        return NULL;
    }
    cursor_release_gate(self);
    if (args[0] == Py_None) Py_RETURN_NONE;
    Py_ssize_t slot = PyLong_AsSsize_t(args[1]), ctl = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &self->gbuf, PyBUF_WRITABLE) < 0) return NULL;
    self->have_gbuf = 1;
    if (slot < 0 || slot % 64 || slot + 64 > self->gbuf.len || ctl < 0 || ctl % 64 ||
        ctl + 64 > self->gbuf.len) {
        cursor_release_gate(self);
        PyErr_SetString(PyExc_ValueError, "gate offsets outside the companion buffer");
        return NULL;
    }
    self->gate_slot = (uint64_t *)((char *)self->gbuf.buf + slot);
    self->gate_ctl = (uint64_t *)((char *)self->gbuf.buf + ctl);
    self->gate_published = UINT64_MAX; /* publish at the next read, whatever the position */
    Py_RETURN_NONE;
}

/* atomic_u64(buffer, offset, expected, new) -> bool: compare-and-swap one aligned 8-byte
 * word of a shared buffer (gate slots are claimed and freed with it); expected None: an
 * atomic add of `new`, returning True. */
static PyObject *fp_atomic_u64(PyObject *Py_UNUSED(m), PyObject *const *args,
                               Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "atomic_u64(buffer, offset, expected | None, new)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    unsigned long long desired = PyLong_AsUnsignedLongLong(args[3]);
    unsigned long long expected = 0;
    if (args[2] != Py_None) expected = PyLong_AsUnsignedLongLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_WRITABLE) < 0) return NULL;
    if (off < 0 || off % 8 || off + 8 > b.len) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "atomic_u64: offset outside the buffer");
        return NULL;
    }
    uint64_t *w = (uint64_t *)((char *)b.buf + off);
    int ok = 1;
    if (args[2] == Py_None) {
        __atomic_fetch_add(w, (uint64_t)desired, __ATOMIC_SEQ_CST);
    } else {
        uint64_t exp = expected;
        ok = __atomic_compare_exchange_n(w, &exp, (uint64_t)desired, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST);
    }
    PyBuffer_Release(&b);
    return PyBool_FromLong(ok);
}

static PyMethodDef fastpath_functions[] = {
    {"atomic_u64", (PyCFunction)(void (*)(void))fp_atomic_u64, METH_FASTCALL,
     "atomic_u64(buffer, offset, expected | None, new) -> True if swapped (None: added)"},
    {"latency_observe", (PyCFunction)(void (*)(void))fp_latency_observe, METH_FASTCALL,
     "latency_observe(records, now_ns, bounds, counts, recent, recent_n) -> sum of latencies"},
    {"analytics_update", (PyCFunction)(void (*)(void))fp_analytics_update, METH_FASTCALL,
     "analytics_update(records, symbol_capacity, window, buf, count, last, prev, first, "
     "last_volume, total_volume, last_event, last_publish) -> records ignored"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT, "tradingd.segment._fastpath",
    "C hot paths of the tradingd segment protocol (layout from tradingd_segment.h).", -1,
    fastpath_functions, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&SegmentType) < 0 || PyType_Ready(&CursorType) < 0 ||
        PyType_Ready(&RecordType) < 0) return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (!m) return NULL;
    Py_INCREF(&SegmentType);
    Py_INCREF(&CursorType);
    Py_INCREF(&RecordType);
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)TRADINGD_LAYOUT_FINGERPRINT);
    if (PyModule_AddObject(m, "Segment", (PyObject *)&SegmentType) < 0 ||
        PyModule_AddObject(m, "Cursor", (PyObject *)&CursorType) < 0 ||
        PyModule_AddObject(m, "Record", (PyObject *)&RecordType) < 0 ||
        PyModule_AddStringConstant(m, "LAYOUT_FINGERPRINT_HEX", fp) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
