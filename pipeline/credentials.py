"""Passwords of managed principals: one owner-only file per user in a private directory.

`CredentialStore(directory).password(user)` returns the password in `<directory>/<user>.password`,
creating the file with a fresh random password (mode 0600, directory 0700) when it is missing.
A file that group or others may read is refused (ConfigError naming the file, never its content).
The operator hands each party its own file out of band; clients read it through
LT_KAFKA_SASL_PASSWORD_FILE, so a password never appears on a command line.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from pipeline.crypto.files import create_owner_only, make_private_dir, read_owner_only, write_owner_only
from pipeline.errors import ConfigError

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def new_password() -> str:
    """43 URL-safe characters (256 bits): safe inside JAAS strings, SCRAM specs and XML."""
    return secrets.token_urlsafe(32)


class CredentialStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, user: str) -> Path:
        if not _USER.fullmatch(user):
            raise ConfigError(f"user name {user!r} is not usable as a credential file name")
        return self.directory / f"{user}.password"

    def exists(self, user: str) -> bool:
        return self.path(user).is_file()

    def password(self, user: str, *, create: bool = True) -> str:
        """The user's password; a new one is generated and stored when `create` and none exists."""
        path = self.path(user)
        if not path.exists():
            if not create:
                raise ConfigError(f"no password file for {user} ({path})")
            make_private_dir(self.directory)
            try:
                create_owner_only(path, (new_password() + "\n").encode())
            except ConfigError:
                if not path.exists():  # another process may just have created it; then read theirs
                    raise
        password = read_owner_only(path).decode().strip()
        if not password:
            raise ConfigError(f"{path} is empty")
        return password

    def rotate(self, user: str) -> str:
        """Replace the user's password with a new one (atomically) and return it."""
        make_private_dir(self.directory)
        password = new_password()
        write_owner_only(self.path(user), (password + "\n").encode())
        return password
