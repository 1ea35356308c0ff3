"""The project's error types.

Every error a stage raises for bad input is a `RejectError` carrying a profile §7 code
(E1xx decode, E2xx decrypt, E3xx normalize, E4xx enrich). Messages never contain
decrypted identifiers or key material: they name fields and positions, not values.
Operator-side failures (bad configuration, unreadable keyring) are `ConfigError`.
"""

from __future__ import annotations


class LookthroughError(Exception):
    """Root of every error raised by this package."""


class ConfigError(LookthroughError):
    """Settings, keyring or reference files are unusable; the operator must fix them."""


class RejectError(LookthroughError):
    """A report is rejected. `code` is the profile §7 error code; `stage` names the stage."""

    stage = "pipeline"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[RejectError], tuple[str, str]]:
        # Pickled by its own arguments: `args` holds the joined text, which __init__ does not take.
        return type(self), (self.code, self.message)


class EnvelopeError(RejectError):
    """The Kafka value or the report line is malformed (E101–E105)."""

    stage = "decode"


class DecryptError(RejectError):
    """The terminal-information blob cannot be decrypted (E201–E205)."""

    stage = "decrypt"


class TerminalInfoError(RejectError):
    """The decrypted terminal information is malformed (E301–E304)."""

    stage = "normalize"


class EnrichError(RejectError):
    """Reference data rejects the report (E401)."""

    stage = "enrich"
