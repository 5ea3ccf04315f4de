/* tradingd.exec._execfast: tradingd-exec's per-record ring and journal work in C.
 *
 * Why: per order, exec reads a 128-byte record from a client's order ring (stamp, copy,
 * stamp), frames it for the journal (a CRC-32 over ~160 bytes), and writes a 128-byte
 * report into the client's report ring (mark, 17 fields, stamp, cursor). In plain Python
 * that is ~2 us per order of struct packing, slicing and call overhead; here it is a loop
 * over a batch in one call. Order STATE stays in Python (tradingd/exec/engine.py): this
 * module only moves bytes, so the transition table and the matching rules have one home.
 *
 * The pure-Python functions in tradingd/exec/execfast.py are the reference and the
 * fallback when this module is not built; tests/exec/test_execfast.py checks that both
 * give the same bytes (journal frames, report records) and the same records.
 *
 * The layout comes from tools/c/tradingd_orders.h, generated from
 * tradingd/segment/layout.py: no offset is written by hand here.
 *
 * Memory ordering (as the data ring's, see tradingd/segment/_fastpath.c): the writer
 * stores the stamp's complement, the body, then the stamp with release semantics, then
 * the cursor (release); the reader loads the stamp with acquire semantics, copies, fences
 * (acquire) and loads the stamp again.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <math.h>
#include <time.h>
#include <string.h>

#include "tradingd_orders.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#include <stddef.h>
/* the bytes after the stamp up to the end of the last field (the journal keeps these:
 * tradingd/exec/journal.py ORDER_BODY_SIZE; trailing padding is not part of an order) */
#define ORDER_BODY (offsetof(tradingd_order, symbol) + sizeof(((tradingd_order *)0)->symbol) - 4)
#define REPORT_FIELDS 17
/* journal OrderIn payload: 'O', name length, name, <QQQd generation seq arrival ref>, body */
#define ORDER_FIXED (8 + 8 + 8 + 8)

/* ---------------------------------------------------------------- CRC-32 (zlib's) */
static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---------------------------------------------------------------- buffers */
static int ring_span(Py_buffer *view, Py_ssize_t ring_offset, Py_ssize_t capacity,
                     Py_ssize_t record) {
    if (capacity < 2 || (capacity & (capacity - 1))) {
        PyErr_Format(PyExc_ValueError, "capacity must be a power of two >= 2, not %zd",
                     capacity);
        return -1;
    }
    if (ring_offset < 0 || ring_offset % 8 || (Py_ssize_t)((size_t)view->len) <
                                                   ring_offset + capacity * record) {
        PyErr_Format(PyExc_ValueError, "buffer of %zd bytes too small for a ring of %zd "
                     "records at offset %zd", view->len, capacity, ring_offset);
        return -1;
    }
    if (((uintptr_t)view->buf) % 8) {
        PyErr_SetString(PyExc_ValueError, "buffer is not 8-byte aligned");
        return -1;
    }
    return 0;
}

/* up to max records from position on, as bytes after the stamp; view already checked */
static PyObject *take_from(Py_buffer *view, Py_ssize_t ring_offset, Py_ssize_t capacity,
                           uint64_t position, Py_ssize_t max) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    const char *ring = (const char *)view->buf + ring_offset;
    uint64_t mask = (uint64_t)capacity - 1;
    for (Py_ssize_t i = 0; i < max; i++) {
        uint64_t p = position + (uint64_t)i;
        const tradingd_order *rec = (const tradingd_order *)(ring + (p & mask) *
                                                             sizeof(tradingd_order));
        uint32_t lo = (uint32_t)p;
        if (LOAD_ACQ(&rec->seq_lo) != lo) break;
        char copy[ORDER_BODY];
        memcpy(copy, (const char *)rec + 4, ORDER_BODY);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (LOAD_ACQ(&rec->seq_lo) != lo) break; /* overwritten during the copy */
        PyObject *b = PyBytes_FromStringAndSize(copy, ORDER_BODY);
        if (b == NULL || PyList_Append(out, b) < 0) {
            Py_XDECREF(b);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(b);
    }
    return out;
}

/* is record `position` published? (the first stamp: an idle round reads only this) */
static int ready_at(Py_buffer *view, Py_ssize_t ring_offset, Py_ssize_t capacity,
                    uint64_t position) {
    const tradingd_order *rec = (const tradingd_order *)(
        (const char *)view->buf + ring_offset +
        (position & ((uint64_t)capacity - 1)) * sizeof(tradingd_order));
    return LOAD_ACQ(&rec->seq_lo) == (uint32_t)position;
}

/* take_orders(buffer, ring_offset, capacity, position, max) -> list[bytes] */
static PyObject *take_orders(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    Py_ssize_t ring_offset, capacity, max;
    unsigned long long position;
    if (!PyArg_ParseTuple(args, "OnnKn", &obj, &ring_offset, &capacity, &position, &max))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = NULL;
    if (ring_span(&view, ring_offset, capacity, sizeof(tradingd_order)) == 0)
        out = take_from(&view, ring_offset, capacity, position, max);
    PyBuffer_Release(&view);
    return out;
}

