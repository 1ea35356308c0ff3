"""`lookthrough run` (a worker), `lookthrough ref load` (reference data), `lookthrough topics create`."""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run a pipeline worker (several share the partitions)")
    run.add_argument("--instance", help="stable worker name (transactional id); default from LT_PIPELINE_INSTANCE")
    run.set_defaults(handler=_run)

    ref = subparsers.add_parser("ref", help="reference data")
    ref_sub = ref.add_subparsers(dest="ref_command", required=True)
    load = ref_sub.add_parser("load", help="validate and publish reference records of one kind")
    load.add_argument("kind", choices=["vendors", "apps", "brokers", "accounts", "subscribers"])
    load.add_argument("file", type=Path, help="JSON array, JSON lines, or CSV")
    load.set_defaults(handler=_ref_load)

    topics = subparsers.add_parser("topics", help="create the pipeline's topics if missing")
    topics.set_defaults(handler=_topics)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "instance", None):
        from dataclasses import replace

        settings = replace(settings, pipeline=replace(settings.pipeline, instance=args.instance))
    return settings


def _run(args: argparse.Namespace) -> int:
    from pipeline import logs, metrics
    from pipeline.crypto.keyring import Keyring
    from pipeline.worker import Worker

    settings = _settings(args)
    logs.setup()
    for variable in Settings.unknown_env():
        log.warning("unknown setting ignored", extra={"variable": variable})
    if settings.pipeline.keyring is None:
        raise ConfigError("set LT_PIPELINE_KEYRING to the keyring file")
    if not settings.pipeline.fingerprint_key:
        raise ConfigError("set LT_PIPELINE_FINGERPRINT_KEY (the device-fingerprint HMAC key)")
    keyring = Keyring.load(settings.pipeline.keyring, settings.pipeline.environment)
    metrics.serve(settings.pipeline.metrics_port)
    # Decrypting processes load the keyring themselves, from the same file (`pipeline.ahead`).
    source = functools.partial(Keyring.load, settings.pipeline.keyring, settings.pipeline.environment)
    Worker(settings, keyring, source).run()
    return 0


def _ref_load(args: argparse.Namespace) -> int:
    from pipeline.refstore import publish, read_records
    from pipeline.topics import ensure_topics, output_topics

    settings = _settings(args)
    from confluent_kafka.admin import AdminClient

    ensure_topics(AdminClient(settings.kafka.client_config()), settings, output_topics(settings))
    count = publish(settings, args.kind, read_records(args.kind, args.file))
    print(f"published {count} {args.kind} records to {settings.topics.ref(args.kind)}")
    return 0


def _topics(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from pipeline.topics import ensure_topics, output_topics

    settings = _settings(args)
    created = ensure_topics(AdminClient(settings.kafka.client_config()), settings,
                            output_topics(settings))  # fmt: skip
    print("created: " + (", ".join(created) if created else "nothing (all present)"))
    return 0
