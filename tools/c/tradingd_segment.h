/* tradingd segment layout v1.2 -- GENERATED from tradingd/segment/layout.py
 * by tradingd/segment/cheader.py (`tradingd-inspect layout --c-header`). Do not edit
 * by hand: change tradingd/segment/layout.py and run `make c-header`.
 *
 * Protocol (see tradingd/segment/layout.py): header.state is the ready word; latest
 * slots are seqlocks (odd lock = writing); the ring cursor is stored after the
 * records it publishes; a reader re-reads the cursor after copying and drops records
 * with seq < cursor + ring_window - ring_capacity. A ring stamp (seq_lo) is stored
 * last, its complement first (v1.2). Load polled words with acquire
 * semantics (__atomic_load_n(p, __ATOMIC_ACQUIRE)). */
#ifndef TRADINGD_SEGMENT_H
#define TRADINGD_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#define TRADINGD_MAGIC 0x44474e4944415254ULL /* "TRADINGD" little-endian */
#define TRADINGD_LAYOUT_MAJOR 1
#define TRADINGD_LAYOUT_MINOR 2
#define TRADINGD_LAYOUT_FINGERPRINT 0x469194fa039d92d5ULL
/* minor versions from which ring stamps are stored last / marked while written */
#define TRADINGD_STAMP_LAST_MINOR 1
#define TRADINGD_STAMP_MARKED_MINOR 2
#define TRADINGD_STAMP_TRUST_NS 100000000ULL
/* limits a reader enforces (docs/segment-layout.md, "Writing a reader") */
#define TRADINGD_CACHE_LINE 64
#define TRADINGD_MAX_SYMTAB_CAPACITY 4096ULL
#define TRADINGD_MAX_RING_CAPACITY 2147483648ULL
#define TRADINGD_MAX_RING_CURSOR 4611686018427387904ULL
#define TRADINGD_MAX_PRODUCER_PID 4194304ULL

#define TRADINGD_STATE_EMPTY 0
#define TRADINGD_STATE_INITIALISING 1
#define TRADINGD_STATE_LIVE 2
#define TRADINGD_STATE_FINISHED 3
#define TRADINGD_STATE_STOPPED 4

#define TRADINGD_ASSET_UNKNOWN 0
#define TRADINGD_ASSET_STOCK 1
#define TRADINGD_ASSET_CRYPTO 2
#define TRADINGD_ASSET_FOREX 3