/* encode_orders(client, generation, first_seq, arrival_ns, raws, refs) -> bytes
 * The journal frames of OrderIn entries (tradingd/exec/journal.py encode), joined. */
/* the frames of raws as OrderIn entries (ring seqs first_seq...), joined */
static PyObject *frames_of(const char *client, Py_ssize_t client_len, uint64_t generation,
                           uint64_t first_seq, uint64_t arrival, PyObject *raws,
                           PyObject *refs) {
    if (client_len > 255) {
        PyErr_SetString(PyExc_ValueError, "client name longer than 255 bytes");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(raws);
    if (PyList_GET_SIZE(refs) != n) {
        PyErr_SetString(PyExc_ValueError, "raws and refs differ in length");
        return NULL;
    }
    size_t payload = 1 + 1 + (size_t)client_len + ORDER_FIXED + ORDER_BODY;
    size_t frame = 8 + payload;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(frame * (size_t)n));
    if (out == NULL) return NULL;
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *raw = PyList_GET_ITEM(raws, i);
        if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) != (Py_ssize_t)ORDER_BODY) {
            PyErr_Format(PyExc_ValueError, "raws[%zd]: expected %d bytes", i,
                         (int)ORDER_BODY);
            Py_DECREF(out);
            return NULL;
        }
        double ref = PyFloat_AsDouble(PyList_GET_ITEM(refs, i));
        if (ref == -1.0 && PyErr_Occurred()) {
            Py_DECREF(out);
            return NULL;
        }
        unsigned char *p = w + 8;
        p[0] = 'O';
        p[1] = (unsigned char)client_len;
        memcpy(p + 2, client, (size_t)client_len);
        unsigned char *q = p + 2 + client_len;
        uint64_t seq = first_seq + (uint64_t)i;
        memcpy(q, &generation, 8);
        memcpy(q + 8, &seq, 8);
        memcpy(q + 16, &arrival, 8);
        memcpy(q + 24, &ref, 8);
        memcpy(q + ORDER_FIXED, PyBytes_AS_STRING(raw), ORDER_BODY);
        uint32_t len32 = (uint32_t)payload, crc = crc32_of(p, payload);
        memcpy(w, &len32, 4);
        memcpy(w + 4, &crc, 4);
        w += frame;
    }
    return out;
}

/* encode_orders(client, generation, first_seq, arrival_ns, raws, refs) -> bytes
 * The journal frames of OrderIn entries (tradingd/exec/journal.py encode), joined. */
static PyObject *encode_orders(PyObject *self, PyObject *args) {
    (void)self;
    const char *client;
    Py_ssize_t client_len;
    unsigned long long generation, first_seq, arrival;
    PyObject *raws, *refs;
    if (!PyArg_ParseTuple(args, "y#KKKO!O!", &client, &client_len, &generation, &first_seq,
                          &arrival, &PyList_Type, &raws, &PyList_Type, &refs))
        return NULL;
    return frames_of(client, client_len, generation, first_seq, arrival, raws, refs);
}

static PyObject *zero_float; /* 0.0, shared by every non-market record's ref */

/* take_and_frame(buffer, ring_offset, capacity, position, max, client, generation,
 *                clock, ref_of) -> (raws, frames, refs, arrival_ns)
 * take_orders; then, if any, the arrival time (clock(), read after the records were
 * taken), the reference price of each record (ref_of(symbol) for a market new order, 0.0
 * for anything else) and encode_orders: one call per ring per round. */
/* the fields after the stamp of one order record (raw: its ORDER_BODY bytes) as an instance
 * of `cls`, a tuple subclass without fields of its own (protocol.OrderFields): what
 * struct.unpack with journal._ORDER_BODY gives, in layout order */
static PyObject *decode_order(PyTypeObject *cls, const char *raw) {
    tradingd_order o;
    memcpy((char *)&o + 4, raw, ORDER_BODY);
    PyObject *t = cls->tp_alloc(cls, 10);
    if (t == NULL) return NULL;
    PyObject *v[10] = {
        PyLong_FromUnsignedLong(o.msg_type), PyLong_FromUnsignedLongLong(o.client_seq),
        PyLong_FromUnsignedLongLong(o.client_order_id), PyLong_FromUnsignedLong(o.side),
        PyLong_FromUnsignedLong(o.ord_type), PyLong_FromUnsignedLong(o.time_in_force),
        PyLong_FromLongLong(o.quantity), PyFloat_FromDouble(o.limit_price),
        PyLong_FromUnsignedLongLong(o.send_ns),
        PyBytes_FromStringAndSize(o.symbol, sizeof o.symbol)};
    for (int i = 0; i < 10; i++) {
        if (v[i] == NULL) {
            for (int k = 0; k < 10; k++) Py_XDECREF(v[k]);
            Py_DECREF(t);
            return NULL;
        }
    }
    for (int i = 0; i < 10; i++) PyTuple_SET_ITEM(t, i, v[i]);
    return t;
}

