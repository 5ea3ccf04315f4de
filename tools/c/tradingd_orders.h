/* tradingd order/report rings (channel layout v1.0) -- GENERATED from tradingd/segment/layout.py
 * and tradingd/exec/protocol.py by tradingd/exec/cheader.py. Do not edit by hand:
 * run `make c-header`.
 *
 * One client = two single-writer rings: /dev/shm/<segment>.orders.<client> (the
 * client writes) and /dev/shm/<segment>.reports.<client> (tradingd-exec writes).
 * A record: store ~seq_lo into its stamp, the body, seq_lo (release), then the
 * header's ring_cursor. Never publish record n unless n - capacity < the peer's
 * consumed count (orders: the report ring's peer_consumed; reports: the order ring's
 * peer_consumed, valid when its peer_generation is the report ring's generation).
 * A reader takes record p when slot p & (capacity-1) has stamp == (uint32_t)p before
 * and after copying it. The ready word is header.state (2 = live), stored last. */
#ifndef TRADINGD_ORDERS_H
#define TRADINGD_ORDERS_H

#include <stddef.h>
#include <stdint.h>

#define TRADINGD_ORDERS_MAGIC 0x53524544524f4454ULL /* "TDORDERS" */
#define TRADINGD_REPORTS_MAGIC 0x5354525045524454ULL /* "TDREPRTS" */
#define TRADINGD_CHANNEL_MAJOR 1
#define TRADINGD_CHANNEL_MINOR 0
#define TRADINGD_CHANNEL_FINGERPRINT 0xf11bbb2c6f0f9cb7ULL

#define TRADINGD_CHANNEL_STATE_EMPTY 0
#define TRADINGD_CHANNEL_STATE_INITIALISING 1
#define TRADINGD_CHANNEL_STATE_LIVE 2
#define TRADINGD_CHANNEL_STATE_FINISHED 3
#define TRADINGD_CHANNEL_STATE_STOPPED 4
#define TRADINGD_CHANNEL_STATE_DISCONNECTED 5

#define TRADINGD_MSG_NEW_ORDER 1
#define TRADINGD_MSG_CANCEL 2

#define TRADINGD_SIDE_BUY 1
#define TRADINGD_SIDE_SELL 2

#define TRADINGD_ORD_TYPE_MARKET 1
#define TRADINGD_ORD_TYPE_LIMIT 2

#define TRADINGD_TIF_DAY 0
#define TRADINGD_TIF_GTC 1
#define TRADINGD_TIF_IOC 3

#define TRADINGD_ORD_STATUS_PENDING_NEW 65
#define TRADINGD_ORD_STATUS_NEW 48
#define TRADINGD_ORD_STATUS_PARTIALLY_FILLED 49
#define TRADINGD_ORD_STATUS_FILLED 50
#define TRADINGD_ORD_STATUS_CANCELED 52
#define TRADINGD_ORD_STATUS_REJECTED 56
#define TRADINGD_ORD_STATUS_EXPIRED 67

#define TRADINGD_EXEC_TYPE_NEW 48
#define TRADINGD_EXEC_TYPE_TRADE 70
#define TRADINGD_EXEC_TYPE_CANCELED 52
#define TRADINGD_EXEC_TYPE_REJECTED 56
#define TRADINGD_EXEC_TYPE_EXPIRED 67
#define TRADINGD_EXEC_TYPE_ORDER_STATUS 73

#define TRADINGD_REPORT_KIND_EXECUTION 1
#define TRADINGD_REPORT_KIND_CANCEL_REJECT 2
#define TRADINGD_REPORT_KIND_POSITION 3

#define TRADINGD_REJECT_NONE 0
#define TRADINGD_REJECT_DUPLICATE_ID 1
#define TRADINGD_REJECT_UNKNOWN_SYMBOL 2
#define TRADINGD_REJECT_BAD_QUANTITY 3
#define TRADINGD_REJECT_BAD_PRICE 4
#define TRADINGD_REJECT_MAX_ORDER_QTY 5
#define TRADINGD_REJECT_MAX_OPEN_ORDERS 6
#define TRADINGD_REJECT_MAX_NOTIONAL 7
#define TRADINGD_REJECT_UNKNOWN_MSG_TYPE 8
#define TRADINGD_REJECT_BAD_SIDE 9
#define TRADINGD_REJECT_BAD_ORD_TYPE 10
#define TRADINGD_REJECT_BAD_TIME_IN_FORCE 11
#define TRADINGD_REJECT_BAD_SYMBOL 12
#define TRADINGD_REJECT_NO_REFERENCE_PRICE 13
#define TRADINGD_REJECT_UNKNOWN_ORDER 14
#define TRADINGD_REJECT_TOO_LATE_TO_CANCEL 15
#define TRADINGD_REJECT_CLIENT_DISCONNECTED 16

