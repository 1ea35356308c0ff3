"""The analytics store: ClickHouse tables fed from Kafka, for analysts and the exchanges' reports.

One concept per module: `capabilities` (what the server supports), `template` and `migrations`
(versioned DDL rendered for that server), `backend`, `server` and `embedded` (clickhouse-driver or
chdb behind one protocol), `tables` (columns and the Kafka record → row mapping), `batch` and
`sink` (Kafka → batched inserts, offsets committed after the insert), `retention`, `queries`
(named analytics), `periodic` (the exchanges' daily, weekly and monthly tables) and the output
modules. Nothing here imports Kafka or a ClickHouse client at import time except `sink`.
"""