static int arg_ssize(PyObject *v, Py_ssize_t *out) {
    *out = PyLong_AsSsize_t(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int arg_u64(PyObject *v, unsigned long long *out) {
    *out = PyLong_AsUnsignedLongLong(v);
    return (*out == (unsigned long long)-1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *take_frame_core(PyObject *const *args, Py_ssize_t nargs, int decode);

/* METH_FASTCALL: this runs once per ring per round, idle rounds included */
static PyObject *take_and_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    return take_frame_core(args, nargs, 1);
}

/* the fields of every record of raws (decode_order of each) */
static PyObject *decode_all(PyTypeObject *cls, PyObject *raws) {
    Py_ssize_t n = PyList_GET_SIZE(raws);
    PyObject *fields = PyList_New(n);
    if (fields == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = decode_order(cls, PyBytes_AS_STRING(PyList_GET_ITEM(raws, i)));
        if (f == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        PyList_SET_ITEM(fields, i, f);
    }
    return fields;
}

/* take_and_frame's work; decode 0: the fields are left out (None), for take_accept to
 * decode after it published (they are not on the latency-critical path) */
static PyObject *take_frame_core(PyObject *const *args, Py_ssize_t nargs, int decode) {
    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError, "take_and_frame() takes 10 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    PyObject *obj = args[0], *client_obj = args[5], *clock = args[7], *ref_of = args[8];
    PyObject *fields_type = args[9];
    if (!PyType_Check(fields_type) ||
        !PyType_IsSubtype((PyTypeObject *)fields_type, &PyTuple_Type) ||
        ((PyTypeObject *)fields_type)->tp_itemsize != PyTuple_Type.tp_itemsize ||
        ((PyTypeObject *)fields_type)->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_SetString(PyExc_TypeError, "fields_type must be a tuple subclass without "
                        "fields of its own (a NamedTuple)");
        return NULL;
    }
    Py_ssize_t ring_offset, capacity, max;
    unsigned long long position, generation, arrival = 0;
    if (arg_ssize(args[1], &ring_offset) || arg_ssize(args[2], &capacity) ||
        arg_u64(args[3], &position) || arg_ssize(args[4], &max) ||
        arg_u64(args[6], &generation))
        return NULL;
    if (!PyBytes_Check(client_obj)) {
        PyErr_SetString(PyExc_TypeError, "client must be bytes");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (ring_span(&view, ring_offset, capacity, sizeof(tradingd_order)) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (max < 1 || !ready_at(&view, ring_offset, capacity, position)) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE; /* nothing new: the idle round's answer, allocation-free */
    }
    PyObject *raws = take_from(&view, ring_offset, capacity, position, max);
    PyBuffer_Release(&view);
    if (raws == NULL) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(raws);
    PyObject *refs = NULL, *frames = NULL, *result = NULL, *fields = NULL;
    if (n == 0) { /* changed between the two looks (overwritten): nothing taken */
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    PyObject *now = PyObject_CallNoArgs(clock);
    if (now == NULL) goto done;
    arrival = PyLong_AsUnsignedLongLong(now);
    Py_DECREF(now);
    if (arrival == (unsigned long long)-1 && PyErr_Occurred()) goto done;
    refs = PyList_New(n);
    if (refs == NULL) goto done;
    if (decode) {
        fields = decode_all((PyTypeObject *)fields_type, raws);
        if (fields == NULL) goto done;
    } else {
        fields = Py_None;
        Py_INCREF(fields);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *b = PyBytes_AS_STRING(PyList_GET_ITEM(raws, i));
        uint32_t msg, type;
        memcpy(&msg, b + offsetof(tradingd_order, msg_type) - 4, 4);
        memcpy(&type, b + offsetof(tradingd_order, ord_type) - 4, 4);
        PyObject *ref;
        if (msg == TRADINGD_MSG_NEW_ORDER && type == TRADINGD_ORD_TYPE_MARKET) {
            ref = PyObject_CallFunction(ref_of, "y#", b + offsetof(tradingd_order, symbol) - 4,
                                        (Py_ssize_t)sizeof(((tradingd_order *)0)->symbol));
            if (ref == NULL) goto done;
            if (!PyFloat_Check(ref)) {
                Py_DECREF(ref);
                PyErr_SetString(PyExc_TypeError, "ref_of must return a float");
                goto done;
            }
        } else {
            ref = zero_float;
            Py_INCREF(ref);
        }
        PyList_SET_ITEM(refs, i, ref);
    }
    frames = frames_of(PyBytes_AS_STRING(client_obj), PyBytes_GET_SIZE(client_obj), generation,
                       position, arrival, raws, refs);
    if (frames == NULL) goto done;
    result = PyTuple_New(5);
    if (result == NULL) goto done;
    PyObject *arr = PyLong_FromUnsignedLongLong(arrival);
    if (arr == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    Py_INCREF(raws);
    Py_INCREF(frames);
    Py_INCREF(refs);
    Py_INCREF(fields);
    PyTuple_SET_ITEM(result, 0, raws);
    PyTuple_SET_ITEM(result, 1, frames);
    PyTuple_SET_ITEM(result, 2, refs);
    PyTuple_SET_ITEM(result, 3, arr);
    PyTuple_SET_ITEM(result, 4, fields);
done:
    Py_XDECREF(fields);
    Py_XDECREF(frames);
    Py_XDECREF(refs);
    Py_DECREF(raws);
    return result;
}

/* ---------------------------------------------------------------- reports */
static int as_u64(PyObject *v, uint64_t *out) {
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = x;
    return 0;
}

static int as_i64(PyObject *v, int64_t *out) {
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    *out = x;
    return 0;
}

static int as_u32(PyObject *v, uint32_t *out) {
    unsigned long x = PyLong_AsUnsignedLong(v);
    if (x == (unsigned long)-1 && PyErr_Occurred()) return -1;
    if (x > 0xFFFFFFFFul) {
        PyErr_SetString(PyExc_OverflowError, "value does not fit a u32 field");
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static int as_f64(PyObject *v, double *out) {
    double x = PyFloat_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) return -1;
    *out = x;
    return 0;
}

/* a Report tuple (tradingd/exec/protocol.py: the fields after the stamp, layout order) */
static int fill_report(PyObject *t, tradingd_report *r) {
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != REPORT_FIELDS) {
        PyErr_Format(PyExc_TypeError, "a report is a tuple of %d fields", REPORT_FIELDS);
        return -1;
    }
    PyObject **f = &PyTuple_GET_ITEM(t, 0);
    if (as_u32(f[0], &r->exec_type) || as_u64(f[1], &r->report_seq) ||
        as_u64(f[2], &r->client_order_id) || as_u32(f[3], &r->ord_status) ||
        as_u32(f[4], &r->reject_reason) || as_i64(f[5], &r->last_qty) ||
        as_f64(f[6], &r->last_px) || as_i64(f[7], &r->cum_qty) ||
        as_i64(f[8], &r->leaves_qty) || as_f64(f[9], &r->avg_px) ||
        as_i64(f[10], &r->market_seq) || as_u64(f[11], &r->transact_ns) ||
        as_u64(f[12], &r->order_send_ns) || as_u32(f[13], &r->side) ||
        as_u32(f[14], &r->report_kind) || as_u64(f[16], &r->client_seq))
        return -1;
    if (!PyBytes_Check(f[15])) {
        PyErr_SetString(PyExc_TypeError, "report symbol must be bytes");
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(f[15]);
    memset(r->symbol, 0, sizeof r->symbol); /* struct "16s": NUL-padded, cut at 16 */
    memcpy(r->symbol, PyBytes_AS_STRING(f[15]), n < 16 ? (size_t)n : 16);
    return 0;
}

/* publish_reports(buffer, ring_offset, capacity, cursor_offset, reports) -> new cursor
 * Publishes each report as ChannelWriter.publish does (mark, body, stamp, cursor). The
 * caller has checked the credit (free records) first, as for ChannelWriter.publish. */
static PyObject *publish_reports(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj, *reports;
    Py_ssize_t ring_offset, capacity, cursor_offset;
    if (!PyArg_ParseTuple(args, "OnnnO!", &obj, &ring_offset, &capacity, &cursor_offset,
                          &PyList_Type, &reports))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_WRITABLE) < 0) return NULL;
    PyObject *result = NULL;
    if (ring_span(&view, ring_offset, capacity, sizeof(tradingd_report)) < 0) goto done;
    if (cursor_offset < 0 || cursor_offset % 8 || cursor_offset + 8 > ring_offset) {
        PyErr_SetString(PyExc_ValueError, "cursor_offset must be an aligned header word");
        goto done;
    }
    uint64_t *cursor = (uint64_t *)((char *)view.buf + cursor_offset);
    char *ring = (char *)view.buf + ring_offset;
    uint64_t mask = (uint64_t)capacity - 1;
    uint64_t s = *cursor; /* the only writer */
    Py_ssize_t n = PyList_GET_SIZE(reports);
    for (Py_ssize_t i = 0; i < n; i++, s++) {
        tradingd_report body;
        if (fill_report(PyList_GET_ITEM(reports, i), &body) < 0) goto done;
        tradingd_report *rec = (tradingd_report *)(ring + (s & mask) * sizeof(tradingd_report));
        STORE_RLX(&rec->seq_lo, ~(uint32_t)s); /* mark: the slot reads as not written */
        __atomic_thread_fence(__ATOMIC_RELEASE);
        memcpy((char *)rec + 4, (const char *)&body + 4, sizeof body - 4);
        STORE_REL(&rec->seq_lo, (uint32_t)s); /* stamp after the body */
        STORE_REL(cursor, s + 1);
    }
    result = PyLong_FromUnsignedLongLong(s);
done:
    PyBuffer_Release(&view);
    return result;
}

/* ---------------------------------------------------------------- the accept path
 * take_accept: take_and_frame, then (when exec allows it) the round's latency-critical
 * path in the same call: the frames copied into the journal's mapping (the journal append
 * precedes every effect), then, for the leading run of records that are plain accepts,
 * the NEW report published into the client's report ring right away. Python applies every
 * record afterwards through engine.on_order, which stays the one place that decides; this
 * is its prediction for the one common case, checked by the tests (the same report bytes
 * and journal as the pure-Python path, which never predicts) and, for every record, by
 * the service (exec type and report number). The target status of an accept comes from
 * the caller (fsm.TRANSITIONS: the one transition table); the value sets (sides, types,
 * times in force) from tools/c/tradingd_orders.h, generated from the same enums.
 *
 * The checks are engine._validate's, in its order, for a new order; the first record that
 * is anything else (a cancel, a reject of any kind, garbage, no credit) ends the
 * prediction for the rest of the batch: those reports are Python's to publish, in order.
 */
static PyObject *str_report_seq;

static int is_side(uint32_t v) { return v == TRADINGD_SIDE_BUY || v == TRADINGD_SIDE_SELL; }
static int is_type(uint32_t v) {
    return v == TRADINGD_ORD_TYPE_MARKET || v == TRADINGD_ORD_TYPE_LIMIT;
}
static int is_tif(uint32_t v) {
    return v == TRADINGD_TIF_DAY || v == TRADINGD_TIF_GTC || v == TRADINGD_TIF_IOC;
}

#define ACCEPT_MAX_SYMBOLS 8
#define ACCEPT_MAX_BATCH 1024 /* predictions per call at most (the rest: Python's) */
typedef struct {
    char raw[16];
    double notional; /* open notional of (client, symbol) after the accepts so far */
} sym_notional;

/* 1: a NEW is predicted (report filled in); 0: not (Python decides); -1: error */
static int predict_accept(const tradingd_order *o, double ref, PyObject *ctx,
                          const uint64_t *ids, Py_ssize_t accepted, sym_notional *syms,
                          int *nsyms, uint64_t report_seq, uint64_t arrival,
                          tradingd_report *rep) {
    PyObject *symbols = PyTuple_GET_ITEM(ctx, 0), *seen = PyTuple_GET_ITEM(ctx, 1);
    PyObject *open = PyTuple_GET_ITEM(ctx, 2), *open_notional = PyTuple_GET_ITEM(ctx, 3);
    long long max_qty = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, 4));
    long long max_open = PyLong_AsLongLong(PyTuple_GET_ITEM(ctx, 5));
    double max_notional = PyFloat_AsDouble(PyTuple_GET_ITEM(ctx, 6));
    unsigned long new_status = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(ctx, 7));
    if (PyErr_Occurred()) return -1;
    if (o->msg_type != TRADINGD_MSG_NEW_ORDER) return 0;
    uint64_t oid = o->client_order_id;
    for (Py_ssize_t k = 0; k < accepted; k++)
        if (ids[k] == oid) return 0; /* a duplicate within the batch */
    PyObject *oid_obj = PyLong_FromUnsignedLongLong(oid);
    if (oid_obj == NULL) return -1;
    int dup = PySet_Contains(seen, oid_obj);
    Py_DECREF(oid_obj);
    if (dup != 0) return dup < 0 ? -1 : 0;
    if (!is_side(o->side) || !is_type(o->ord_type) || !is_tif(o->time_in_force)) return 0;
    size_t len = sizeof o->symbol;
    while (len && o->symbol[len - 1] == '\0') len--;
    if (len == 0) return 0;
    for (size_t k = 0; k < len; k++)
        if ((unsigned char)o->symbol[k] < 0x21 || (unsigned char)o->symbol[k] > 0x7E) return 0;
    PyObject *sym = PyUnicode_DecodeASCII(o->symbol, (Py_ssize_t)len, NULL);
    if (sym == NULL) return -1;
    int rc = 0, known = PySet_Contains(symbols, sym);
    if (known <= 0) {
        rc = known < 0 ? -1 : 0;
        goto out;
    }
    int64_t qty = o->quantity;
    if (qty <= 0) goto out;
    int is_limit = o->ord_type == TRADINGD_ORD_TYPE_LIMIT;
    if (is_limit && !(isfinite(o->limit_price) && o->limit_price > 0)) goto out;
    if (max_qty && qty > max_qty) goto out;
    if (max_open && PyDict_Size(open) + accepted >= max_open) goto out;
    double px = is_limit ? o->limit_price : ref;
    /* the running open notional of this symbol (engine: on[symbol] += qty * price_ref) */
    sym_notional *sn = NULL;
    for (int k = 0; k < *nsyms; k++)
        if (memcmp(syms[k].raw, o->symbol, 16) == 0) sn = &syms[k];
    if (sn == NULL) {
        if (*nsyms == ACCEPT_MAX_SYMBOLS) goto out; /* many symbols in one batch: Python's */
        PyObject *cur = PyDict_GetItemWithError(open_notional, sym);
        if (cur == NULL && PyErr_Occurred()) {
            rc = -1;
            goto out;
        }
        double v = cur == NULL ? 0.0 : PyFloat_AsDouble(cur);
        if (v == -1.0 && PyErr_Occurred()) {
            rc = -1;
            goto out;
        }
        sn = &syms[(*nsyms)++];
        memcpy(sn->raw, o->symbol, 16);
        sn->notional = v;
    }
    if (max_notional != 0.0) {
        if (!(isfinite(px) && px > 0)) goto out;
        if (sn->notional + (double)qty * px > max_notional) goto out;
    }
    double price_ref = isfinite(px) ? px : 0.0;
    sn->notional = sn->notional + (double)qty * price_ref;
    memset(rep, 0, sizeof *rep);
    rep->exec_type = TRADINGD_EXEC_TYPE_NEW;
    rep->report_seq = report_seq;
    rep->client_order_id = oid;
    rep->ord_status = (uint32_t)new_status;
    rep->leaves_qty = qty;
    rep->market_seq = -1;
    rep->transact_ns = arrival;
    rep->order_send_ns = o->send_ns;
    rep->side = o->side;
    rep->report_kind = TRADINGD_REPORT_KIND_EXECUTION;
    memcpy(rep->symbol, o->symbol, 16);
    rep->client_seq = o->client_seq;
    rc = 1;
out:
    Py_DECREF(sym);
    return rc;
}

/* take_accept(buffer, ring_offset, capacity, position, max, client, generation, clock,
 *             ref_of, fields_type, journal, journal_end, reports, report_capacity,
 *             report_generation, ctx)
 *   -> (raws, frames, refs, arrival_ns, fields, journaled, published) | None
 * journal: the journal's writable mapping or None; journaled: the bytes copied there at
 * journal_end (0: no room, Python appends them). reports: the report ring's writable
 * mapping or None (no prediction); ctx: (engine.symbols, book.seen_ids, book.open,
 * book.open_notional, max_order_qty, max_open_orders, max_notional, status after ACCEPT,
 * book) or None; published: NEW reports written (report numbers book.report_seq + 1...). */
static PyObject *take_accept(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 16) {
        PyErr_Format(PyExc_TypeError, "take_accept() takes 16 arguments (%zd given)", nargs);
        return NULL;
    }
    (void)self;
    PyObject *got = take_frame_core(args, 10, 0);
    if (got == NULL || got == Py_None) return got;
    PyObject *jobj = args[10], *wobj = args[12], *ctx = args[15];
    PyObject *frames = PyTuple_GET_ITEM(got, 1), *raws = PyTuple_GET_ITEM(got, 0);
    PyObject *refs = PyTuple_GET_ITEM(got, 2);
    Py_ssize_t journaled = 0, published = 0;
    Py_buffer jv, wv, ov;
    int have_j = 0, have_w = 0, have_o = 0;
    PyObject *result = NULL;
    if (jobj != Py_None) {
        Py_ssize_t jend;
        if (arg_ssize(args[11], &jend)) goto fail;
        if (PyObject_GetBuffer(jobj, &jv, PyBUF_WRITABLE) < 0) goto fail;
        have_j = 1;
        Py_ssize_t n = PyBytes_GET_SIZE(frames);
        if (jend >= 0 && jend + n <= jv.len) {
            memcpy((char *)jv.buf + jend, PyBytes_AS_STRING(frames), (size_t)n);
            journaled = n;
        }
    }
    if (journaled && wobj != Py_None && ctx != Py_None) {
        if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 9 ||
            !PyAnySet_Check(PyTuple_GET_ITEM(ctx, 0)) ||
            !PyAnySet_Check(PyTuple_GET_ITEM(ctx, 1)) ||
            !PyDict_Check(PyTuple_GET_ITEM(ctx, 2)) || !PyDict_Check(PyTuple_GET_ITEM(ctx, 3))) {
            PyErr_SetString(PyExc_TypeError, "ctx must be (symbols set, seen_ids set, open "
                            "dict, open_notional dict, max_qty, max_open, max_notional, "
                            "status, book)");
            goto fail;
        }
        Py_ssize_t ring_offset, wcap;
        unsigned long long wgen;
        if (arg_ssize(args[1], &ring_offset) || arg_ssize(args[13], &wcap) ||
            arg_u64(args[14], &wgen))
            goto fail;
        PyObject *seq_obj = PyObject_GetAttr(PyTuple_GET_ITEM(ctx, 8), str_report_seq);
        if (seq_obj == NULL) goto fail;
        unsigned long long report_seq = PyLong_AsUnsignedLongLong(seq_obj);
        Py_DECREF(seq_obj);
        if (report_seq == (unsigned long long)-1 && PyErr_Occurred()) goto fail;
        if (PyObject_GetBuffer(wobj, &wv, PyBUF_WRITABLE) < 0) goto fail;
        have_w = 1;
        if (PyObject_GetBuffer(args[0], &ov, PyBUF_SIMPLE) < 0) goto fail;
        have_o = 1;
        if (ring_span(&wv, ring_offset, wcap, sizeof(tradingd_report)) < 0 ||
            ov.len < (Py_ssize_t)sizeof(tradingd_channel_header))
            goto fail;
        const tradingd_channel_header *oh = (const tradingd_channel_header *)ov.buf;
        tradingd_channel_header *wh = (tradingd_channel_header *)wv.buf;
        uint64_t consumed = LOAD_ACQ(&oh->peer_generation) == wgen
                                ? LOAD_ACQ(&oh->peer_consumed) : 0;
        uint64_t s = wh->ring_cursor; /* exec is the only writer */
        int64_t credit = (int64_t)wcap - (int64_t)(s - consumed);
        unsigned long long arrival = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(got, 3));
        Py_ssize_t n = PyList_GET_SIZE(raws);
        uint64_t ids[ACCEPT_MAX_BATCH];
        sym_notional syms[ACCEPT_MAX_SYMBOLS];
        int nsyms = 0;
        char *ring = (char *)wv.buf + ring_offset;
        uint64_t mask = (uint64_t)wcap - 1;
        for (Py_ssize_t i = 0; i < n && i < ACCEPT_MAX_BATCH && published < credit; i++) {
            tradingd_order o;
            memcpy((char *)&o + 4, PyBytes_AS_STRING(PyList_GET_ITEM(raws, i)), ORDER_BODY);
            double ref = PyFloat_AS_DOUBLE(PyList_GET_ITEM(refs, i));
            tradingd_report body;
            int ok = predict_accept(&o, ref, ctx, ids, published, syms, &nsyms,
                                    report_seq + (uint64_t)published + 1, arrival, &body);
            if (ok < 0) goto fail;
            if (!ok) break;
            ids[published++] = o.client_order_id;
            tradingd_report *rec = (tradingd_report *)(ring + (s & mask) * sizeof body);
            STORE_RLX(&rec->seq_lo, ~(uint32_t)s);
            __atomic_thread_fence(__ATOMIC_RELEASE);
            memcpy((char *)rec + 4, (const char *)&body + 4, sizeof body - 4);
            STORE_REL(&rec->seq_lo, (uint32_t)s);
            s++;
            STORE_REL(&wh->ring_cursor, s);
        }
    }
    result = PyTuple_New(7);
    if (result == NULL) goto fail;
    for (int k = 0; k < 4; k++) {
        PyObject *v = PyTuple_GET_ITEM(got, k);
        Py_INCREF(v);
        PyTuple_SET_ITEM(result, k, v);
    }
    {   /* the fields: after the reports, off the latency-critical path */
        PyObject *fields = decode_all((PyTypeObject *)args[9], raws);
        if (fields == NULL) {
            Py_CLEAR(result);
            goto fail;
        }
        PyTuple_SET_ITEM(result, 4, fields);
    }
    PyObject *jn = PyLong_FromSsize_t(journaled), *pn = PyLong_FromSsize_t(published);
    if (jn == NULL || pn == NULL) {
        Py_XDECREF(jn);
        Py_XDECREF(pn);
        Py_CLEAR(result);
        goto fail;
    }
    PyTuple_SET_ITEM(result, 5, jn);
    PyTuple_SET_ITEM(result, 6, pn);
fail:
    if (have_j) PyBuffer_Release(&jv);
    if (have_w) PyBuffer_Release(&wv);
    if (have_o) PyBuffer_Release(&ov);
    Py_DECREF(got);
    return result;
}

