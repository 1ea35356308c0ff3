"""Secret hygiene: nothing the secured demo-like run writes holds a secret; key material must be owner-only.

Planted secrets (known to this test, looked for byte by byte):
- key material: every line of every private-key PEM body in the run's keyring, the raw key
  bytes, and the SM4 key as hex (both cases), raw bytes and Base64;
- SASL passwords: the broker admin's and every managed principal's;
- decrypted identifiers: the serials (disk, CPU, BIOS, device), IMEIs, phones, IDFVs, device IDs
  and MACs the generator put into the market's devices (pipeline.market).
Scanned (see secure_support.secured_run): the worker logs, every metrics page scraped from a
worker while it ran, the raw bytes of the dead-letter, feedback, device-sharing and reference
topics, the broker's logs and configuration, the command lines and environments of the worker
and broker processes, and the store's tables when the store sink ran. The exchange topics and
lt.reports exist to carry identifiers; they (and the store tables) are scanned for keys and
passwords only. Failure messages name the secret's kind and where it was found, never its value.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.market import MarketConfig, build_market

from .secure_support import MARKET_SEED, SecureCluster, SecuredRun, secure_kafka, secured_run

__all__ = ["secure_kafka"]  # the fixture, imported so pytest finds it here
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIER_FIELDS = ("disk_serial", "cpu_serial", "bios_serial", "device_serial", "imei", "phone", "idfv",
                     "device_id")  # fmt: skip


@dataclass(frozen=True)
class Needle:
    label: str  # what it is, e.g. "password of e2e-pipeline"; never the value
    kind: str  # "key" | "password" | "identifier"
    value: bytes

    def found_in(self, data: bytes) -> bool:
        if not self.value.isdigit():
            return self.value in data
        # Phones and IMEIs are digit runs: a hit inside a longer number (a timestamp) is not one.
        start = data.find(self.value)
        while start >= 0:
            end = start + len(self.value)
            if (start == 0 or not data[start - 1 : start].isdigit()) and not data[end : end + 1].isdigit():
                return True
            start = data.find(self.value, start + 1)
        return False


def key_needles(keyring_dir: Path) -> list[Needle]:
    needles: list[Needle] = []
    for path in sorted((keyring_dir / "keys").iterdir()):
        text = path.read_text()
        if path.name.endswith(".pub.pem"):
            continue
        if path.suffix == ".pem":
            body = [line for line in text.splitlines() if line and not line.startswith("-----")]
            needles += [Needle(f"private key {path.name}, PEM line {i}", "key", line.encode())
                        for i, line in enumerate(body) if len(line) >= 32]  # fmt: skip
            der = base64.b64decode("".join(body))
            needles.append(Needle(f"private key {path.name}, last 32 DER bytes", "key", der[-32:]))
        elif path.suffix == ".hex":
            raw = bytes.fromhex(text.strip())
            needles += [Needle(f"SM4 key {path.name} (hex)", "key", raw.hex().encode()),
                        Needle(f"SM4 key {path.name} (HEX)", "key", raw.hex().upper().encode()),
                        Needle(f"SM4 key {path.name} (raw)", "key", raw),
                        Needle(f"SM4 key {path.name} (Base64)", "key", base64.b64encode(raw).rstrip(b"="))]  # fmt: skip
    return needles


def password_needles(cluster: SecureCluster, credential_dirs: Iterable[Path]) -> list[Needle]:
    needles = [Needle("password of the broker admin", "password", cluster.admin_password_file.read_bytes().strip())]
    for directory in credential_dirs:
        for path in sorted(directory.glob("*.password")):
            needles.append(Needle(f"password of {path.stem}", "password", path.read_bytes().strip()))
    return needles


def identifier_needles(seed: int) -> list[Needle]:
    market = build_market(MarketConfig(seed=seed))
    needles: dict[bytes, Needle] = {}
    for key, device in market.devices.items():
        for name in IDENTIFIER_FIELDS:
            value = device.hardware.get(name)
            if value:
                needles[value.encode()] = Needle(f"{name} of device {key}", "identifier", value.encode())
        for mac in device.macs:
            needles[mac.encode()] = Needle(f"MAC of device {key}", "identifier", mac.encode())
    return list(needles.values())


def scan(needles: Iterable[Needle], sources: dict[str, bytes]) -> list[str]:
    """'<label> in <source>' for every needle found; values are never part of the answer."""
    return [f"{n.label} in {where}" for where, data in sources.items() for n in needles if n.found_in(data)]


@pytest.fixture(scope="module")
def run(secure_kafka: SecureCluster, tmp_path_factory: pytest.TempPathFactory) -> SecuredRun:
    return secured_run(secure_kafka, tmp_path_factory.mktemp("secured-run"))


@pytest.fixture(scope="module")
def needles(secure_kafka: SecureCluster, run: SecuredRun) -> dict[str, list[Needle]]:
    found = {
        "key": key_needles(run.keyring.parent),
        "password": password_needles(secure_kafka, [run.credentials]),
        "identifier": identifier_needles(MARKET_SEED),
    }
    # The scan means something only if there is something to find.
    assert len(found["key"]) >= 20 and len(found["password"]) >= 10 and len(found["identifier"]) >= 500
    return found


def test_run_writes_no_secrets(secure_kafka: SecureCluster, run: SecuredRun, needles: dict[str, list[Needle]]) -> None:
    t = run.topics
    everything = needles["key"] + needles["password"] + needles["identifier"]
    material = needles["key"] + needles["password"]

    def topic_bytes(names: Iterable[str]) -> dict[str, bytes]:
        out = {}
        for name in names:
            records = run.raw.get(name, [])
            out[f"topic {name}"] = b"\n".join((k or b"") + b"\t" + (v or b"") for k, v in records)
        return out

    no_plaintext_topics = [t.dlq, t.sharing_state, *(n for n in run.raw if n.startswith((t.feedback_prefix,
                                                                                          t.ref_prefix)))]  # fmt: skip
    product_topics = [t.reports, *(n for n in run.raw if n.startswith(t.exchange_prefix))]
    assert run.raw.get(t.dlq) and any(n.startswith(t.feedback_prefix) for n in run.raw), "nothing to scan"
    sources = {"worker logs": run.worker_logs.encode(), **topic_bytes(no_plaintext_topics)}
    sources.update({f"metrics page {i}": page.encode() for i, page in enumerate(run.metrics)})
    for path in sorted((secure_kafka.state / "logs").glob("*")):
        sources[f"broker log {path.name}"] = path.read_bytes()
    sources["broker server.properties"] = (secure_kafka.state / "server.properties").read_bytes()
    assert run.metrics and any("lt_records_in_total" in page for page in run.metrics), "no metrics were scraped"

    sources["store sink output"] = run.store_note.encode()
    leaks = scan(everything, sources)
    leaks += scan(material, {**topic_bytes(product_topics), **{k: v for k, v in run.process_views.items()}})
    assert not leaks, f"{len(leaks)} secrets found where they must never be: {leaks[:20]}"


def test_scanner_finds_what_it_looks_for(run: SecuredRun, needles: dict[str, list[Needle]]) -> None:
    """Positive controls: the same scan finds keys in the keyring, and the run's identifiers where they belong."""
    keyring_files = {p.name: p.read_bytes() for p in (run.keyring.parent / "keys").iterdir()}
    # The files hold the PEM lines and the lower-case hex; the other forms are decoded from them.
    decoded = {f"{name} decoded": base64.b64decode(b"".join(data.splitlines()[1:-1])) if name.endswith(".pem")
               else bytes.fromhex(data.decode().strip()) for name, data in keyring_files.items()
               if not name.endswith(".pub.pem")}  # fmt: skip
    encoded = {f"{name} Base64": base64.b64encode(data) for name, data in decoded.items()}
    upper = {f"{name} upper": data.upper() for name, data in keyring_files.items() if name.endswith(".hex")}
    found = {hit.split(" in ")[0] for hit in scan(needles["key"], {**keyring_files, **decoded, **encoded, **upper})}
    assert found == {n.label for n in needles["key"]}, {n.label for n in needles["key"]} - found
    reports = b"\n".join(v or b"" for _, v in run.raw[run.topics.reports])
    hits = scan(needles["identifier"], {"lt.reports": reports})
    kinds = {hit.split(" of ")[0] for hit in hits}
    assert len(hits) >= 200 and {"disk_serial", "imei", "phone", "MAC"} <= kinds, kinds
    imei = next(n for n in needles["identifier"] if n.label.startswith("imei"))
    password = needles["password"][1]
    line = b'{"msg": "x", "value": "' + password.value + b'", "imei": "' + imei.value + b'"}'
    assert scan([password], {"line": line}) and scan([imei], {"line": line})
    assert not scan([imei], {"in a longer number": b"1" + imei.value + b"0"})


