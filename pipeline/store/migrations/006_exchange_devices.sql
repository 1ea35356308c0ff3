-- Per exchange, trading day and member: the device fingerprints (with their terminal kind) of the
-- reports delivered to the exchange, for 设备数 of the periodic reports, which link them into
-- devices (pipeline/store/devices.py) by the identifiers that `reports` keeps beside each
-- fingerprint (deliveries carry none; both tables are kept 20 years). Kept 20 years like
-- exchange_daily, after the raw deliveries (30 days) are gone. One row per key: a replayed
-- delivery adds a row that ReplacingMergeTree collapses, and readers take DISTINCT keys.
-- terminal_kind is a function of the fingerprint (the fingerprint hashes it).
CREATE TABLE IF NOT EXISTS {{db}}.exchange_devices
(
    exchange            {{lc}},
    trading_day         Date,
    member_id           {{lc}},
    reporter_type       {{lc}},
    device_fingerprint  String,
    terminal_kind       {{lc}}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(trading_day)
ORDER BY (exchange, trading_day, member_id, reporter_type, device_fingerprint)
{{ttl trading_day records}}
{{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.exchange_devices_mv TO {{db}}.exchange_devices AS
SELECT
    exchange,
    trading_day,
    member_id,
    reporter_type,
    device_fingerprint,
    any(terminal_kind) AS terminal_kind
FROM {{db}}.deliveries
WHERE device_fingerprint != ''
GROUP BY exchange, trading_day, member_id, reporter_type, device_fingerprint;

-- The days before this migration, once (the view sees only later inserts; one scan of deliveries
-- and reports). Run again, these only add rows that collapse. First what the deliveries still
-- hold: exact.
INSERT INTO {{db}}.exchange_devices (exchange, trading_day, member_id, reporter_type, device_fingerprint, terminal_kind)
SELECT exchange, trading_day, member_id, reporter_type, device_fingerprint, any(terminal_kind)
FROM {{db}}.deliveries
WHERE device_fingerprint != ''
GROUP BY exchange, trading_day, member_id, reporter_type, device_fingerprint;

-- Then the older days, whose deliveries have expired (the oldest day still held may be partial;
-- every day when none is held): a report went to each exchange its investor holds a trading code
-- at (member = broker) when the exchange was licensed, which the keys of exchange_daily attest per
-- day and member.
INSERT INTO {{db}}.exchange_devices (exchange, trading_day, member_id, reporter_type, device_fingerprint, terminal_kind)
SELECT ex, trading_day, broker_id, reporter_type, device_fingerprint, any(terminal_kind)
FROM {{db}}.reports
ARRAY JOIN trading_exchanges AS ex
WHERE device_fingerprint != ''
    AND trading_day <= (SELECT if(count() = 0, toDate('2100-01-01'), min(trading_day)) FROM {{db}}.deliveries)
    AND (ex, trading_day, broker_id, reporter_type) IN
        (SELECT exchange, trading_day, member_id, reporter_type FROM {{db}}.exchange_daily)
GROUP BY ex, trading_day, broker_id, reporter_type, device_fingerprint;
