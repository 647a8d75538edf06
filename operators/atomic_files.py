"""Output files that appear whole or not at all, checked before the work starts, never clobbering.

The rules every writer in :mod:`operators` follows (and that later writers should reuse), built on the
mechanisms of :mod:`pde_data.output_files` (temporary names and their owners, flushing, probing a
folder), which the dataset writer shares:

* **Check first.** :func:`check_output_file` runs before any work: the path is not a folder, its
  folder exists or can be created, a file there can be written (a probe file, which is the only
  test that also holds for root and read-only mounts), the name fits the file system, and an
  existing file is only replaced with ``overwrite``.
* **Stage, then publish.** Data are written to a hidden sibling named by
  :func:`~pde_data.output_files.temp_path`
  (``.NAME.tmp-PID-RANDOM.SUFFIX``: unique per process, same folder so the final rename is atomic),
  flushed, then renamed into place by :func:`staged_file` / :func:`write_bytes`. Without
  ``overwrite`` the publication is a hard link, which fails instead of replacing a file that
  appeared meanwhile. Any failure removes the staged file and leaves the previous file as it was.
* **Delete only what is provably ours.** Temporary names carry their writer's PID;
  :func:`~pde_data.output_files.stale` lists only those whose writer is dead, and
  :func:`remove_files` deletes only the named files of a folder and the folder only if it is then
  empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pde_data.output_files import check_folder_writable, fsync_file, name_max, temp_path
from solvers.errors import ConfigError


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
        limit = name_max(path.parent)
        if len(os.fsencode(path.name)) > limit:
            raise ConfigError(f"{what}: the file name {path.name[:40]}... is too long for this file system "
                              f"(at most {limit} bytes)")
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
        fsync_file(tmp)
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
