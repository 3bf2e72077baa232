"""Paths the user names, checked before they are opened; OS errors said in words.

Opening a FIFO for reading waits for a writer (usually forever), reading /dev/zero never
ends, and a folder fails with a message about something else. So every file the user
names (a corpus, config, prompt, ranks, metrics file or checkpoint) goes through
`require_regular` first: it uses `os.stat`, which never blocks, and refuses anything
that is not a regular file (a symlink to one is fine) with one sentence naming it.

`describe_os_error` turns an `OSError` into that kind of sentence too ("no space left on
the device holding PATH"), for the places that read or write files and catch it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Optional

from mygpt.errors import MyGPTError

_KINDS = (  # (test, the words for such a path)
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (a named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)

# errno -> what it means, said of the path.
_REASONS = {
    errno.ENOSPC: "no space left on the device holding {path}",
    errno.EDQUOT: "the disk quota is used up on the device holding {path}",
    errno.EROFS: "{path} is on a read-only file system",
    errno.EACCES: "permission denied for {path} (check its permissions and its folders')",
    errno.EPERM: "permission denied for {path} (check its permissions and its folders')",
    errno.ENOENT: "{path} does not exist",
    errno.EISDIR: "{path} is a folder, not a file",
    errno.ENOTDIR: "a part of {path} is not a folder",
    errno.EFBIG: "{path} would be larger than its file system allows",
    errno.ENAMETOOLONG: "the name {path} is too long",
    errno.ELOOP: "{path} has too many levels of symbolic links",
    errno.EIO: "an input/output error on the device holding {path} (the device may be failing)",
}

# numpy's tofile reports a short write without an errno: "1003855 requested and 524288 written".
_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")


def require_regular(path: str | Path, what: str = "file", error: type[MyGPTError] = MyGPTError) -> Path:
    """`path` as a Path if it is a regular file this process may read (a symlink to one
    is fine); else raises `error` with a sentence naming `what` ("config file", "prompt
    file", ...) and the path. Never opens the path, so a FIFO or device cannot block it."""
    path = Path(path)
    mode = stat_mode(path, what, error)
    if mode is None:
        raise error(f"no such {what}: {path}")
    if not stat.S_ISREG(mode):
        kind = next((words for test, words in _KINDS if test(mode)), "not a regular file")
        raise error(f"the {what} {path} is {kind}, not a regular file.")
    if not os.access(path, os.R_OK):
        raise error(f"cannot read the {what} {path}: permission denied.")
    return path


def stat_mode(path: str | Path, what: str = "file", error: type[MyGPTError] = MyGPTError) -> Optional[int]:
    """`os.stat(path).st_mode`, or None when nothing is there; any other failure (a
    folder on the way that may not be read) raises `error` naming `what` and the path,
    where pathlib's `exists()` and `is_dir()` would raise a bare PermissionError."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # the path is in the message already: only the reason
        reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else (exc.strerror or str(exc))
        raise error(f"cannot read the {what} {path}: {reason.lower()}.") from None


def describe_os_error(exc: OSError, path: Optional[str | Path] = None) -> str:
    """One sentence (no final stop) saying what `exc` means for `path` (by default the
    file name the error carries), e.g. "no space left on the device holding data/x"."""
    where = path if path is not None else (exc.filename if exc.filename is not None else "the file")
    if exc.errno in _REASONS:
        return _REASONS[exc.errno].format(path=where)
    if exc.errno is None and _SHORT_WRITE.match(str(exc)):  # a short write: the disk filled up
        return _REASONS[errno.ENOSPC].format(path=where) + " (a write stopped short)"
    return f"{where}: {exc.strerror or exc}"
