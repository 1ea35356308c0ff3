"""Operator commands: `lookthrough keys generate | list | retire | revoke | export-public`.

Each command is a plain function over the keyring path (usable from Python) with a thin
argparse handler returning an exit code. Writes are atomic and leave the keyring and key
files at mode 0600 (the keys/ directory 0700). Failures raise ConfigError.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.arguments import positive_int
from pipeline.crypto.files import create_owner_only, make_private_dir, write_owner_only
from pipeline.crypto.keyfile import (
    EntrySpec,
    Environment,
    KeyEntry,
    KeyStatus,
    parse_instant,
    parse_keyring,
    read_keyring,
    write_keyring,
)
from pipeline.crypto.material import generate, pre_shared_key, public_pem
from pipeline.crypto.reporter_keys import export_document
from pipeline.crypto.suites import Suite
from pipeline.errors import ConfigError

KEYS_DIR = "keys"


def generate_key(
    keyring: Path,
    suite: Suite,
    *,
    version: int | None = None,
    environment: Environment = Environment.PRODUCTION,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> KeyEntry:
    """Make a key pair (or SM4 key) under keys/ beside the keyring and add it as an active entry.

    `version` defaults to one more than the highest existing version. The keyring file is
    created if missing.
    """
    document, specs = _read_or_new(keyring)
    taken = {spec.entry.version for spec in specs}
    version = max(taken, default=0) + 1 if version is None else version
    if version in taken:
        raise ConfigError(f"key version {version} already exists in {keyring}")
    stem = f"{KEYS_DIR}/v{version}-{suite.name.lower()}"
    item: dict[str, Any] = {
        "version": version,
        "suite": suite.label,
        "environment": environment.value,
        "status": KeyStatus.ACTIVE.value,
    }
    if not_before is not None:
        item["not_before"] = not_before.isoformat()
    if not_after is not None:
        item["not_after"] = not_after.isoformat()
    item["private_key"] = {"file": f"{stem}.hex" if suite is Suite.SM4 else f"{stem}.pem"}
    if suite is not Suite.SM4:
        item["public_key"] = {"file": f"{stem}.pub.pem"}
    document["entries"].append(item)
    # Validate the new entry before any key file exists, so a bad argument leaves nothing behind.
    new_spec = parse_keyring(document, keyring.parent, str(keyring))[-1]

    material = generate(suite)
    make_private_dir(keyring.parent / KEYS_DIR)
    create_owner_only(keyring.parent / item["private_key"]["file"], material.private)
    if material.public is not None:
        create_owner_only(keyring.parent / item["public_key"]["file"], material.public)
    write_keyring(keyring, document)
    return new_spec.entry


def set_status(keyring: Path, version: int, status: KeyStatus) -> KeyEntry:
    """Mark `version` retired or revoked; revocation is final."""
    document, specs = read_keyring(keyring)
    for index, spec in enumerate(specs):
        if spec.entry.version != version:
            continue
        if spec.entry.status is KeyStatus.REVOKED and status is not KeyStatus.REVOKED:
            raise ConfigError(f"key version {version} is revoked; revocation is final")
        document["entries"][index]["status"] = status.value
        write_keyring(keyring, document)
        return parse_keyring(document, keyring.parent, str(keyring))[index].entry
    raise ConfigError(f"key version {version} is not in {keyring}")


def list_keys(keyring: Path) -> list[KeyEntry]:
    """Every entry's metadata, by version (reads no key material)."""
    _, specs = read_keyring(keyring)
    return sorted((spec.entry for spec in specs), key=lambda entry: entry.version)


def export_public(keyring: Path, *, include_psk: bool = False) -> dict[str, Any]:
    """The public keyring for reporters: active entries only, SM4 keys only if `include_psk`."""
    _, specs = read_keyring(keyring)
    active = sorted((s for s in specs if s.entry.status is KeyStatus.ACTIVE), key=lambda s: s.entry.version)
    return export_document(_public_part(spec, include_psk) for spec in active)


def format_table(entries: list[KeyEntry]) -> str:
    """The `keys list` table: version, suite, environment, status, validity."""
    rows = [("VERSION", "SUITE", "ENVIRONMENT", "STATUS", "VALIDITY")]
    rows += [
        (str(e.version), e.suite.label, e.environment.value, e.status.value, e.validity()) for e in entries
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[4]])
        for row in rows
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keys` command group to the top-level CLI."""
    keys = subparsers.add_parser("keys", help="manage the decryption keyring")
    commands = keys.add_subparsers(dest="keys_command", required=True)

    gen = commands.add_parser("generate", help="generate a key and add it to the keyring")
    _keyring_arg(gen)
    gen.add_argument("--suite", required=True, choices=[suite.name.lower() for suite in Suite])
    gen.add_argument("--version", type=positive_int, help="key version (default: highest + 1)")
    gen.add_argument("--environment", choices=[e.value for e in Environment], default="production")
    gen.add_argument("--not-before", metavar="ISO", help="start of validity, ISO-8601 with UTC offset")
    gen.add_argument("--not-after", metavar="ISO", help="end of validity (exclusive)")
    gen.set_defaults(handler=_generate)

    lst = commands.add_parser("list", help="list key versions (no key material)")
    _keyring_arg(lst)
    lst.set_defaults(handler=_list)

    for name, status, text in (
        ("retire", KeyStatus.RETIRED, "stop exporting a key; it still decrypts"),
        ("revoke", KeyStatus.REVOKED, "reject every blob under a key (final)"),
    ):
        cmd = commands.add_parser(name, help=text)
        _keyring_arg(cmd)
        cmd.add_argument("version", metavar="VERSION", type=positive_int)
        cmd.set_defaults(handler=_set_status, status=status)

    exp = commands.add_parser("export-public", help="write the public keyring for reporters")
    _keyring_arg(exp)
    exp.add_argument("--out", type=Path, help="output file (mode 0600; default: standard output)")
    exp.add_argument("--include-psk", action="store_true", help="include SM4 pre-shared keys (secret!)")
    exp.set_defaults(handler=_export)


def _generate(args: argparse.Namespace) -> int:
    entry = generate_key(
        args.keyring,
        Suite[args.suite.upper()],
        version=args.version,
        environment=Environment(args.environment),
        not_before=None if args.not_before is None else parse_instant(args.not_before, "--not-before"),
        not_after=None if args.not_after is None else parse_instant(args.not_after, "--not-after"),
    )
    print(f"generated key version {entry.version} ({entry.suite.label}, {entry.environment.value})")
    return 0


def _list(args: argparse.Namespace) -> int:
    print(format_table(list_keys(args.keyring)))
    return 0


def _set_status(args: argparse.Namespace) -> int:
    entry = set_status(args.keyring, args.version, args.status)
    print(f"key version {entry.version} is now {entry.status.value}")
    return 0


def _export(args: argparse.Namespace) -> int:
    text = json.dumps(export_public(args.keyring, include_psk=args.include_psk), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_owner_only(args.out, text.encode())
    return 0


def _public_part(spec: EntrySpec, include_psk: bool) -> tuple[KeyEntry, str | None, bytes | None]:
    if spec.entry.suite is Suite.SM4:
        return spec.entry, None, pre_shared_key(spec) if include_psk else None
    return spec.entry, public_pem(spec), None


def _read_or_new(keyring: Path) -> tuple[dict[str, Any], list[EntrySpec]]:
    if keyring.exists():
        return read_keyring(keyring)
    make_private_dir(keyring.parent)
    return {"entries": []}, []


def _keyring_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keyring", type=Path, required=True, help="path of the keyring JSON file")
