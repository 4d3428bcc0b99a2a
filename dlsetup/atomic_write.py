"""Files written whole or not at all (locks, environment files, benchmark documents, kernels)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it and a rename.

    A reader, or a run interrupted half way, sees the old file or the new one, never a partial
    one; on failure the old file is left as it was and the temporary file is removed. The file
    gets the permissions an ordinary ``open()`` gives (``0o666`` less the umask), not the
    owner-only ones of :func:`tempfile.mkstemp`, so a lock can be shared.

    Args:
        path: the file to write; its directory must exist.
        text: the whole content.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
