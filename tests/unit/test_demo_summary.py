"""The demo's shared-device summary counts physical devices, not fingerprints.

Generated reports, with a high rate of logins that miss an identifier, go through the Processor;
the summary reads its lt.reports values. Expected devices and investors come from the generator's
truth (each report's device and investor), never from the code under test.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline import schemas
from pipeline.commands.demo import _summary, shared_devices
from pipeline.config import PipelineSettings, Settings
from pipeline.crypto.keyring import Keyring
from pipeline.generate import KeySet, PlanConfig, plan_reports
from pipeline.market import Market
from pipeline.process import REPORTS, Processor
from pipeline.refdata import ReferenceData

NOW_MS = 1_763_600_000_000 + 10 * 3_600_000


def test_shared_devices_are_the_planted_devices(market: Market, market_keys: tuple[Path, KeySet]) -> None:
    path, keys = market_keys
    settings = Settings(pipeline=PipelineSettings(fingerprint_key=b"demo-summary-fingerprint-key"))
    reference = ReferenceData.from_mapping(market.reference_data())
    processor = Processor(settings, Keyring.load(path, "production"), reference)
    config = PlanConfig(reports=3000, defect_rate=0.004, missing_item_rate=0.3, seed=11)
    accepted: list[dict[str, Any]] = []
    planted: dict[str, set[str]] = defaultdict(set)  # generator device → investors that used it
    for offset, report in enumerate(plan_reports(market, keys, config)):
        result = processor.process(report.topic, 0, offset, report.key, report.value, NOW_MS)
        for output in result.outputs:
            if output.topic == settings.topics.reports:
                accepted.append(schemas.decode(output.value, expected=REPORTS)[1])
                planted[report.truth.device_key].add(report.truth.investor)
    expected = sorted(sorted(investors) for investors in planted.values() if len(investors) > 1)

    devices = shared_devices(accepted)
    got = sorted(sorted(investors) for investors, _ in devices.values() if len(investors) > 1)
    assert got == expected and len(expected) >= 5
    # Worth testing: some shared device reached the pipeline under more than one fingerprint.
    assert any(len(fingerprints) > 1 for investors, fingerprints in devices.values() if len(investors) > 1)

    text = _summary({settings.topics.reports: [(None, r) for r in accepted], settings.topics.dlq: []},
                    settings.topics.reports, settings.topics.dlq, settings.topics.exchange_prefix, [],
                    len(accepted), 1.0)  # fmt: skip
    widest = max(len(investors) for investors in planted.values())
    assert f"shared by several investors (一机多户): {len(expected)};" in text
    assert f"…  {widest}  " in text
