"""Output files that appear whole or not at all, checked before the work starts, never clobbering.

The rules every writer in :mod:`operators` follows (and that later writers should reuse):

* **Check first.** :func:`check_output_file` runs before any work: the path is not a folder, its
  folder exists or can be created, a file there can be written (a probe file, which is the only
  test that also holds for root and read-only mounts), the name fits the file system, and an
  existing file is only replaced with ``overwrite``.
* **Stage, then publish.** Data are written to a hidden sibling named by :func:`temp_path`
  (``.NAME.tmp-PID-RANDOM.SUFFIX``: unique per process, same folder so the final rename is atomic),
  flushed, then renamed into place by :func:`staged_file` / :func:`write_bytes`. Without
  ``overwrite`` the publication is a hard link, which fails instead of replacing a file that
  appeared meanwhile. Any failure removes the staged file and leaves the previous file as it was.
* **Delete only what is provably ours.** Temporary names carry their writer's PID;
  :func:`stale` lists only those whose writer is dead, and :func:`remove_files` deletes only the
  named files of a folder and the folder only if it is then empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from solvers.errors import ConfigError

_OWNER = re.compile(r"\.(?:tmp|old|partial)-(\d+)-[0-9a-f]+")


def temp_path(target: str | os.PathLike, kind: str = "tmp", keep_suffix: bool = True) -> Path:
    """A hidden, process-unique sibling of ``target``.

    ``.STEM.KIND-PID-RANDOM.SUFFIX`` for files (tools that read the suffix still recognise the staged
    file), ``.NAME.KIND-PID-RANDOM`` with ``keep_suffix=False`` (folders).
    """
    target = Path(target)
    token = f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if keep_suffix:
        return target.with_name(f".{target.stem}.{token}{target.suffix}")
    return target.with_name(f".{target.name}.{token}")


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
    """The ``candidates`` whose writer (the PID in the name) is neither this process nor alive."""
    found = []
    for path in candidates:
        pid = owner(path)
        if pid is None or (pid != os.getpid() and not pid_alive(pid)):
            found.append(path)
    return found


def remove_files(folder: Path, names: Iterable[str]) -> bool:
    """Delete ``folder``'s files called ``names``, then ``folder`` itself if nothing else is in it.

    Returns whether the folder is gone. Anything not named is never touched.
    """
    for name in names:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            (folder / name).unlink()
    try:
        folder.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _existing_ancestor(path: Path) -> Path:
    current = path.absolute()
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def check_folder_writable(folder: Path, what: str) -> None:
    """``folder`` (or, when it does not exist yet, the nearest existing folder above it) accepts new files.

    Raises
    ------
    ConfigError
        Naming ``what`` when the place is a file or refuses writing (permissions, read-only mount).
    """
    try:
        base = _existing_ancestor(folder)
        folder_is_dir = base.is_dir()
        limit = _name_max(base)
    except OSError as exc:
        raise ConfigError(f"{what}: {str(folder)[:80]} cannot be used ({exc.strerror or exc})") from None
    if any(len(os.fsencode(part)) > limit for part in Path(folder).parts):
        raise ConfigError(f"{what}: a folder name in {str(folder)[:80]}... is longer than the {limit} bytes this "
                          f"file system allows")
    if not folder_is_dir:
        raise ConfigError(f"{what}: {base} is a file, so {folder} cannot be created")
    probe = temp_path(base / "pdeop-probe", keep_suffix=False)
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot write in {base} ({exc.strerror or exc})") from None
    probe.unlink()


def check_output_file(path: str | os.PathLike, overwrite: bool = False, what: str = "--out") -> Path:
    """Check that ``path`` can receive a new file, before any work is done.

    Parameters
    ----------
    path
        The output file.
    overwrite
        Whether an existing file may be replaced.
    what
        Name of the setting in messages (``--out``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ConfigError
        If ``path`` is a folder or another non-file, exists without ``overwrite``, its name is too
        long, or its folder cannot be created or written.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise ConfigError(f"{what} {path} does not name a file")
    try:
        base = _existing_ancestor(path.parent)
        limit = _name_max(base)
        if len(os.fsencode(temp_path(path).name)) > limit:
            raise ConfigError(f"{what}: the file name {path.name[:40]}... is too long for this file system "
                              f"(at most about {limit - 40} bytes)")
        if path.is_dir():
            raise ConfigError(f"{what} {path} is a folder; give a file name such as {path / 'out'}")
        if path.exists() or path.is_symlink():
            if not path.is_file():
                raise ConfigError(f"{what} {path} exists and is not a regular file")
            if not overwrite:
                raise ConfigError(f"{what} {path} already exists; pass --overwrite to replace it or choose another "
                                  f"name")
    except OSError as exc:  # a path the system cannot even look up (a folder name too long, a loop of links)
        raise ConfigError(f"{what} {str(path)[:80]} cannot be used ({exc.strerror or exc})") from None
    check_folder_writable(path.parent, what)
    return path


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


@contextlib.contextmanager
def staged_file(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; publish it at ``path`` when the block succeeds.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is left as it was. An
    ``OSError`` (disk full, read-only folder) becomes a :class:`ConfigError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder {path.parent} ({exc.strerror or exc})") from None
    tmp = temp_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        publish(tmp, path, overwrite)
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``path``; without ``overwrite`` refuse (atomically) an existing ``path``."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ConfigError(f"{path} appeared while it was being written; pass --overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if path.exists():  # no hard links on this file system: check, then rename
            raise ConfigError(f"{path} appeared while it was being written; pass --overwrite to replace it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` through a flushed temporary sibling and an atomic rename (see module)."""
    path = Path(path)
    with staged_file(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    """:func:`write_bytes` of UTF-8 ``text``."""
    return write_bytes(path, text.encode("utf-8"), overwrite)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (after renames in it); ignored where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
