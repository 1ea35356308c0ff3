"""Pure pipeline stages: decode, decrypt, normalize, enrich, route.

No Kafka, no faust, no I/O: plain data in, plain data out, `RejectError` for bad input.
"""
