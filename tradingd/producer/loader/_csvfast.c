/* tradingd.producer.loader._csvfast: a block's regular lines tokenised and parsed in one pass.
 *
 * Why: the numpy fast path (tokens.py, swar.py, timestamps.py) makes a dozen passes over
 * each block and its temporaries (masks, offsets, digit words): ~3.5 M rows/s, against
 * pandas.read_csv's ~5 M. One pass in C reads every field once, straight from the bytes,
 * and writes each row's bar into the output array: the fields of a line are found, the
 * fixed-width timestamps and the plain decimals parsed, and the bar stored, before the
 * next line is looked at.
 *
 * Exactness is the same contract as the numpy path's: a line is parsed here only when the
 * result is exactly what the per-row reference (exact.py) gives; anything else is
 * *flagged* and goes to that reference, which decides the value or the reject reason.
 *
 * - Numbers: ``[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?`` (the reference's grammar, no
 *   spaces) whose digits form an integer m <= 2**53 and whose power of ten p has
 *   |p| <= 22: m and 10**|p| are exact doubles, so one IEEE multiply or divide rounds
 *   the value correctly, as float() does (Clinger's fast path). Others are flagged.
 * - Timestamps: the layouts the plan compiled (timestamps.py's _Layout: digit, literal
 *   and one-of bytes at fixed places, picked by the field's width) and the table of
 *   month starts that _civil_to_ns uses; the same range and validity checks.
 * - Fields: a line needs the plan's field count; a quote may only enclose a whole field
 *   (no quote inside one, none escaped); a CR only before the LF. The reference's csv
 *   reader decides the rest.
 *
 * - Formatted numbers (``46,629.3``, ``1.234,5``, ``131.48K``): formatted.py's grammar,
 *   the same rule for the value.
 *
 * Columns whose parser is not here (epoch numbers, month names, AM/PM) are
 * handed back as (begin, end) offsets for the numpy parsers. The pure numpy path stays
 * the reference and the fallback when this module is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define MAX_WIDTH 64  /* widest timestamp layout (blocks.BACK) */
#define NCOMP 7       /* year, month, day, hour, minute, second, nanosecond */

enum { K_SKIP = 0, K_FLOAT = 1, K_STAMP = 2, K_TIME = 3, K_OFFSETS = 4, K_FORMATTED = 5,
       K_FORMATTED_SUFFIX = 6 };
enum { P_DIGIT = 0, P_LITERAL = 1 };

typedef struct {
    int width;
    int year2;
    uint8_t type[MAX_WIDTH];
    uint8_t comp[MAX_WIDTH];
    uint8_t nallow[MAX_WIDTH];
    uint8_t allow[MAX_WIDTH][4];
    int64_t weight[MAX_WIDTH];
    int64_t base[NCOMP];
    /* derived for SWAR (as timestamps._Layout.parse): per 8-byte word of the field, the
     * expected bytes ('0' where a digit goes), which bytes are checked, and what added to
     * a byte sets its bit 7 when it is too large (0x76: digit, 0x7F: literal) */
    int nwords;
    uint64_t expected[MAX_WIDTH / 8], keep[MAX_WIDTH / 8], limit[MAX_WIDTH / 8],
        high[MAX_WIDTH / 8];
    int nchoices;
    uint8_t choice_at[MAX_WIDTH];
    /* per component: where its digits start, how many, the unit of the last one */
    uint8_t comp_at[NCOMP], comp_len[NCOMP];
    int64_t comp_unit[NCOMP];
} Layout;

typedef struct {
    int count;
    Layout *items;
    int8_t by_width[MAX_WIDTH + 1];
} Layouts;