#define TRADINGD_DISCONNECT_NONE 0
#define TRADINGD_DISCONNECT_SLOW_CONSUMER 1
#define TRADINGD_DISCONNECT_EXEC_STOPPED 2

/* Order/report ring header: identity, liveness, ring, credit. */
typedef struct tradingd_channel_header {
    uint64_t magic;                  /* @0    "TDORDERS" (order ring) or "TDREPRTS" (report ring), little-endian; written after every other header field */
    uint32_t layout_major;           /* @8    channel layout major version; readers refuse another */
    uint32_t layout_minor;           /* @12   channel layout minor version */
    uint64_t layout_fingerprint;     /* @16   hash of the channel field tables */
    uint64_t header_size;            /* @24   size of this header in bytes */
    uint64_t total_size;             /* @32   size of the whole segment in bytes */
    uint64_t generation;             /* @40   random non-zero id, new each time the owner creates it */
    uint64_t owner_pid;              /* @48   PID of the writer (the client, or tradingd-exec) */
    uint64_t owner_start_ns;         /* @56   wall-clock time the owner created it (ns since epoch) */
    uint64_t state;                  /* @64   1 initialising, 2 live, 4 stopped, 5 disconnected (ready word) */
    uint64_t heartbeat_ns;           /* @72   CLOCK_MONOTONIC ns of the owner's last heartbeat */
    uint64_t heartbeat_interval_ns;  /* @80   how often the owner beats (ns) */
    uint64_t heartbeat_count;        /* @88   heartbeats since creation */
    uint64_t owner_start_ticks;      /* @96   the owner's start time in /proc/PID/stat (ticks) */
    uint8_t _pad0[24];
    uint64_t ring_offset;            /* @128  offset of the ring */
    uint64_t ring_capacity;          /* @136  records in the ring (a power of two) */
    uint64_t record_size;            /* @144  bytes per ring record */
    uint64_t peer_generation;        /* @152  report ring: generation of the order ring it answers; order ring: 0 */
    uint64_t last_client_seq;        /* @160  report ring: highest client_seq exec has taken from this client (resume point) */
    uint64_t last_client_order_id;   /* @168  report ring: highest client_order_id exec has seen from this client */
    uint64_t detail;                 /* @176  report ring: disconnect reason code (0 none) */
    uint8_t _pad1[8];
    char client[32];                 /* @192  client name, NUL-padded */
    uint8_t _pad2[32];
    uint64_t ring_cursor;            /* @256  records published = sequence number of the next record */
    uint8_t _pad3[56];
    uint64_t peer_consumed;          /* @320  order ring: reports the client has read; report ring: orders exec has read (the credit the other side's writer may not overrun) */
    uint8_t _pad4[56];
    uint64_t last_report_seq;        /* @384  order ring: report_seq of the last report the client processed (resume point) */
    uint64_t wants_wake;             /* @392  order ring: 1 while the client may block on its report ring's wake_seq futex */
    uint8_t _pad5[48];
    uint64_t wake_seq;               /* @448  report ring: bumped (then FUTEX_WAKE) after reports are published to a client that wants_wake; its low 32 bits are the futex word */
    uint8_t _pad6[56];
} tradingd_channel_header;
_Static_assert(sizeof(tradingd_channel_header) == 512, "tradingd_channel_header size");
_Static_assert(offsetof(tradingd_channel_header, magic) == 0, "channel_header.magic");
_Static_assert(offsetof(tradingd_channel_header, layout_major) == 8, "channel_header.layout_major");
_Static_assert(offsetof(tradingd_channel_header, layout_minor) == 12, "channel_header.layout_minor");
_Static_assert(offsetof(tradingd_channel_header, layout_fingerprint) == 16, "channel_header.layout_fingerprint");
_Static_assert(offsetof(tradingd_channel_header, header_size) == 24, "channel_header.header_size");
_Static_assert(offsetof(tradingd_channel_header, total_size) == 32, "channel_header.total_size");
_Static_assert(offsetof(tradingd_channel_header, generation) == 40, "channel_header.generation");
_Static_assert(offsetof(tradingd_channel_header, owner_pid) == 48, "channel_header.owner_pid");
_Static_assert(offsetof(tradingd_channel_header, owner_start_ns) == 56, "channel_header.owner_start_ns");
_Static_assert(offsetof(tradingd_channel_header, state) == 64, "channel_header.state");
_Static_assert(offsetof(tradingd_channel_header, heartbeat_ns) == 72, "channel_header.heartbeat_ns");
_Static_assert(offsetof(tradingd_channel_header, heartbeat_interval_ns) == 80, "channel_header.heartbeat_interval_ns");
_Static_assert(offsetof(tradingd_channel_header, heartbeat_count) == 88, "channel_header.heartbeat_count");
_Static_assert(offsetof(tradingd_channel_header, owner_start_ticks) == 96, "channel_header.owner_start_ticks");
_Static_assert(offsetof(tradingd_channel_header, ring_offset) == 128, "channel_header.ring_offset");
_Static_assert(offsetof(tradingd_channel_header, ring_capacity) == 136, "channel_header.ring_capacity");
_Static_assert(offsetof(tradingd_channel_header, record_size) == 144, "channel_header.record_size");
_Static_assert(offsetof(tradingd_channel_header, peer_generation) == 152, "channel_header.peer_generation");
_Static_assert(offsetof(tradingd_channel_header, last_client_seq) == 160, "channel_header.last_client_seq");
_Static_assert(offsetof(tradingd_channel_header, last_client_order_id) == 168, "channel_header.last_client_order_id");
_Static_assert(offsetof(tradingd_channel_header, detail) == 176, "channel_header.detail");
_Static_assert(offsetof(tradingd_channel_header, client) == 192, "channel_header.client");
_Static_assert(offsetof(tradingd_channel_header, ring_cursor) == 256, "channel_header.ring_cursor");
_Static_assert(offsetof(tradingd_channel_header, peer_consumed) == 320, "channel_header.peer_consumed");
_Static_assert(offsetof(tradingd_channel_header, last_report_seq) == 384, "channel_header.last_report_seq");
_Static_assert(offsetof(tradingd_channel_header, wants_wake) == 392, "channel_header.wants_wake");
_Static_assert(offsetof(tradingd_channel_header, wake_seq) == 448, "channel_header.wake_seq");