/* Segment header: identity, liveness, region table, counters. */
typedef struct tradingd_header {
    uint64_t magic;                  /* @0    "TRADINGD" as a little-endian u64: this is a tradingd segment */
    uint32_t layout_major;           /* @8    layout major version; readers refuse another major */
    uint32_t layout_minor;           /* @12   layout minor version: guarantees added since x.0 (1: ring stamps stored last; 2: and marked while the record is written) */
    uint64_t layout_fingerprint;     /* @16   hash of this field table; readers refuse a mismatch */
    uint64_t header_size;            /* @24   size of this header in bytes */
    uint64_t total_size;             /* @32   size of the whole segment in bytes */
    uint64_t generation;             /* @40   random non-zero id, new each time a producer creates it */
    uint64_t producer_pid;           /* @48   PID of the producer that owns the segment */
    uint64_t producer_start_ns;      /* @56   wall-clock time the producer created it (ns since epoch) */
    uint64_t state;                  /* @64   0 empty, 1 initialising, 2 live, 3 finished, 4 stopped (ready word) */
    uint64_t heartbeat_ns;           /* @72   CLOCK_MONOTONIC ns of the producer's last heartbeat */
    uint64_t heartbeat_interval_ns;  /* @80   how often the producer beats (ns) */
    uint64_t heartbeat_count;        /* @88   heartbeats since creation */
    uint64_t producer_start_ticks;   /* @96   the producer's start time in /proc/PID/stat (clock ticks): tells a reused PID apart */
    uint8_t _pad0[24];
    uint64_t symtab_offset;          /* @128  offset of the symbol table */
    uint64_t symtab_capacity;        /* @136  entries in the symbol table and latest-value slots */
    uint64_t symbol_count;           /* @144  entries in use (0..symbol_count-1) */
    uint64_t symtab_entry_size;      /* @152  bytes per symbol table entry */
    uint64_t latest_offset;          /* @160  offset of the latest-value slots */
    uint64_t latest_slot_size;       /* @168  bytes per latest-value slot */
    uint64_t ring_offset;            /* @176  offset of the ring */
    uint64_t ring_capacity;          /* @184  records in the ring (a power of two) */
    uint64_t ring_record_size;       /* @192  bytes per ring record */
    uint64_t ring_window;            /* @200  most records the writer writes before advancing the cursor: min(1024, capacity/4) from tradingd's writer (not the replay batch size); readers accept 1..capacity/2 */
    uint64_t replay_loops;           /* @208  times the replay wrapped around to the start of the data */
    uint64_t rows_rejected;          /* @216  bad CSV rows the producer skipped while loading */
    uint8_t _pad1[32];
    uint64_t ring_cursor;            /* @256  records published = sequence number of the next record (on its own cache line) */
    uint8_t _pad2[56];
    uint64_t wake_seq;               /* @320  bumped after each publish when the producer wakes blocked readers; its low 32 bits are a futex word readers wait on */
    uint8_t _pad3[56];
} tradingd_header;
_Static_assert(sizeof(tradingd_header) == 384, "tradingd_header size");
_Static_assert(offsetof(tradingd_header, magic) == 0, "header.magic");
_Static_assert(offsetof(tradingd_header, layout_major) == 8, "header.layout_major");
_Static_assert(offsetof(tradingd_header, layout_minor) == 12, "header.layout_minor");
_Static_assert(offsetof(tradingd_header, layout_fingerprint) == 16, "header.layout_fingerprint");
_Static_assert(offsetof(tradingd_header, header_size) == 24, "header.header_size");
_Static_assert(offsetof(tradingd_header, total_size) == 32, "header.total_size");
_Static_assert(offsetof(tradingd_header, generation) == 40, "header.generation");
_Static_assert(offsetof(tradingd_header, producer_pid) == 48, "header.producer_pid");
_Static_assert(offsetof(tradingd_header, producer_start_ns) == 56, "header.producer_start_ns");
_Static_assert(offsetof(tradingd_header, state) == 64, "header.state");
_Static_assert(offsetof(tradingd_header, heartbeat_ns) == 72, "header.heartbeat_ns");
_Static_assert(offsetof(tradingd_header, heartbeat_interval_ns) == 80, "header.heartbeat_interval_ns");
_Static_assert(offsetof(tradingd_header, heartbeat_count) == 88, "header.heartbeat_count");
_Static_assert(offsetof(tradingd_header, producer_start_ticks) == 96, "header.producer_start_ticks");
_Static_assert(offsetof(tradingd_header, symtab_offset) == 128, "header.symtab_offset");
_Static_assert(offsetof(tradingd_header, symtab_capacity) == 136, "header.symtab_capacity");
_Static_assert(offsetof(tradingd_header, symbol_count) == 144, "header.symbol_count");
_Static_assert(offsetof(tradingd_header, symtab_entry_size) == 152, "header.symtab_entry_size");
_Static_assert(offsetof(tradingd_header, latest_offset) == 160, "header.latest_offset");
_Static_assert(offsetof(tradingd_header, latest_slot_size) == 168, "header.latest_slot_size");
_Static_assert(offsetof(tradingd_header, ring_offset) == 176, "header.ring_offset");
_Static_assert(offsetof(tradingd_header, ring_capacity) == 184, "header.ring_capacity");
_Static_assert(offsetof(tradingd_header, ring_record_size) == 192, "header.ring_record_size");
_Static_assert(offsetof(tradingd_header, ring_window) == 200, "header.ring_window");
_Static_assert(offsetof(tradingd_header, replay_loops) == 208, "header.replay_loops");
_Static_assert(offsetof(tradingd_header, rows_rejected) == 216, "header.rows_rejected");
_Static_assert(offsetof(tradingd_header, ring_cursor) == 256, "header.ring_cursor");
_Static_assert(offsetof(tradingd_header, wake_seq) == 320, "header.wake_seq");