typedef struct {
    PyObject_HEAD
    uint8_t delimiter;
    Py_ssize_t ncols;
    uint8_t *kind;     /* per column: K_* */
    int32_t *slot;     /* K_FLOAT: byte offset in the record; K_OFFSETS: output index */
    Py_ssize_t noffsets;
    Py_ssize_t stride; /* bytes per record */
    Py_ssize_t event_at;
    Py_ssize_t zero_at; /* a record field set to 0.0 (volume absent), or -1 */
    int checks;         /* count the bars failing checks.check_values' tests */
    Py_ssize_t check_at[5]; /* record offsets of open, high, low, close, volume */
    Layouts stamps[2]; /* [0]: K_STAMP, [1]: K_TIME */
    int64_t *month_starts;
    Py_ssize_t months;
    int64_t first_year;
    int64_t min_day, max_day;
    uint8_t stops[256]; /* bytes that end an unquoted field */
    int ready;          /* __init__ completed: parse() may run */
    uint8_t thousands;  /* K_FORMATTED: the thousands separator (0: none) */
    uint8_t mark;       /* K_FORMATTED: the decimal mark */
} Parser;

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define MANTISSA_MAX (1ull << 53)

static const uint64_t POW10_INT[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                       100000000};

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The digits at p appended to *m, eight at a time (SWAR: the bytes of one 64-bit load,
 * checked and converted with three multiply-shift steps), and how many there were. No
 * overflow check: the caller refuses more than 19 digits, which cannot wrap. Loads up to
 * 8 bytes past the digits: parse() requires that slack after the block. */
static inline const uint8_t *digits(const uint8_t *p, uint64_t *m, Py_ssize_t *count) {
    uint64_t v = *m;
    Py_ssize_t c = 0;
    for (;;) {
        uint64_t w = load64(p) ^ 0x3030303030303030ull;
        uint64_t bad = (((w & 0x7F7F7F7F7F7F7F7Full) + 0x7676767676767676ull) | w) &
                       0x8080808080808080ull; /* bit 7 of each byte that is not 0..9 */
        int n = bad ? __builtin_ctzll(bad) >> 3 : 8;
        if (n == 0) break;
        if (n < 8) w <<= 8 * (8 - n); /* the digits to the top: leading zeros below */
        w = (w * 10 + (w >> 8)) & 0x00FF00FF00FF00FFull;
        w = (w * 100 + (w >> 16)) & 0x0000FFFF0000FFFFull;
        w = (w * 10000 + (w >> 32)) & 0xFFFFFFFFull;
        v = v * POW10_INT[n] + w;
        c += n;
        p += n;
        if (n < 8) break;
    }
    *m = v;
    *count = c;
    return p;
}

/* A plain decimal from p exactly as float() reads it: ``[+-]?(\d+\.?\d*|\.\d+)
 * ([eE][+-]?\d+)?``. Returns where it stopped (the caller checks that the field ends
 * there), or NULL if it is not one of the numbers parsed here (flagged). Loads up to 8
 * bytes past its end (see digits()); every line ends in a \n, where the digits stop. */
static inline const uint8_t *parse_number_at(const uint8_t *p, double *out) {
    int neg = 0;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    uint64_t m = 0;
    Py_ssize_t whole, frac = 0;
    p = digits(p, &m, &whole);
    if (*p == '.') p = digits(p + 1, &m, &frac);
    if (whole + frac == 0 || whole + frac > 19) return NULL; /* 19 digits cannot wrap */
    if (m > MANTISSA_MAX) return NULL;
    long ex = 0;
    if ((*p | 0x20) == 'e') {
        p++;
        int eneg = 0;
        if (*p == '+' || *p == '-') {
            eneg = *p == '-';
            p++;
        }
        const uint8_t *q = p;
        unsigned d;
        while ((d = (unsigned)(*p - '0')) < 10u) {
            if (ex < 100000) ex = ex * 10 + (long)d;
            p++;
        }
        if (p == q) return NULL;
        if (eneg) ex = -ex;
    }
    long power = ex - (long)frac;
    if (power < -22 || power > 22) return NULL;
    double v = (double)m;
    if (power >= 0)
        v *= POW10[power];
    else
        v /= POW10[-power];
    *out = neg ? -v : v;
    return p;
}

