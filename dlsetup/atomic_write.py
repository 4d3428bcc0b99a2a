"""Files written whole or not at all (locks, environment files, benchmark documents, kernels)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from dlsetup.errors import DlsetupError, InputError


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


class WriteError(DlsetupError):
    """Files could not be written (a full disk, an I/O error); the old ones were left as they were.

    (A wrong place to write, such as a read-only directory, is an :class:`InputError`.)
    """


#: errno values that mean "this is the wrong place to write": a usage error, not a failure
_WRONG_PLACE = {
    errno.ENOTDIR: "a path component is a file, not a directory",
    errno.EEXIST: "it exists and is not a directory",
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "a directory is in the way",
    errno.ENAMETOOLONG: "the name is too long",
}
_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded"}


def output_error(exc: OSError, path: Path, *, what: str = "write") -> DlsetupError:
    """The :class:`DlsetupError` for an ``OSError`` met writing into ``path`` (a directory or file).

    Wrong places (read-only, not a directory, permission) are :class:`InputError` (exit 2) with a
    fix naming another place; a full disk or an I/O error is a :class:`WriteError` (exit 4).
    """
    code = exc.errno if exc.errno is not None else -1
    if code in _WRONG_PLACE:
        return InputError(
            f"cannot {what} {path}: {_WRONG_PLACE[code]}",
            fix="choose another --output directory, one you can write to",
        )
    reason = _FULL.get(code) or exc.strerror or str(exc)
    return WriteError(
        f"cannot {what} {path}: {reason}; existing files there were left as they were",
        fix="free some space (or fix the device) and retry"
        if code in _FULL
        else "check the device, then retry",
    )


def replace_together(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename each ``(new, destination)`` pair into place: all of them, or none.

    The new files must lie in their destinations' directories (a rename within one file system).
    Each existing destination first gets a hard link as its backup (so it never disappears;
    where hard links are not supported it is renamed aside instead). If any rename fails, the
    destinations already replaced get their old files back (or are removed when there was none),
    and the error is raised; on success the backups are removed.

    What this guarantees: when the call returns or raises, the destinations hold all-new files or
    all-old ones. A reader in the middle of the call (a few renames) may see some of each, and a
    process killed (SIGKILL, power loss) between the first and the last rename leaves that mix and
    the backups (``.NAME.*.old``); POSIX has no rename of several files at once.

    Raises:
        OSError: a rename failed (the old files were restored).
    """
    token = f"{os.getpid()}.{secrets.token_hex(4)}"
    backups: dict[Path, Path] = {}
    moved_aside: set[Path] = set()  # destinations whose backup is a rename, not a hard link
    replaced: set[Path] = set()
    try:
        for _, dest in moves:
            if not os.path.lexists(dest):
                continue
            backup = dest.with_name(f".{dest.name}.{token}.old")
            try:
                os.link(dest, backup, follow_symlinks=False)
            except OSError:
                os.replace(dest, backup)
                moved_aside.add(dest)
            backups[dest] = backup
        for new, dest in moves:
            os.replace(new, dest)
            replaced.add(dest)
    except BaseException:
        # (renaming a hard link onto its twin does nothing: only touch what actually changed)
        for _, dest in moves:
            if dest not in replaced and dest not in moved_aside:
                continue
            with contextlib.suppress(OSError):
                if dest in backups:
                    os.replace(backups.pop(dest), dest)
                else:
                    dest.unlink()
        raise
    finally:
        for backup in backups.values():
            with contextlib.suppress(OSError):
                backup.unlink()
