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
} Segment;

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

static void wake_readers(Segment *self) {
    tradingd_header *h = self->hdr;
    STORE_REL(&h->wake_seq, LOAD_RLX(&h->wake_seq) + 1);
    syscall(SYS_futex, (uint32_t *)&h->wake_seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
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
    if (check_open(self) < 0) return NULL;
    if (!self->writable) {
        PyErr_SetString(PyExc_PermissionError, "segment mapped read-only");
        return NULL;
    }
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
    if (self->wake) wake_readers(self);
    return PyLong_FromUnsignedLongLong(s);
}

/* publish_records(buffer) -> first seq: a batch of RECORD-sized records (seq_lo and
 * publish_ns are filled in here), in chunks of at most ring_window records; each chunk's
 * records are written (mark, body, stamp), the latest slot of every symbol in it updated
 * from its last record, then the cursor stored. */
static PyObject *Segment_publish_records(Segment *self, PyObject *arg) {
    if (check_open(self) < 0) return NULL;
    if (!self->writable) {
        PyErr_SetString(PyExc_PermissionError, "segment mapped read-only");
        return NULL;
    }
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
        if (self->wake) wake_readers(self);
    }
    PyBuffer_Release(&in);
    return PyLong_FromUnsignedLongLong(first);
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
} Cursor;

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
    if (!take(self, &rec, &seq)) Py_RETURN_NONE;
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
        if (cursor_take_stamped(self, &rec, &seq)) return record_new(&rec, seq);
        /* The stamp could not decide. Ask the cursor, except before the first spin on a
         * stamp: the record is most likely not published yet, and reading the cursor would
         * pull its cache line from the writer for nothing (spin_until reads it now and then). */
        if ((spun || !stamp_usable(seg, self->position)) && cursor_take(self, &rec, &seq))
            return record_new(&rec, seq);
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
    uint64_t timeout_ns;
    if (timeout_arg(arg, &timeout_ns) < 0) return NULL;
    return PyBool_FromLong(spin_until(seg, self->position, timeout_ns));
}

static PyMethodDef Cursor_methods[] = {
    {"poll_one", (PyCFunction)Cursor_poll_one, METH_NOARGS,
     "the next record (a Record), or None"},
    {"next", (PyCFunction)Cursor_next, METH_O,
     "next(timeout_s) -> the next record (spinning for it), or None on timeout"},
    {"spin", (PyCFunction)Cursor_spin, METH_O,
     "spin(timeout_s) -> True when records beyond the position exist"},
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

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT, "tradingd.segment._fastpath",
    "C hot paths of the tradingd segment protocol (layout from tradingd_segment.h).", -1,
    NULL, NULL, NULL, NULL, NULL,
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