/* A formatted number filling [p, e) exactly as formatted.formatted_value reads it:
 * ``[+-]?(\d{1,3}(T\d{3})+|\d+)(M\d*)?`` or ``[+-]?M\d+`` (T the thousands separator, M
 * the decimal mark), then a K/M/B suffix (any case) where allowed; the value of its
 * digits times 10**(suffix - decimals), by Clinger's rule as in parse_number_at. Returns
 * 0 if flagged. */
static inline int parse_formatted(const uint8_t *p, const uint8_t *e, uint8_t thousands,
                                  uint8_t mark, int suffixes, double *out) {
    long ex = 0;
    if (suffixes && e > p) {
        uint8_t s = e[-1] | 0x20;
        ex = s == 'k' ? 3 : s == 'm' ? 6 : s == 'b' ? 9 : 0;
        if (ex) e--;
    }
    int neg = 0;
    if (p < e && (*p == '+' || *p == '-')) {
        neg = *p == '-';
        p++;
    }
    uint64_t m = 0;
    unsigned d;
    Py_ssize_t ndigits = 0, whole = 0, frac = 0;
    while (p < e && (d = (unsigned)(*p - '0')) < 10u) {
        m = m * 10 + d;
        p++;
        whole++;
    }
    if (thousands && p < e && *p == thousands) {
        if (whole < 1 || whole > 3) return 0;
        while (p < e && *p == thousands) {
            p++;
            for (int k = 0; k < 3; k++, p++) {
                if (p >= e || (d = (unsigned)(*p - '0')) >= 10u) return 0;
                m = m * 10 + d;
                whole++;
                if (whole > 19) return 0;
            }
        }
        if (p < e && (unsigned)(*p - '0') < 10u) return 0; /* a group of four */
    }
    if (p < e && *p == mark) {
        p++;
        while (p < e && (d = (unsigned)(*p - '0')) < 10u) {
            m = m * 10 + d;
            p++;
            frac++;
        }
    }
    ndigits = whole + frac;
    if (p != e || ndigits == 0 || ndigits > 19 || m > MANTISSA_MAX) return 0;
    long power = ex - (long)frac;
    if (power < -22 || power > 22) return 0;
    double v = (double)m;
    if (power >= 0)
        v *= POW10[power];
    else
        v /= POW10[-power];
    *out = neg ? -v : v;
    return 1;
}

/* A fixed-width timestamp: ns as written, or 0 (flagged). The field's words are checked
 * at once (each byte xor-ed with the expected one: a digit must give 0..9, a literal 0),
 * then each component's digits read; loads up to 7 bytes past the field. */
static inline int parse_stamp(const Parser *self, const Layouts *set, const uint8_t *p,
                              Py_ssize_t width, int64_t *out) {
    if (width > MAX_WIDTH || set->by_width[width] < 0) return 0;
    const Layout *l = &set->items[set->by_width[width]];
    uint64_t errors = 0;
    for (int j = 0; j < l->nwords; j++) {
        uint64_t v = (load64(p + 8 * j) ^ l->expected[j]) & l->keep[j];
        errors |= (((v & 0x7F7F7F7F7F7F7F7Full) + l->limit[j]) | v) & l->high[j];
    }
    if (errors) return 0;
    for (int k = 0; k < l->nchoices; k++) {
        int i = l->choice_at[k], hit = 0;
        for (int a = 0; a < l->nallow[i]; a++) hit |= p[i] == l->allow[i][a];
        if (!hit) return 0;
    }
    int64_t c[NCOMP];
    for (int k = 0; k < NCOMP; k++) {
        int64_t v = 0;
        const uint8_t *d = p + l->comp_at[k];
        for (int i = 0; i < l->comp_len[k]; i++) v = v * 10 + (d[i] - '0');
        c[k] = l->comp_len[k] ? v * l->comp_unit[k] : l->base[k];
    }
    if (l->year2) c[0] += c[0] < 69 ? 2000 : 1900;
    int64_t index = (c[0] - self->first_year) * 12 + c[1] - 1;
    if (index < 0 || index >= self->months || c[1] < 1 || c[1] > 12) return 0;
    int64_t days = self->month_starts[index] + (c[2] - 1);
    if (c[2] < 1 || days >= self->month_starts[index + 1] || c[3] > 23 || c[4] > 59 ||
        c[5] > 59 || days < self->min_day || days > self->max_day)
        return 0;
    *out = (((days * 24 + c[3]) * 60 + c[4]) * 60 + c[5]) * 1000000000LL + c[6];
    return 1;
}

