-- Per exchange, trading day and member: the figures of the exchanges' periodic reports, kept as
-- exact distinct-count states. A materialized view fills it from every insert into deliveries;
-- because every figure is a uniqExact state over a key, a replayed delivery changes nothing, and
-- a week or a month merges the days' states exactly. Kept 20 years, after the raw deliveries
-- (30 days) are gone.
CREATE TABLE IF NOT EXISTS {{db}}.exchange_daily
(
    exchange        {{lc}},
    trading_day     Date,
    member_id       {{lc}},
    reporter_type   {{lc}},
    reports         AggregateFunction(uniqExact, String),
    investors       AggregateFunction(uniqExact, String),
    devices         AggregateFunction(uniqExactIf, String, UInt8),
    relay_reports   AggregateFunction(uniqExactIf, String, UInt8),
    warned_reports  AggregateFunction(uniqExactIf, String, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(trading_day)
ORDER BY (exchange, trading_day, member_id, reporter_type)
{{ttl trading_day records}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.exchange_daily_mv TO {{db}}.exchange_daily AS
SELECT
    exchange,
    trading_day,
    member_id,
    reporter_type,
    uniqExactState(concat(reporter_id, ':', report_id)) AS reports,
    uniqExactState(trading_code) AS investors,
    uniqExactIfState(device_fingerprint, device_fingerprint != '') AS devices,
    uniqExactIfState(concat(reporter_id, ':', report_id), relay_app_id != '') AS relay_reports,
    uniqExactIfState(concat(reporter_id, ':', report_id), notEmpty(warnings)) AS warned_reports
FROM {{db}}.deliveries
GROUP BY exchange, trading_day, member_id, reporter_type;
