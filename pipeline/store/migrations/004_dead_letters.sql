-- Rejected input (lt.dlq), with the original bytes (still encrypted) for repair; kept 20 years.
-- `day` is the envelope's trading day when the envelope could be read, else the China date of
-- the rejection; broker_id likewise falls back to the reporter. Deduplication key: the rejected
-- record's own position (source topic, partition, offset).
CREATE TABLE IF NOT EXISTS {{db}}.dlq
(
    day               Date,
    reporter_id       {{lc}},
    broker_id         {{lc}},
    source_topic      {{lc}},
    source_partition  UInt32,
    source_offset     UInt64,
    report_id         String,
    stage             {{lc}},
    error_code        {{lc}},
    error_message     String,
    failed_at         {{ts}},
    processing_system {{lc}},
    original_key      String,
    original_value    String {{codec ZSTD(3)}}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, reporter_id, source_topic, source_partition, source_offset)
{{ttl day records}}
{{settings}};