/* The SWAR tables and component runs of a layout read byte by byte; -1 if a component's
 * digits are not one run with decimal weights (never so for _Layout.program). */
static int derive_layout(Layout *l) {
    l->nwords = (l->width + 7) / 8;
    for (int k = 0; k < NCOMP; k++) l->comp_len[k] = 0;
    for (int i = 0; i < l->width; i++) {
        int word = i / 8, shift = 8 * (i % 8);
        if (l->type[i] == P_DIGIT) {
            int k = l->comp[i];
            if (l->comp_len[k] == 0)
                l->comp_at[k] = (uint8_t)i;
            else if (l->comp_at[k] + l->comp_len[k] != i || l->weight[i - 1] != 10 * l->weight[i])
                return -1;
            l->comp_len[k]++;
            l->comp_unit[k] = l->weight[i];
            l->expected[word] |= (uint64_t)'0' << shift;
            l->limit[word] |= 0x76ull << shift;
        } else if (l->nallow[i] == 1) {
            l->expected[word] |= (uint64_t)l->allow[i][0] << shift;
            l->limit[word] |= 0x7Full << shift;
        } else {
            l->choice_at[l->nchoices++] = (uint8_t)i;
            continue;
        }
        l->keep[word] |= 0xFFull << shift;
        l->high[word] |= 0x80ull << shift;
    }
    for (int k = 0; k < NCOMP; k++)
        if (l->comp_len[k] && l->base[k] != 0) return -1;
    return 0;
}

/* ----------------------------------------------------------------------------------- */
/* Parser(delimiter, kinds, slots, noffsets, stride, event_at, zero_at, stamps, times,   */
/*        month_starts, first_year, min_day, max_day)                                   */
/* ----------------------------------------------------------------------------------- */

static void parser_clear_layouts(Parser *self) {
    for (int s = 0; s < 2; s++) {
        PyMem_Free(self->stamps[s].items);
        self->stamps[s].items = NULL;
        self->stamps[s].count = 0;
    }
}

static void parser_dealloc(Parser *self) {
    PyMem_Free(self->kind);
    PyMem_Free(self->slot);
    PyMem_Free(self->month_starts);
    parser_clear_layouts(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* One layout from (width, year2, types, comps, allowed (4 bytes per place, 0 = unused),
 * weights (list of int), base (tuple of 7 ints)). */
static int read_layout(PyObject *item, Layout *l) {
    int width, year2;
    Py_buffer types, comps, allowed;
    PyObject *weights, *base;
    if (!PyArg_ParseTuple(item, "iiy*y*y*OO", &width, &year2, &types, &comps, &allowed,
                          &weights, &base))
        return -1;
    int rc = -1;
    memset(l, 0, sizeof *l);
    if (width < 1 || width > MAX_WIDTH || types.len != width || comps.len != width ||
        allowed.len != 4 * width || !PyList_Check(weights) ||
        PyList_GET_SIZE(weights) != width || !PyTuple_Check(base) ||
        PyTuple_GET_SIZE(base) != NCOMP) {
        PyErr_SetString(PyExc_ValueError, "malformed timestamp layout");
        goto done;
    }
    l->width = width;
    l->year2 = year2;
    for (int i = 0; i < width; i++) {
        l->type[i] = ((const uint8_t *)types.buf)[i];
        l->comp[i] = ((const uint8_t *)comps.buf)[i];
        if (l->comp[i] >= NCOMP) {
            PyErr_SetString(PyExc_ValueError, "timestamp layout: component out of range");
            goto done;
        }
        for (int k = 0; k < 4; k++) {
            uint8_t a = ((const uint8_t *)allowed.buf)[4 * i + k];
            if (a) l->allow[i][l->nallow[i]++] = a;
        }
        l->weight[i] = PyLong_AsLongLong(PyList_GET_ITEM(weights, i));
        if (l->weight[i] == -1 && PyErr_Occurred()) goto done;
    }
    for (int k = 0; k < NCOMP; k++) {
        l->base[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(base, k));
        if (l->base[k] == -1 && PyErr_Occurred()) goto done;
    }
    if (derive_layout(l) < 0) {
        PyErr_SetString(PyExc_ValueError, "timestamp layout: a component is not one run");
        goto done;
    }
    rc = 0;
done:
    PyBuffer_Release(&types);
    PyBuffer_Release(&comps);
    PyBuffer_Release(&allowed);
    return rc;
}

static int read_layouts(PyObject *seq, Layouts *set) {
    memset(set->by_width, -1, sizeof set->by_width);
    PyObject *fast = PySequence_Fast(seq, "layouts: expected a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > 127) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many timestamp layouts");
        return -1;
    }
    set->items = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Layout));
    if (!set->items) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    set->count = (int)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_layout(PySequence_Fast_GET_ITEM(fast, i), &set->items[i]) < 0) {
            Py_DECREF(fast);
            return -1;
        }
        set->by_width[set->items[i].width] = (int8_t)i;
    }
    Py_DECREF(fast);
    return 0;
}

