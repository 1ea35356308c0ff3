-- Terminal records (lt.reports): every accepted report, normalized and enriched; kept 20 years.
-- ReplacingMergeTree collapses rows with the same sorting key, so the key ends with the
-- deduplication key (reporter_id, report_id); its prefix (trading day, broker, investor) comes from
-- the same report, so a replayed or redelivered record has the same key and collapses with the first.
-- Analysts read with FINAL or count uniqExact(reporter_id, report_id). Monthly partitions: 240 over 20 years.
-- Nullable strings of the record are stored as '' (cheaper than Nullable); 18.16 has no Map, so the
-- trading codes are two parallel arrays.
CREATE TABLE IF NOT EXISTS {{db}}.reports
(
    trading_day            Date,
    broker_id              {{lc}},
    investor_id            String,
    reporter_id            {{lc}},
    report_id              String,
    reporter_type          {{lc}},
    user_id                String,
    received_at            {{ts}} {{codec Delta,ZSTD(1)}},
    correction_of          String,
    vendor_id              {{lc}},
    key_version            UInt32,
    suite                  {{lc}},
    app_type               UInt8,
    public_ip              String,
    public_port            UInt16,
    login_time             {{ts}} {{codec Delta,ZSTD(1)}},
    app_id                 {{lc}},
    relay_app_id           {{lc}},
    terminal_type          UInt8,
    terminal_kind          {{lc}},
    collect_time           {{ts}} {{codec Delta,ZSTD(1)}},
    collect_flags          UInt32,
    private_ips            Array(String),
    macs                   Array(String),
    device_name            String,
    device_model           String,
    os_version             {{lc}},
    disk_serial            String,
    cpu_serial             String,
    bios_serial            String,
    device_serial          String,
    system_disk_partition  String,
    imei                   String,
    device_id              String,
    idfv                   String,
    phone                  String,
    platform               {{lc}},
    latitude               Nullable(Float64),
    longitude              Nullable(Float64),
    flags                  Array(String),
    warnings               Array(String),
    device_fingerprint     String,
    trading_exchanges      Array(String),
    trading_codes          Array(String),
    source_topic           {{lc}},
    source_partition       UInt32,
    source_offset          UInt64,
    processing_system      {{lc}},
    pipeline_instance      {{lc}},
    pipeline_version       {{lc}},
    schema_fingerprint     {{lc}},
    processed_at           {{ts}} {{codec Delta,ZSTD(1)}}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(trading_day)
ORDER BY (trading_day, broker_id, investor_id, reporter_id, report_id)
{{ttl trading_day records}}
{{settings}};