/* Order ring record: a new order or a cancel (client -> exec). */
typedef struct tradingd_order {
    uint32_t seq_lo;                 /* @0    low 32 bits of the record's ring sequence: the stamp, stored after the body (its complement while it is written) */
    uint32_t msg_type;               /* @4    1 new order, 2 cancel */
    uint64_t client_seq;             /* @8    client's own sequence number, increasing across restarts */
    uint64_t client_order_id;        /* @16   new order: its id (unique per client); cancel: the order to cancel */
    uint32_t side;                   /* @24   1 buy, 2 sell (FIX Side) */
    uint32_t ord_type;               /* @28   1 market, 2 limit (FIX OrdType) */
    uint32_t time_in_force;          /* @32   0 DAY, 1 GTC, 3 IOC (FIX TimeInForce) */
    uint8_t _pad0[4];
    int64_t quantity;                /* @40   order quantity (units); must be > 0 */
    double limit_price;              /* @48   limit price (limit orders; must be > 0) */
    uint64_t send_ns;                /* @56   client CLOCK_MONOTONIC ns at submit (for latency) */
    char symbol[16];                 /* @64   symbol name as in the market segment, NUL-padded */
    uint8_t _pad1[48];
} tradingd_order;
_Static_assert(sizeof(tradingd_order) == 128, "tradingd_order size");
_Static_assert(offsetof(tradingd_order, seq_lo) == 0, "order.seq_lo");
_Static_assert(offsetof(tradingd_order, msg_type) == 4, "order.msg_type");
_Static_assert(offsetof(tradingd_order, client_seq) == 8, "order.client_seq");
_Static_assert(offsetof(tradingd_order, client_order_id) == 16, "order.client_order_id");
_Static_assert(offsetof(tradingd_order, side) == 24, "order.side");
_Static_assert(offsetof(tradingd_order, ord_type) == 28, "order.ord_type");
_Static_assert(offsetof(tradingd_order, time_in_force) == 32, "order.time_in_force");
_Static_assert(offsetof(tradingd_order, quantity) == 40, "order.quantity");
_Static_assert(offsetof(tradingd_order, limit_price) == 48, "order.limit_price");
_Static_assert(offsetof(tradingd_order, send_ns) == 56, "order.send_ns");
_Static_assert(offsetof(tradingd_order, symbol) == 64, "order.symbol");