static int parser_init(Parser *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"delimiter",  "kinds",    "slots",  "noffsets",
                             "stride",     "event_at", "zero_at", "stamps",
                             "times",      "month_starts", "first_year", "min_day",
                             "max_day",    "thousands", "decimal", "checks", NULL};
    int delimiter;
    Py_buffer kinds, slots, months;
    Py_ssize_t noffsets, stride, event_at, zero_at;
    PyObject *stamps, *times;
    long long first_year, min_day, max_day;
    int thousands = 0, decimal = '.';
    PyObject *checks = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iy*y*nnnnOOy*LLL|iiO", kwlist, &delimiter,
                                     &kinds, &slots, &noffsets, &stride, &event_at, &zero_at,
                                     &stamps, &times, &months, &first_year, &min_day,
                                     &max_day, &thousands, &decimal, &checks))
        return -1;
    int rc = -1;
    self->ready = 0;
    PyMem_Free(self->kind);
    PyMem_Free(self->slot);
    PyMem_Free(self->month_starts);
    self->kind = NULL;
    self->slot = NULL;
    self->month_starts = NULL;
    parser_clear_layouts(self);
    Py_ssize_t ncols = kinds.len;
    if (delimiter < 1 || delimiter > 255 || delimiter == '"' || delimiter == '\n' ||
        delimiter == '\r' || ncols < 1 || slots.len != 4 * ncols ||
        months.len % 8 != 0 || months.len < 16 || stride < 8 || event_at < 0 ||
        event_at + 8 > stride || zero_at + 8 > stride || noffsets < 0 || thousands < 0 ||
        thousands > 127 || decimal < 1 || decimal > 127 || thousands == decimal ||
        (unsigned)(thousands - '0') < 10u || (unsigned)(decimal - '0') < 10u) {
        PyErr_SetString(PyExc_ValueError, "Parser: inconsistent arguments");
        goto done;
    }
    self->delimiter = (uint8_t)delimiter;
    self->ncols = ncols;
    self->thousands = (uint8_t)thousands;
    self->mark = (uint8_t)decimal;
    self->kind = PyMem_Malloc((size_t)ncols);
    self->slot = PyMem_Malloc(sizeof(int32_t) * (size_t)ncols);
    self->month_starts = PyMem_Malloc((size_t)months.len);
    if (!self->kind || !self->slot || !self->month_starts) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(self->kind, kinds.buf, (size_t)ncols);
    memcpy(self->slot, slots.buf, sizeof(int32_t) * (size_t)ncols);
    memcpy(self->month_starts, months.buf, (size_t)months.len);
    for (Py_ssize_t c = 0; c < ncols; c++) {
        uint8_t k = self->kind[c];
        int32_t s = self->slot[c];
        int value = k == K_FLOAT || k == K_FORMATTED || k == K_FORMATTED_SUFFIX;
        if (k > K_FORMATTED_SUFFIX || (value && (s < 0 || s + 8 > stride)) ||
            (k == K_OFFSETS && (s < 0 || s >= noffsets))) {
            PyErr_SetString(PyExc_ValueError, "Parser: bad column kind or slot");
            goto done;
        }
    }
    self->months = months.len / 8 - 1;
    self->noffsets = noffsets;
    self->stride = stride;
    self->event_at = event_at;
    self->zero_at = zero_at;
    self->checks = 0;
    if (checks != Py_None) {
        if (!PyArg_ParseTuple(checks, "nnnnn", &self->check_at[0], &self->check_at[1],
                              &self->check_at[2], &self->check_at[3], &self->check_at[4]))
            goto done;
        for (int k = 0; k < 5; k++) {
            if (self->check_at[k] < 0 || self->check_at[k] + 8 > stride) {
                PyErr_SetString(PyExc_ValueError, "Parser: checks offset outside a record");
                goto done;
            }
        }
        self->checks = 1;
    }
    self->first_year = first_year;
    self->min_day = min_day;
    self->max_day = max_day;
    if (read_layouts(stamps, &self->stamps[0]) < 0 || read_layouts(times, &self->stamps[1]) < 0)
        goto done;
    memset(self->stops, 0, sizeof self->stops);
    self->stops[self->delimiter] = self->stops['\n'] = self->stops['\r'] = self->stops['"'] = 1;
    self->ready = 1;
    rc = 0;
