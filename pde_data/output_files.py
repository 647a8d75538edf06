"""Output files that are never clobbered, mixed up or left half-replaced: the rules every pdeop writer follows.

pdeop writes large files over minutes or hours, may be killed at any moment, and may be started twice
on the same output by mistake. Three rules keep every file the user has intact:

1. **One writer per output.** A writer of ``OUT`` holds :class:`WriterLock` (an ``flock(2)`` on the
   small lock file ``.OUT.lock`` beside it, which records the holder's PID and host) for as long as
   it creates, resumes or replaces ``OUT``. A second writer fails at once with a
   :class:`~solvers.errors.ConfigError` "OUT is being written by process PID". The kernel drops the
   lock when the holder dies, ``kill -9`` included, so a lock file left behind never blocks anyone;
   the holder removes it on release. Readers take no lock.
2. **Unique temporary names.** :func:`temporary_path` gives ``.OUT.<pid>-<random>.tmp`` in OUT's
   folder (same file system, so the final rename is atomic). A process deletes only the temporary
   files it made itself; temporaries of writers that died (``kill -9``) are removed by the next
   holder of the lock (:func:`remove_orphans`), and only when their PID no longer runs.
3. **Atomic replacement.** :func:`replace` flushes the new file to disk and renames it over ``OUT``
   (then flushes the folder), so ``OUT`` is always either the old file or the complete new one.
   An existing file is replaced only once its successor is complete: until then the successor
   grows under :func:`partial_path` (``OUT.partial``), which a rerun of the same command resumes.

Paths are resolved through a final symlink first (:func:`resolve_output`), so replacing a linked
file replaces the file, not the link, and every rule applies to the real file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import socket
import time
from pathlib import Path

from solvers.errors import ConfigError

#: longest file name most file systems accept (bytes)
_NAME_MAX = 255
#: room kept in a temporary name for ``<pid>-<random>.tmp``
_TEMPORARY_TAIL = 32
#: how long a refused writer waits for the holder's PID to appear in a just-created lock file
_PID_WAIT_SECONDS = 1.0


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


def _sibling(path: Path, prefix: str, suffix: str) -> Path:
    """``prefix + name + suffix`` beside ``path``, hashed when the name would be too long."""
    name = f"{prefix}{path.name}{suffix}"
    if len(name.encode("utf-8", "surrogateescape")) > _NAME_MAX:
        digest = hashlib.sha256(path.name.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        name = f"{prefix}pdeop-{digest}{suffix}"
    return path.with_name(name)


def lock_path(path: Path) -> Path:
    """The lock file of output ``path``: ``.NAME.lock`` in the same folder."""
    return _sibling(path, ".", ".lock")


def partial_path(path: Path) -> Path:
    """Where the replacement of an existing ``path`` grows until it is complete: ``NAME.partial``."""
    return _sibling(path, "", ".partial")


def _temporary_prefix(path: Path) -> str:
    """``.NAME.`` (hashed when ``NAME`` is long): what every temporary file of ``path`` starts with."""
    return _sibling(path, ".", "." + "x" * _TEMPORARY_TAIL).name[:-_TEMPORARY_TAIL]


def temporary_path(path: Path) -> Path:
    """A new temporary name for building ``path``: ``.NAME.<pid>-<random>.tmp`` in the same folder.

    Unique per process and call; the caller deletes it (and only it) if it is not renamed into place.
    """
    return path.with_name(f"{_temporary_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_orphans(path: Path) -> list[Path]:
    """Delete the temporary files of ``path`` whose writers no longer run; return what was deleted.

    Call only while holding ``path``'s :class:`WriterLock`: every live writer of ``path`` holds it,
    so a temporary file of another PID that still exists belongs to a process that died (or, if the
    PID was reused by a process outside pdeop, is left alone).
    """
    prefix = _temporary_prefix(path)
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):-len(".tmp")].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _running(int(pid_text)):
            continue
        try:
            (path.parent / name).unlink()
            removed.append(path.parent / name)
        except FileNotFoundError:
            pass
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def replace(new: Path, path: Path) -> None:
    """Flush ``new`` to disk and rename it over ``path`` atomically, then flush the folder.

    Raises
    ------
    ConfigError
        If the flush or the rename fails (e.g. no space left); ``path`` is then unchanged.
    """
    try:
        with open(new, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(new, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot replace {shown(path)} with the new file {shown(new)}: "
                          f"{exc.strerror or exc}; {shown(path)} is unchanged") from None


def _fsync_folder(folder: Path) -> None:
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
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise ConfigError(f"cannot create the lock file {shown(self.lock_file)} for {shown(self.path)}: "
                                  f"{exc.strerror or exc}; choose another --out") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigError(f"cannot lock {shown(self.lock_file)}: {exc.strerror or exc}") from None
                raise ConfigError(f"{shown(self.path)} is being written by {holder}; wait for it to finish "
                                  "or choose another --out") from None
            if not _same_file(fd, self.lock_file):  # the previous holder removed it after we opened it
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            except OSError as exc:
                os.close(fd)
                raise ConfigError(f"cannot write the lock file {shown(self.lock_file)}: {exc.strerror or exc}") \
                    from None
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


def writer_of(path: str | Path) -> str | None:
    """Who holds ``path``'s :class:`WriterLock` now ("process PID"), or None if nobody does.

    For readers: a file being written is incomplete and changes while read.
    """
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
