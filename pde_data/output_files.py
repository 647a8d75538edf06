"""Output files that are never clobbered, mixed up or left half-replaced: the rules every pdeop writer follows.

pdeop writes large files over minutes or hours, may be killed at any moment, and may be started twice
on the same output by mistake. Three rules keep every file the user has intact. This module holds the
one implementation of their mechanisms (process-unique temporary names, their owners, PID-recording
locks, flushing, probing a folder); :mod:`operators.atomic_files` and the run folders of
:mod:`operators.training.run_folder` build on it.

1. **One writer per output.** A writer of ``OUT`` holds :class:`WriterLock` (an ``flock(2)`` on the
   small lock file ``.OUT.lock`` beside it, which records the holder's PID and host) for as long as
   it creates, resumes or replaces ``OUT``. A second writer fails at once with a
   :class:`~solvers.errors.ConfigError` "OUT is being written by process PID". The kernel drops the
   lock when the holder dies, ``kill -9`` included, so a lock file left behind never blocks anyone;
   the holder removes it on release. Readers take no lock.
2. **Unique temporary names.** :func:`temp_path` gives ``.OUT.tmp-PID-RANDOM`` in OUT's folder
   (same file system, so the final rename is atomic; :func:`owner` reads the PID back). A process
   deletes only the temporary files it made itself; temporaries of writers that died (``kill -9``)
   are removed by the next holder of the lock (:func:`remove_orphans`, through :func:`stale`),
   and only when their PID no longer runs.
3. **Atomic replacement.** :func:`replace` flushes the new file to disk and renames it over ``OUT``
   (then flushes the folder), so ``OUT`` is always either the old file or the complete new one.
   An existing file is replaced only once its successor is complete: until then the successor
   grows under :func:`partial_path` (``OUT.partial``), which a rerun of the same command resumes.

Paths are resolved through a final symlink first (:func:`resolve_output`), so replacing a linked
file replaces the file, not the link, and every rule applies to the real file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from solvers.errors import ConfigError

try:
    import fcntl
except ImportError:  # no POSIX locks (Windows): outputs are still checked and replaced atomically, but
    fcntl = None  # two writers of one output are not detected

#: longest file name most file systems accept (bytes)
_NAME_MAX = 255
#: how long a refused writer waits for the holder's PID to appear in a just-created lock file
_PID_WAIT_SECONDS = 1.0
#: the writer's PID in a name made by :func:`temp_path`
_OWNER = re.compile(r"\.(?:tmp|old|partial)-(\d+)-[0-9a-f]+")


def shown(path: str | Path) -> str:
    """``path`` for a one-line message: as is, or quoted with escapes when it holds control characters."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def resolve_output(path: str | Path) -> Path:
    """The file an output path stands for: absolute, with a final symlink followed.

    Raises
    ------
    ConfigError
        If the path exists but is not a regular file (a folder, a device such as ``/dev/full``, a
        FIFO, a socket), or is a symlink loop.
    """
    path = Path(os.path.abspath(os.fspath(path)))
    try:
        if path.is_symlink():
            path = Path(os.path.realpath(path))
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            hint = f"; give a file name such as {shown(path / 'data.h5')}" if path.is_dir() else \
                "; choose a file name in a folder"
            raise ConfigError(f"--out {shown(path)} is {kind}{hint}")
    except OSError as exc:
        raise ConfigError(f"--out {shown(path)} cannot be used: {exc.strerror or exc}") from None
    return path


def _short(name: str, room: int) -> str:
    """``name``, or a hash of it when it leaves fewer than ``room`` bytes of a file name."""
    if len(os.fsencode(name)) + room <= _NAME_MAX:
        return name
    return "pdeop-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:24]