/* Symbol table entry: how to label a symbol's data. */
typedef struct tradingd_symbol {
    char name[24];                   /* @0    ticker, NUL-padded ASCII ("AAPL", "BTC-USD") */
    char currency[8];                /* @24   quote currency, NUL-padded ("USD") */
    uint32_t asset_class;            /* @32   1 stock, 2 crypto, 3 forex, 0 unknown */
    uint32_t price_decimals;         /* @36   decimals to show prices with */
    uint64_t bar_interval_ns;        /* @40   nominal spacing of the source bars (86400e9 = daily) */
    uint64_t record_count;           /* @48   records of this symbol the producer has loaded */
    uint8_t _pad0[8];
} tradingd_symbol;
_Static_assert(sizeof(tradingd_symbol) == 64, "tradingd_symbol size");
_Static_assert(offsetof(tradingd_symbol, name) == 0, "symbol.name");
_Static_assert(offsetof(tradingd_symbol, currency) == 24, "symbol.currency");
_Static_assert(offsetof(tradingd_symbol, asset_class) == 32, "symbol.asset_class");
_Static_assert(offsetof(tradingd_symbol, price_decimals) == 36, "symbol.price_decimals");
_Static_assert(offsetof(tradingd_symbol, bar_interval_ns) == 40, "symbol.bar_interval_ns");
_Static_assert(offsetof(tradingd_symbol, record_count) == 48, "symbol.record_count");

/* Latest-value slot of one symbol, guarded by a seqlock. */
typedef struct tradingd_latest {
    uint64_t lock;                   /* @0    seqlock: 2*seq+1 while writing, 2*seq+2 when stable, 0 never written */
    double price;                    /* @8    last price (close of the last record) */
    double volume;                   /* @16   volume of the last record (f64: exact to 2^53, fractional ok) */
    int64_t event_ns;                /* @24   event time of the last record (ns since epoch, UTC) */
    uint64_t publish_ns;             /* @32   CLOCK_MONOTONIC ns when it was published */
    uint64_t valid;                  /* @40   1 once the slot holds data */
    uint8_t _pad0[16];
} tradingd_latest;
_Static_assert(sizeof(tradingd_latest) == 64, "tradingd_latest size");
_Static_assert(offsetof(tradingd_latest, lock) == 0, "latest.lock");
_Static_assert(offsetof(tradingd_latest, price) == 8, "latest.price");
_Static_assert(offsetof(tradingd_latest, volume) == 16, "latest.volume");
_Static_assert(offsetof(tradingd_latest, event_ns) == 24, "latest.event_ns");
_Static_assert(offsetof(tradingd_latest, publish_ns) == 32, "latest.publish_ns");
_Static_assert(offsetof(tradingd_latest, valid) == 40, "latest.valid");

/* Ring record: one tick or bar. */
typedef struct tradingd_record {
    uint32_t seq_lo;                 /* @0    low 32 bits of the sequence number: the stamp, stored after the rest of the record (its complement while the record is being written) */
    uint32_t symbol_id;              /* @4    index into the symbol table */
    int64_t event_ns;                /* @8    event time (ns since epoch, UTC) */
    uint64_t publish_ns;             /* @16   CLOCK_MONOTONIC ns when published (for latency) */
    double open;                     /* @24   open price */
    double high;                     /* @32   high price */
    double low;                      /* @40   low price */
    double close;                    /* @48   close price */
    double volume;                   /* @56   volume (f64: exact to 2^53, fractional ok) */
} tradingd_record;
_Static_assert(sizeof(tradingd_record) == 64, "tradingd_record size");
_Static_assert(offsetof(tradingd_record, seq_lo) == 0, "record.seq_lo");
_Static_assert(offsetof(tradingd_record, symbol_id) == 4, "record.symbol_id");
_Static_assert(offsetof(tradingd_record, event_ns) == 8, "record.event_ns");
_Static_assert(offsetof(tradingd_record, publish_ns) == 16, "record.publish_ns");
_Static_assert(offsetof(tradingd_record, open) == 24, "record.open");
_Static_assert(offsetof(tradingd_record, high) == 32, "record.high");
_Static_assert(offsetof(tradingd_record, low) == 40, "record.low");
_Static_assert(offsetof(tradingd_record, close) == 48, "record.close");
_Static_assert(offsetof(tradingd_record, volume) == 56, "record.volume");

#endif /* TRADINGD_SEGMENT_H */
