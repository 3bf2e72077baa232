"""One run, one owner: an exclusive lock on a run's claim file while a process trains it.

Design choices:
- flock, not a pid check: the OS drops the lock when its process dies, however it dies
  (SIGKILL included), while a pid may since have been given to an unrelated process.
- The owner writes its pid and host into the file, for the message that refuses a
  second owner; the lock, not the text, is what decides.
- A claim file is removed only by the process holding its lock, and a lock is kept only
  if the file locked is still the one at the path: so no two processes ever both believe
  they hold a run (one holding a removed file, the other a new one).
- Where flock does not exist (Windows) or the file system refuses it, runs are not locked.
This module never imports torch.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from mygpt.errors import CheckpointError, TrainingError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

# The claim files this process holds, with their descriptors: a flock lasts as long as its
# open file, so the descriptor stays open until `release` (or the process ends).
_HELD: dict[str, int] = {}


def acquire(lock_file: Path, run: Path, *, new: bool = False) -> bool:
    """Lock `lock_file` (run's claim) for this process; True once held (also when it already was).

    new: create the file exclusively, for a new run's name; False when it exists, or when
    another process got the new file first. Otherwise an existing claim a dead process left
    is taken over, and one a live process holds raises TrainingError naming that process.
    """
    key = os.path.abspath(lock_file)
    if key in _HELD:  # this process holds it: the run is ours, but a new run's name is taken
        return not new
    while True:
        try:
            fd = os.open(lock_file, os.O_CREAT | os.O_RDWR | (os.O_EXCL if new else 0), 0o666)
        except FileExistsError:  # only with new: another run has this name
            return False
        except OSError as exc:
            raise CheckpointError(
                f"cannot write in the checkpoint folder {lock_file.parent}: {exc.strerror}."
            ) from None
        if not _flock(fd):
            os.close(fd)
            if new:
                return False
            raise TrainingError(_in_use(lock_file, run))
        if _is_at(fd, lock_file):
            break
        os.close(fd)  # its owner released (removed) it after this process opened it
        if new:
            return False
    owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode(), 0)
    except OSError:  # the text only names the owner; the lock is taken all the same
        pass
    _HELD[key] = fd
    return True


def release(lock_file: Path) -> None:
    """Remove the claim file and drop its lock, if this process holds it (else do nothing).
    Removed before the lock is dropped: nobody can take a lock on a file that is gone."""
    fd = _HELD.pop(os.path.abspath(lock_file), None)
    if fd is not None:
        Path(lock_file).unlink(missing_ok=True)
        os.close(fd)


def _flock(fd: int) -> bool:
    """Lock without waiting; False when a live process holds the lock."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (ENOLCK, EOPNOTSUPP): train unlocked, as on Windows
        return True
    return True


def _is_at(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _in_use(lock_file: Path, run: Path) -> str:
    """Why a run that another process holds cannot be taken: which process, and what to do."""
    try:
        owner = json.loads(lock_file.read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):  # it has locked the file and not yet written it
        return f"the run {run} is being trained by another process; wait for it to finish, or stop it first."
    where = "" if host == socket.gethostname() else f" on {host}"
    return (
        f"the run {run} is being trained by process {pid}{where}: two processes training one run would "
        f"overwrite each other's checkpoints. Wait for it to finish, or stop it first (`kill {pid}` saves it), "
        "then resume."
    )
