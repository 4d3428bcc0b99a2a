"""A keyring backend for the tests: the passwords in one JSON file, ``{"HOST:PORT": {"USER":
"PASSWORD"}}``, named by ``$DLSETUP_TEST_KEYRING_FILE``; every lookup is appended to that file's
``.log`` beside it. Chosen with ``PYTHON_KEYRING_BACKEND=tests.support.keyring_file.FileKeyring``
(the real ``keyring`` command, which uv runs for ``keyring-provider = "subprocess"``, then answers
from it instead of a desktop keyring this machine does not have)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

#: the variable naming the JSON file of passwords
FILE_VAR = "DLSETUP_TEST_KEYRING_FILE"


class FileKeyring(KeyringBackend):  # type: ignore[misc]
    """Answers a service whose URL or name holds a ``HOST:PORT`` of the file."""

    priority = 1.0

    def get_password(self, service: str, username: str) -> str | None:
        path = Path(os.environ[FILE_VAR])
        with open(f"{path}.log", "a", encoding="utf-8") as log:
            log.write(f"{service} {username}\n")
        entries: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
        for host, users in entries.items():
            if host in service and username in users:
                return users[username]
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise PasswordSetError("the tests' keyring is read-only")

    def delete_password(self, service: str, username: str) -> None:
        raise PasswordDeleteError("the tests' keyring is read-only")