done:
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&slots);
    PyBuffer_Release(&months);
    return rc;
}

static int get_out(PyObject *obj, Py_buffer *view, Py_ssize_t need, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, need %zd", what, view->len, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* parse(buf, start, stop, cap, records, lines, starts, offsets, flagged)
 *
 * Lines from ``start`` (a line's first byte) up to ``stop`` (just past a \n), at most
 * ``cap`` of them (``buf`` must hold 8 bytes after ``stop``): a regular line's bar goes to records[row] (``stride`` bytes each), its
 * index (from 0 at ``start``) to lines[row], its first byte's offset to starts[row], the
 * (begin, end) of each K_OFFSETS column to offsets[2 * slot][row], offsets[2 * slot + 1][row]
 * (arrays of ``cap`` int64 each); a flagged line's (index, start, end of text before the
 * CR LF) go to flagged[0..2][i] (three arrays of ``cap``). Returns (rows, flagged, lines,
 * offset reached, bars failing the value checks or -1 without ``checks``): the caller goes
 * on from that offset when ``cap`` was reached first, and needs no check_values when no
 * bar failed (the count is only a shortcut: check_values decides the reasons). */
static PyObject *parser_parse(Parser *self, PyObject *args) {
    Py_buffer buf, rec, lin, sta, off, flg;
    Py_ssize_t start, stop, cap;
    PyObject *orec, *olin, *osta, *ooff, *oflg;
    if (!PyArg_ParseTuple(args, "y*nnnOOOOO", &buf, &start, &stop, &cap, &orec, &olin, &osta,
                          &ooff, &oflg))
        return NULL;
    PyObject *result = NULL;
    int have = 0;
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Parser: not initialised");
        goto done;
    }
    if (start < 0 || stop + 8 > buf.len || start > stop || cap < 0 ||
        (stop > start && ((const uint8_t *)buf.buf)[stop - 1] != '\n')) {
        PyErr_SetString(PyExc_ValueError, "parse: start/stop do not bound whole lines "
                                          "followed by 8 bytes of slack");
        goto done;
    }
    if (get_out(orec, &rec, cap * self->stride, "records") < 0) goto done;
    have = 1;
    if (get_out(olin, &lin, cap * 8, "lines") < 0) goto done;
    have = 2;
    if (get_out(osta, &sta, cap * 8, "starts") < 0) goto done;
    have = 3;
    if (get_out(ooff, &off, 2 * self->noffsets * cap * 8, "offsets") < 0) goto done;
    have = 4;
    if (get_out(oflg, &flg, 3 * cap * 8, "flagged") < 0) goto done;
    have = 5;

    const uint8_t *base = buf.buf;
    const uint8_t *p = base + start, *end = base + stop;
    uint8_t *records = rec.buf;
    int64_t *lines = lin.buf, *starts = sta.buf, *offsets = off.buf, *flagged = flg.buf;
    const uint8_t delim = self->delimiter;
    const Py_ssize_t ncols = self->ncols, stride = self->stride;
    Py_ssize_t rows = 0, nflag = 0, nlines = 0, nbad = 0;

    Py_BEGIN_ALLOW_THREADS
    while (p < end && rows < cap && nflag < cap) {
        const uint8_t *line = p;
        uint8_t *r = records + rows * stride;
        int64_t event = 0;
        int good = 1;
        const uint8_t *q = p;
        for (Py_ssize_t c = 0; c < ncols; c++) {
            const uint8_t *b, *e;
            if (self->kind[c] == K_FLOAT && *p != '"') {  /* parsed as it is read */
                double v;
                q = parse_number_at(p, &v);
                if (!q) { good = 0; break; }
                if (c + 1 < ncols) {
                    if (*q != delim) { good = 0; break; }
                } else if (!(*q == '\n' || (*q == '\r' && q[1] == '\n'))) {
                    good = 0;
                    break;
                }
                memcpy(r + self->slot[c], &v, 8);
                p = q + 1;
                continue;
            }
            if (*p == '"') {  /* a quoted field: up to the next quote, which must end it */
                b = p + 1;
                q = b;
                while (*q != '"' && *q != '\n') q++;
                if (*q != '"') { good = 0; break; }
                e = q++;
            } else {
                b = q = p;
                while (!self->stops[*q]) q++;
                e = q;
            }
            if (c + 1 < ncols) {
                if (*q != delim) { good = 0; break; }
            } else if (!(*q == '\n' || (*q == '\r' && q[1] == '\n'))) {
                good = 0;
                break;
            }
            switch (self->kind[c]) {
            case K_FLOAT: {  /* quoted: the number must fill the field */
                double v;
                const uint8_t *stop_at = b < e ? parse_number_at(b, &v) : NULL;
                if (stop_at != e) { good = 0; break; }
                memcpy(r + self->slot[c], &v, 8);
                break;
            }
            case K_STAMP:
            case K_TIME: {
                int64_t ns;
                if (!parse_stamp(self, &self->stamps[self->kind[c] - K_STAMP], b, e - b, &ns)) {
                    good = 0;
                    break;
                }
                event += ns;
                break;
            }
            case K_FORMATTED:
            case K_FORMATTED_SUFFIX: {
                double v;
                if (!parse_formatted(b, e, self->thousands, self->mark,
                                     self->kind[c] == K_FORMATTED_SUFFIX, &v)) {
                    good = 0;
                    break;
                }
                memcpy(r + self->slot[c], &v, 8);
                break;
            }
            case K_OFFSETS: {
                int64_t *o = offsets + 2 * (Py_ssize_t)self->slot[c] * cap;
                o[rows] = b - base;
                o[cap + rows] = e - base;
                break;
            }
            default:
                break;
            }
            if (!good) break;
            p = q + 1;
        }
        if (good) {
            const uint8_t *nl = *q == '\r' ? q + 1 : q;
            memcpy(r + self->event_at, &event, 8);
            if (self->zero_at >= 0) memset(r + self->zero_at, 0, 8);
            if (self->checks) {
                double o, h, lo, cl, v;
                memcpy(&o, r + self->check_at[0], 8);
                memcpy(&h, r + self->check_at[1], 8);
                memcpy(&lo, r + self->check_at[2], 8);
                memcpy(&cl, r + self->check_at[3], 8);
                memcpy(&v, r + self->check_at[4], 8);
                /* the conditions under which check_values gives 0 (fine) */
                nbad += !(o > 0 && h > 0 && lo > 0 && cl > 0 && v >= 0 && h >= lo && o >= lo &&
                          o <= h && cl >= lo && cl <= h);
            }
            lines[rows] = nlines;
            starts[rows] = line - base;
            rows++;
            p = nl + 1;
        } else {
            const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
            const uint8_t *text_end = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
            flagged[nflag] = nlines;
            flagged[cap + nflag] = line - base;
            flagged[2 * cap + nflag] = text_end - base;
            nflag++;
            p = nl + 1;
        }
        nlines++;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nnnnn", rows, nflag, nlines, (Py_ssize_t)(p - base),
                           self->checks ? nbad : (Py_ssize_t)-1);
done:
    if (have >= 5) PyBuffer_Release(&flg);
    if (have >= 4) PyBuffer_Release(&off);
    if (have >= 3) PyBuffer_Release(&sta);
    if (have >= 2) PyBuffer_Release(&lin);
    if (have >= 1) PyBuffer_Release(&rec);
    PyBuffer_Release(&buf);
    return result;
}