def test_store_tables_hold_no_keys_or_passwords(run: SecuredRun, needles: dict[str, list[Needle]]) -> None:
    assert not run.store_failed, run.store_note
    if run.store_dump is None:
        pytest.skip(f"the store sink did not run: {run.store_note}")
    assert run.store_dump, "the store has no rows"
    leaks = scan(needles["key"] + needles["password"], {f"store table {k}": v for k, v in run.store_dump.items()})
    assert not leaks, f"{len(leaks)} secrets in the store: {leaks[:20]}"
    dead_letters = {k: v for k, v in run.store_dump.items() if "dead" in k or "dlq" in k}
    assert dead_letters, sorted(run.store_dump)
    assert not scan(needles["identifier"], dead_letters), "decrypted identifiers in the dead-letter table"


def test_keyring_must_be_owner_only_to_start(run: SecuredRun, tmp_path: Path) -> None:
    """`lookthrough run` refuses a keyring (or key file) that group or others may read, and says how to fix it."""
    keyring_dir = tmp_path / "keyring"
    shutil.copytree(run.keyring.parent, keyring_dir)
    env = {**os.environ, "LT_PIPELINE_KEYRING": str(keyring_dir / "keyring.json"),
           "LT_PIPELINE_FINGERPRINT_KEY": "x" * 32, "LT_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # fmt: skip
    secrets = key_needles(keyring_dir)
    for path in (keyring_dir / "keyring.json", keyring_dir / "keys" / "v1-x25519.pem"):
        path.chmod(0o644)
        result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--instance", "perm-check"], env=env,
                                capture_output=True, timeout=60, cwd=ROOT)  # fmt: skip
        path.chmod(0o600)
        assert result.returncode == 2, result.stderr[-2000:]
        assert path.name.encode() in result.stderr and b"chmod 600" in result.stderr
        assert not scan(secrets, {"stderr": result.stderr, "stdout": result.stdout})
