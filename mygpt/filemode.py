"""The mode of what mygpt writes: ordinary files, as the user's umask makes them.

Atomic writers build a file or folder under a temporary name and rename it into place.
What creates those temporaries is often private on purpose: safetensors' writer makes
0600 files, `tempfile.mkdtemp` 0700 folders. A rename keeps the mode, so before it
`make_ordinary` gives the temporary the mode a plain `open()` or `mkdir` would have.
"""

from __future__ import annotations

import os
from pathlib import Path

_STATUS = "/proc/self/status"


def umask() -> int:
    """The process's umask, read without changing it where the OS shows it (Linux's
    /proc/self/status). Elsewhere it is set and put back at once: `os.umask` has no
    read-only form, and a thread creating a file in between would see the other value."""
    try:
        with open(_STATUS, encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # not Linux, or a kernel older than 4.7
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def ordinary_mode(folder: bool = False) -> int:
    """The mode the umask gives a new file (from 0o666) or folder (from 0o777)."""
    return (0o777 if folder else 0o666) & ~umask()


def make_ordinary(path: str | Path) -> None:
    """Give a file or folder the mode the umask gives a newly created one (raises OSError)."""
    os.chmod(path, ordinary_mode(folder=os.path.isdir(path)))