/* parse_number(text) -> float or None: one field as the fast path reads it (for tests). */
static PyObject *csv_parse_number(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer text;
    if (PyObject_GetBuffer(arg, &text, PyBUF_SIMPLE) < 0) return NULL;
    /* as a field: followed by a \n (the parser reads up to the first non-digit) */
    uint8_t *copy = PyMem_Calloc((size_t)text.len + 9, 1); /* + the loads' slack */
    if (!copy) {
        PyBuffer_Release(&text);
        return PyErr_NoMemory();
    }
    memcpy(copy, text.buf, (size_t)text.len);
    copy[text.len] = '\n';
    double v = 0.0;
    const uint8_t *end = parse_number_at(copy, &v);
    int ok = end == copy + text.len && memchr(copy, '\n', (size_t)text.len) == NULL;
    PyMem_Free(copy);
    PyBuffer_Release(&text);
    if (!ok) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

/* parse_formatted(text, thousands, decimal, suffixes) -> float or None (for tests). */
static PyObject *csv_parse_formatted(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer text;
    int thousands, decimal, suffixes;
    if (!PyArg_ParseTuple(args, "y*iip", &text, &thousands, &decimal, &suffixes)) return NULL;
    double v = 0.0;
    const uint8_t *p = text.buf;
    int ok = parse_formatted(p, p + text.len, (uint8_t)thousands, (uint8_t)decimal, suffixes,
                             &v);
    PyBuffer_Release(&text);
    if (!ok) Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyMethodDef parser_methods[] = {
    {"parse", (PyCFunction)parser_parse, METH_VARARGS,
     "parse($self, buf, start, stop, cap, records, lines, starts, offsets, flagged, /)\n--\n\n"
     "Tokenise and parse whole lines; returns (rows, flagged, lines, offset reached, bars "
     "failing the value checks)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ParserType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tradingd.producer.loader._csvfast.Parser",
    .tp_basicsize = sizeof(Parser),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Parser(delimiter, kinds, slots, noffsets, stride, event_at, zero_at, stamps, "
              "times, month_starts, first_year, min_day, max_day, thousands=0, decimal=46, "
              "checks=None)"
              "\n--\n\n"
              "A plan compiled for the one-pass parser (see native.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)parser_init,
    .tp_dealloc = (destructor)parser_dealloc,
    .tp_methods = parser_methods,
};

static PyMethodDef module_methods[] = {
    {"parse_number", csv_parse_number, METH_O,
     "parse_number(text, /)\n--\n\n"
     "The value of one numeric field as the one-pass parser reads it, None if flagged."},
    {"parse_formatted", csv_parse_formatted, METH_VARARGS,
     "parse_formatted(text, thousands, decimal, suffixes, /)\n--\n\n"
     "The value of one formatted field as the one-pass parser reads it, None if flagged."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tradingd.producer.loader._csvfast",
    "A block's regular lines tokenised and parsed in one pass (see _csvfast.c).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csvfast(void) {
    if (PyType_Ready(&ParserType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ParserType);
    if (PyModule_AddObject(m, "Parser", (PyObject *)&ParserType) < 0) {
        Py_DECREF(&ParserType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