/* Report ring record: an execution report (exec -> client). */
typedef struct tradingd_report {
    uint32_t seq_lo;                 /* @0    low 32 bits of the record's ring sequence: the stamp */
    uint32_t exec_type;              /* @4    FIX ExecType as its ASCII code: '0' new, 'F' trade, '4' canceled, '8' rejected, 'C' expired, 'I' order status */
    uint64_t report_seq;             /* @8    per-client report number, 1, 2, ... across exec restarts */
    uint64_t client_order_id;        /* @16   the order reported on (0 for a position restatement) */
    uint32_t ord_status;             /* @24   FIX OrdStatus as its ASCII code: '0' new, '1' partially filled, '2' filled, '4' canceled, '8' rejected, 'C' expired */
    uint32_t reject_reason;          /* @28   0 none, else a tradingd reject reason code */
    int64_t last_qty;                /* @32   quantity of this fill (0 if not a fill; position: net qty) */
    double last_px;                  /* @40   price of this fill */
    int64_t cum_qty;                 /* @48   quantity filled so far */
    int64_t leaves_qty;              /* @56   quantity still open (0 once terminal) */
    double avg_px;                   /* @64   average fill price so far (position: average cost) */
    int64_t market_seq;              /* @72   market ring sequence of the bar it executed against (-1) */
    uint64_t transact_ns;            /* @80   exec CLOCK_MONOTONIC ns of the input that caused it */
    uint64_t order_send_ns;          /* @88   the order's send_ns echoed (order -> report latency) */
    uint32_t side;                   /* @96   1 buy, 2 sell */
    uint32_t report_kind;            /* @100  1 execution report, 2 cancel reject, 3 position restatement */
    char symbol[16];                 /* @104  symbol name, NUL-padded */
    uint64_t client_seq;             /* @120  client_seq of the order input that caused it (0: none) */
} tradingd_report;
_Static_assert(sizeof(tradingd_report) == 128, "tradingd_report size");
_Static_assert(offsetof(tradingd_report, seq_lo) == 0, "report.seq_lo");
_Static_assert(offsetof(tradingd_report, exec_type) == 4, "report.exec_type");
_Static_assert(offsetof(tradingd_report, report_seq) == 8, "report.report_seq");
_Static_assert(offsetof(tradingd_report, client_order_id) == 16, "report.client_order_id");
_Static_assert(offsetof(tradingd_report, ord_status) == 24, "report.ord_status");
_Static_assert(offsetof(tradingd_report, reject_reason) == 28, "report.reject_reason");
_Static_assert(offsetof(tradingd_report, last_qty) == 32, "report.last_qty");
_Static_assert(offsetof(tradingd_report, last_px) == 40, "report.last_px");
_Static_assert(offsetof(tradingd_report, cum_qty) == 48, "report.cum_qty");
_Static_assert(offsetof(tradingd_report, leaves_qty) == 56, "report.leaves_qty");
_Static_assert(offsetof(tradingd_report, avg_px) == 64, "report.avg_px");
_Static_assert(offsetof(tradingd_report, market_seq) == 72, "report.market_seq");
_Static_assert(offsetof(tradingd_report, transact_ns) == 80, "report.transact_ns");
_Static_assert(offsetof(tradingd_report, order_send_ns) == 88, "report.order_send_ns");
_Static_assert(offsetof(tradingd_report, side) == 96, "report.side");
_Static_assert(offsetof(tradingd_report, report_kind) == 100, "report.report_kind");
_Static_assert(offsetof(tradingd_report, symbol) == 104, "report.symbol");
_Static_assert(offsetof(tradingd_report, client_seq) == 120, "report.client_seq");

#endif /* TRADINGD_ORDERS_H */
