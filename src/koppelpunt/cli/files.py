"""Files the CLI writes that hold secrets or personal data."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read: a connection config (it holds a
    password), an export of rejected messages (they hold BSNs).

    A new file is created 0600 beside `path` (mkstemp: os.open with O_EXCL and mode 0o600,
    whatever the umask) and renamed over it. An existing file is thereby replaced, not
    rewritten: whoever could read it, or had it open, does not see the password. Something
    that is not a regular file (/dev/stdout, a pipe) is written as it is.
    """
    if path.exists() and not path.is_file():
        with path.open("w") as fh:
            fh.write(text)
        return
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
