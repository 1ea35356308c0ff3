-- Delivery records (lt.exchange.<EX>): which report went to which exchange, and when
-- (delivered_at = provenance.processed_at). Kept at least 30 days: daily partitions by delivery
-- day, so retention drops whole days. Deduplication key: exchange + reporter_id + report_id
-- (member_id is a function of the report, so it may lead the key for per-member reads).
CREATE TABLE IF NOT EXISTS {{db}}.deliveries
(
    delivered_at        {{ts}},
    exchange            {{lc}},
    member_id           {{lc}},
    reporter_id         {{lc}},
    report_id           String,
    reporter_type       {{lc}},
    trading_code        String,
    trading_day         Date,
    correction_of       String,
    vendor_id           {{lc}},
    app_type            UInt8,
    app_id              {{lc}},
    relay_app_id        {{lc}},
    terminal_kind       {{lc}},
    device_fingerprint  String,
    public_ip           String,
    warnings            Array(String),
    processing_system   {{lc}},
    pipeline_instance   {{lc}}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(delivered_at)
ORDER BY (exchange, member_id, reporter_id, report_id)
{{ttl toDate(delivered_at) deliveries}}
{{settings}};