def _existing_ancestor(path: Path) -> Path:
    current = path.absolute()
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def name_max(path: Path) -> int:
    """Longest file name (bytes) accepted where ``path`` is or would be (255 when the system cannot say)."""
    try:
        return int(os.pathconf(_existing_ancestor(Path(path)), "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _NAME_MAX


def check_folder_writable(folder: Path, what: str) -> None:
    """``folder`` (or, when it does not exist yet, the nearest existing folder above it) accepts new files.

    A probe file is created and removed: the only test that also holds for root (who ignores
    permission bits) and read-only mounts.

    Raises
    ------
    ConfigError
        Naming ``what`` when the place is a file, a folder name is too long, or the place refuses
        writing (permissions, read-only mount).
    """
    try:
        base = _existing_ancestor(folder)
        folder_is_dir = base.is_dir()
        limit = name_max(base)
    except OSError as exc:
        raise ConfigError(f"{what}: {shown(str(folder)[:80])} cannot be used ({exc.strerror or exc})") from None
    if any(len(os.fsencode(part)) > limit for part in Path(folder).parts):
        raise ConfigError(f"{what}: a folder name in {shown(str(folder)[:80])}... is longer than the {limit} bytes "
                          "this file system allows")
    if not folder_is_dir:
        raise ConfigError(f"{what}: {shown(base)} is a file, so {shown(folder)} cannot be created")
    probe = temp_path(base / "pdeop-probe", keep_suffix=False)
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write in {shown(base)} ({exc.strerror or exc})") from None
    probe.unlink()


def _sibling(path: Path, prefix: str, suffix: str) -> Path:
    """``prefix + name + suffix`` beside ``path``, hashed when the name would be too long."""
    return path.with_name(f"{prefix}{_short(path.name, len(prefix) + len(suffix))}{suffix}")


def lock_path(path: Path) -> Path:
    """The lock file of output ``path``: ``.NAME.lock`` in the same folder."""
    return _sibling(path, ".", ".lock")


def partial_path(path: Path) -> Path:
    """Where the replacement of an existing ``path`` grows until it is complete: ``NAME.partial``."""
    return _sibling(path, "", ".partial")


#: room a temporary name needs beyond the target's name: ``.`` ``.KIND-PID-RANDOM`` and a suffix
_TEMPORARY_ROOM = 48


def temp_path(target: str | os.PathLike, kind: str = "tmp", keep_suffix: bool = True) -> Path:
    """A hidden, process-unique sibling of ``target`` (same folder, so renaming it into place is atomic).

    ``.STEM.KIND-PID-RANDOM.SUFFIX`` with ``keep_suffix`` (tools that read the suffix still
    recognise the staged file), else ``.NAME.KIND-PID-RANDOM`` (folders, dataset files). A name
    too long for the file system is replaced by a hash of it. ``kind`` says what the copy is
    (``tmp``, ``old``, ``partial``); :func:`owner` reads the PID back. The caller deletes it (and
    only it) if it is not renamed into place.
    """
    target = Path(target)
    token = f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    stem, suffix = (target.stem, target.suffix) if keep_suffix and len(target.suffix) <= 16 else (target.name, "")
    return target.with_name(f".{_short(stem, _TEMPORARY_ROOM)}.{token}{suffix}")


def owner(path: str | os.PathLike) -> int | None:
    """PID recorded in a name made by :func:`temp_path` (None if the name has none)."""
    match = _OWNER.search(Path(path).name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def stale(candidates: Iterable[Path]) -> list[Path]:
    """The ``candidates`` whose writer (the PID in the name) is neither this process nor alive.

    A name without a PID counts as stale: callers pass only names of their own pattern.
    """
    found = []
    for path in candidates:
        pid = owner(path)
        if pid is None or (pid != os.getpid() and not pid_alive(pid)):
            found.append(path)
    return found


def remove_orphans(path: Path) -> list[Path]:
    """Delete the temporary files of ``path`` whose writers no longer run; return what was deleted.

    Call only while holding ``path``'s :class:`WriterLock`: every live writer of ``path`` holds it,
    so a temporary file of another PID that still exists belongs to a process that died (or, if the
    PID was reused by a process outside pdeop, is left alone).
    """
    prefix = f".{_short(path.name, _TEMPORARY_ROOM)}.tmp-"
    try:
        candidates = [path.parent / name for name in os.listdir(path.parent) if name.startswith(prefix)]
    except OSError:
        return []
    removed = []
    for orphan in stale(c for c in candidates if owner(c) is not None):
        try:
            orphan.unlink()
            removed.append(orphan)
        except (FileNotFoundError, IsADirectoryError):
            pass
    return removed


def replace(new: Path, path: Path) -> None:
    """Flush ``new`` to disk and rename it over ``path`` atomically, then flush the folder.

    Raises
    ------
    ConfigError
        If the flush or the rename fails (e.g. no space left); ``path`` is then unchanged.
    """
    try:
        fsync_file(new)
        os.replace(new, path)
        fsync_folder(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot replace {shown(path)} with the new file {shown(new)}: "
                          f"{exc.strerror or exc}; {shown(path)} is unchanged") from None


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (after renames in it); ignored where folders cannot be opened or synced."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


class WriterLock:
    """Exclusive lock of one output file, held while it is created, resumed or replaced (rule 1).

    Use as a context manager::

        with WriterLock(out):
            ...  # create / fill / replace out

    Parameters
    ----------
    path
        The output file (as from :func:`resolve_output`).

    Raises
    ------
    ConfigError
        On entry, if another process holds the lock ("OUT is being written by process PID"), or
        if the lock file cannot be created (read-only folder, no space).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_file = lock_path(self.path)
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting (see the class docstring)."""
        while self._fd is None:
            try:
                fd = exclusive_lock(self.lock_file, lambda fd: _same_file(fd, self.lock_file))
            except LockHeld as held:
                raise ConfigError(f"{shown(self.path)} is being written by {held.holder}; wait for it to finish "
                                  "or choose another --out") from None
            except OSError as exc:
                raise ConfigError(f"cannot lock {shown(self.path)} through {shown(self.lock_file)}: "
                                  f"{exc.strerror or exc}; choose another --out") from None
            self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.lock_file):
                self.lock_file.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` says who ("process PID", or "... on host H")."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def exclusive_lock(lock_file: Path, still_current: Callable[[int], bool] | None = None) -> int:
    """Take an exclusive ``flock`` on ``lock_file`` without waiting and record this process in it.

    The lock file is created if needed and holds ``PID HOST``; the kernel drops the lock when the
    process dies (``kill -9`` included), so a file left behind blocks nobody.

    Parameters
    ----------
    lock_file
        The lock file.
    still_current
        Tells, given the locked descriptor, whether the file locked is still the one at
        ``lock_file`` (a holder that removes its lock file on release may have removed it
        meanwhile); when it says no, the lock is dropped and taken again.

    Returns
    -------
    int
        The open descriptor; closing it releases the lock.

    Raises
    ------
    LockHeld
        If another process holds the lock (naming it).
    OSError
        If the lock file cannot be created, locked or written.
    """
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockHeld(_holder(fd)) from None
                raise
            if still_current is not None and not still_current(fd):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise
        return fd


def writer_of(path: str | Path) -> str | None:
    """Who holds ``path``'s :class:`WriterLock` now ("process PID"), or None if nobody does.

    For readers: a file being written is incomplete and changes while read.
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(lock_path(Path(os.path.abspath(os.fspath(path)))), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(fd)
    finally:
        os.close(fd)
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(fd: int) -> str:
    """Who holds the lock on ``fd``'s file: "process PID" (and the host when it is another one)."""
    deadline = time.monotonic() + _PID_WAIT_SECONDS
    while True:
        try:
            text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
        except OSError:
            text = []
        if text and text[0].isdigit():
            host = f" on host {text[1]}" if len(text) > 1 and text[1] != socket.gethostname() else ""
            return f"process {text[0]}{host}"
        if time.monotonic() > deadline:
            return "another process"
        time.sleep(0.02)
