-- Subscriber records (lt.ref.subscribers): every version of every registered subscriber, kept
-- 20 years (seed 001 art. 27: records of the customers an information service serves). A
-- tombstone becomes a row with deleted = 1. Yearly partitions: the table is small.
CREATE TABLE IF NOT EXISTS {{db}}.subscribers
(
    updated_at     {{ts}},
    subscriber_id  String,
    exchange       {{lc}},
    licence_no     String,
    licensed       UInt8,
    tier           {{lc}},
    valid_from     {{ts}},
    valid_to       Nullable({{ts}}),
    deleted        UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYear(updated_at)
ORDER BY (subscriber_id, updated_at)
{{ttl toDate(updated_at) subscribers}}
{{settings}};
