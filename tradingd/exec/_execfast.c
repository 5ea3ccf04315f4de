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

/* METH_FASTCALL: this runs once per ring per round, idle rounds included */
static PyObject *take_and_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
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
    fields = PyList_New(n);
    if (refs == NULL || fields == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *b = PyBytes_AS_STRING(PyList_GET_ITEM(raws, i));
        PyObject *f = decode_order((PyTypeObject *)fields_type, b);
        if (f == NULL) goto done;
        PyList_SET_ITEM(fields, i, f);
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