/* ---------------------------------------------------------------- the idle spin
 * wait_ready(rings, ring_offset, deadline_ns) -> bool
 * rings: a list of (buffer, capacity, position), the order rings exec reads. Spins, with
 * the GIL released (the metrics thread runs meanwhile), until the record at `position` of
 * one of them is published (True) or CLOCK_MONOTONIC reaches deadline_ns (False). A lone
 * order is seen within a few loads of its stamp, not after the rest of an idle Python
 * round; exec's loop calls this only when a round found nothing and nothing else is due
 * before the deadline. */
#define WAIT_MAX_RINGS 64
static PyObject *wait_ready(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "wait_ready(rings: list, ring_offset, deadline_ns)");
        return NULL;
    }
    Py_ssize_t ring_offset;
    unsigned long long deadline;
    if (arg_ssize(args[1], &ring_offset) || arg_u64(args[2], &deadline)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    if (n > WAIT_MAX_RINGS) n = WAIT_MAX_RINGS; /* (the others: the next round looks) */
    Py_buffer views[WAIT_MAX_RINGS];
    const uint32_t *stamps[WAIT_MAX_RINGS];
    uint32_t want[WAIT_MAX_RINGS];
    Py_ssize_t got = 0;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(args[0], i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            PyErr_SetString(PyExc_TypeError, "a ring is (buffer, capacity, position)");
            goto done;
        }
        Py_ssize_t capacity;
        unsigned long long position;
        if (arg_ssize(PyTuple_GET_ITEM(t, 1), &capacity) ||
            arg_u64(PyTuple_GET_ITEM(t, 2), &position))
            goto done;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(t, 0), &views[got], PyBUF_SIMPLE) < 0)
            goto done;
        got++;
        if (ring_span(&views[got - 1], ring_offset, capacity, sizeof(tradingd_order)) < 0)
            goto done;
        stamps[i] = &((const tradingd_order *)((const char *)views[i].buf + ring_offset +
                      (position & ((uint64_t)capacity - 1)) * sizeof(tradingd_order)))->seq_lo;
        want[i] = (uint32_t)position;
    }
    int ready = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        for (int spin = 0; spin < 64 && !ready; spin++) {
            for (Py_ssize_t i = 0; i < n; i++) {
                if (LOAD_ACQ(stamps[i]) == want[i]) {
                    ready = 1;
                    break;
                }
            }
#if defined(__x86_64__) || defined(__i386__)
            if (!ready) __builtin_ia32_pause();
#endif
        }
        if (ready) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec >=
            deadline)
            break;
    }
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(ready);
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"take_orders", take_orders, METH_VARARGS,
     "take_orders(buffer, ring_offset, capacity, position, max) -> list[bytes]\n"
     "Up to max order records from position on (each the bytes after its stamp); stops at "
     "the first record not published yet."},
    {"encode_orders", encode_orders, METH_VARARGS,
     "encode_orders(client, generation, first_seq, arrival_ns, raws, refs) -> bytes\n"
     "The journal frames of OrderIn entries, one per raw record, joined."},
    {"take_and_frame", (PyCFunction)(void (*)(void))take_and_frame, METH_FASTCALL,
     "take_and_frame(buffer, ring_offset, capacity, position, max, client, generation, "
     "clock, ref_of, fields_type) -> (raws, frames, refs, arrival_ns, fields) | None\n"
     "take_orders; then, if any, the arrival time clock(), each record decoded as a "
     "fields_type, its reference price (ref_of(symbol) for a market new order, else 0.0) "
     "and encode_orders, in one call."},
    {"take_accept", (PyCFunction)(void (*)(void))take_accept, METH_FASTCALL,
     "take_accept(buffer, ring_offset, capacity, position, max, client, generation, clock, "
     "ref_of, fields_type, journal, journal_end, reports, report_capacity, "
     "report_generation, ctx) -> (raws, frames, refs, arrival_ns, fields, journaled, "
     "published) | None\n"
     "take_and_frame; then the frames copied into the journal mapping at journal_end "
     "(if they fit) and the NEW reports of the leading plain accepts published."},
    {"wait_ready", (PyCFunction)(void (*)(void))wait_ready, METH_FASTCALL,
     "wait_ready(rings, ring_offset, deadline_ns) -> bool\n"
     "Spin (GIL released) until one of the order rings [(buffer, capacity, position)] has "
     "its next record published (True) or CLOCK_MONOTONIC reaches deadline_ns (False)."},
    {"publish_reports", publish_reports, METH_VARARGS,
     "publish_reports(buffer, ring_offset, capacity, cursor_offset, reports) -> int\n"
     "Publish report tuples into a report ring; returns the new cursor."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_execfast",
    "tradingd-exec's ring and journal byte work in C (reference: tradingd.exec.execfast).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__execfast(void) {
    crc_init();
    if (str_report_seq == NULL && (str_report_seq = PyUnicode_InternFromString("report_seq")) == NULL)
        return NULL;
    if (zero_float == NULL && (zero_float = PyFloat_FromDouble(0.0)) == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)TRADINGD_CHANNEL_FINGERPRINT);
    if (PyModule_AddStringConstant(m, "CHANNEL_FINGERPRINT_HEX", fp) < 0 ||
        PyModule_AddIntConstant(m, "ORDER_BODY_SIZE", (long)ORDER_BODY) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
