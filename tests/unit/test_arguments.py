"""Command options refuse bad counts, rates and names at parsing, naming the option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipeline import arguments
from pipeline.cli import build_parser, main


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (arguments.positive_int, "1", 1),
        (arguments.positive_int, " 20000 ", 20000),
        (arguments.non_negative_int, "0", 0),
        (arguments.positive_float, "0.5", 0.5),
        (arguments.non_negative_float, "0", 0.0),
        (arguments.positive_int_list, "1, 2,", (1, 2)),
        (arguments.name_list(("x25519", "rsa", "sm4")), "rsa,x25519,rsa", ("rsa", "x25519")),
    ],
)
def test_good_values_parse(parse: object, text: str, expected: object) -> None:
    assert callable(parse)
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (arguments.positive_int, "0", "positive integer"),
        (arguments.positive_int, "-3", "positive integer"),
        (arguments.positive_int, "2.5", "not an integer"),
        (arguments.non_negative_int, "-1", "0 or more"),
        (arguments.positive_float, "0", "greater than 0"),
        (arguments.positive_float, "inf", "finite"),
        (arguments.non_negative_float, "nan", "finite"),
        (arguments.non_negative_float, "soon", "not a number"),
        (arguments.positive_int_list, "1,0", "positive integer"),
        (arguments.positive_int_list, " , ", "at least one"),
        (arguments.name_list(("x25519", "rsa")), "x25519,ecdsa", "unknown ecdsa"),
    ],
)
def test_bad_values_are_refused(parse: object, text: str, message: str) -> None:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(text)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["demo", "--workers", "0"], "--workers"),
        (["demo", "--reports", "-5"], "--reports"),
        (["generate", "--out", "unused", "--reports", "0"], "--reports"),
        (["generate", "--out", "unused", "--suites", "x25519,des"], "--suites"),
        (["bench", "pipeline", "--workers", "1,x"], "--workers"),
        (["bench", "pipeline", "--latency-records", "0"], "--latency-records"),
        (["bench", "codec", "--suites", ""], "--suites"),
        (["bench", "store", "--sinks", "0"], "--sinks"),
        (["subscribe", "--exchange", "SHFE", "--max-records", "-1"], "--max-records"),
        (["subscribe", "--exchange", "NYMEX"], "--exchange"),
        (["report", "daily", "--exchange", "shfe", "--date", "2025-11-20"], "--exchange"),
        (["query", "shared-devices", "--from", "2025-01-01", "--to", "2025-01-02", "--min-brokers", "0"],
         "--min-brokers"),
        (["send", "unused.jsonl", "--reporter", "0101", "--keys", "k.json", "--batch-size", "0"], "--batch-size"),
        (["keys", "generate", "--keyring", "k.json", "--suite", "x25519", "--version", "0"], "--version"),
    ],
)
def test_commands_refuse_bad_options(argv: list[str], option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_defaults_are_parsed_values() -> None:
    args = build_parser().parse_args(["bench", "pipeline"])
    assert args.workers == (1, 2)
    assert args.suites == ("x25519", "rsa")
    assert build_parser().parse_args(["generate", "--out", "x"]).suites == ("x25519", "rsa", "sm4")


def test_an_impossible_defect_rate_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 22 classes at 0.05 each would need 110 % of the reports.
    assert main(["generate", "--out", str(tmp_path), "--reports", "10", "--defect-rate", "0.05"]) == 2
    assert "--defect-rate" in capsys.readouterr().err
