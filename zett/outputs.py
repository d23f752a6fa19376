"""Output directories written whole or not at all, never merged with what was there.

``check_output_dir(path, overwrite)`` refuses a non-empty directory unless ``overwrite`` (call it before any slow
work). ``atomic_dir(path, overwrite)`` yields a temporary sibling ``.<name>.tmp-<pid>-<random>``; on success it
is renamed into place (an existing directory is moved aside first and deleted after), on failure it is deleted.
A finished result that cannot take its place (another process created the directory meanwhile, or the rename
fails) is kept beside it as ``<name>.zett-<pid>`` and the error says so; ``check_output_dir`` refuses a mount point
(it cannot be renamed over) before any work.
A process killed with SIGKILL leaves only the hidden sibling, which the next ``atomic_dir`` next to it removes
(its pid is dead). Files get the user's umask: safetensors and transformers write through private temporary files
(mode 0600), which is fixed after writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zett.cli.errors import UserError


class OutputError(UserError):
    """An output location that cannot be written as asked; the message names the setting and the fix."""


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain ``open``/``mkdir`` would have given."""
    mask = umask()
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


def is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_output_dir(path, overwrite: bool = False, setting: str = "output_dir") -> Path:
    """The resolved output directory, after checking it can be written as asked (nothing is created)."""
    out = Path(str(path)).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{setting}={path} is an existing file, not a directory; choose another {setting}")
    if is_nonempty_dir(out) and not overwrite:
        raise OutputError(f"{setting}={path} already exists and is not empty; choose a new {setting} or pass "
                          "overwrite=true to replace it whole")
    check_creatable(out, setting, path)
    if out.is_dir() and is_mount_point(out):
        raise OutputError(f"{setting}={path} is a mount point, which cannot be replaced by a rename (the output is "
                          f"written beside it and moved into place); give a directory inside it, e.g. "
                          f"{setting}={Path(str(path)) / 'out'}")
    if out.exists() and not os.access(out.absolute().parent, os.W_OK | os.X_OK):
        raise OutputError(f"{setting}={path}: its parent directory is not writable, so it cannot be replaced; "
                          f"choose a writable {setting}")
    return out


def mount_points() -> set[str]:
    """Every mount point of this process (``/proc/self/mountinfo``, which also lists bind mounts of a directory
    that ``os.path.ismount`` misses); empty where it cannot be read."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return set()
    out = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 4:  # field 5: the mount point, with spaces etc. as octal escapes
            out.add(fields[4].encode().decode("unicode_escape"))
    return out


def is_mount_point(path: Path) -> bool:
    p = Path(path).expanduser().resolve()
    return os.path.ismount(p) or str(p) in mount_points()


def check_creatable(out: Path, setting: str, shown=None) -> None:
    """Refuse ``out`` when its nearest existing ancestor does not take a new directory: not a directory, not
    writable, a read-only mount or a pseudo file system such as /proc (tried with a probe directory, removed at
    once: permission bits alone do not tell, e.g. for root)."""
    import tempfile

    shown = out if shown is None else shown
    parent = Path(out).expanduser().absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{setting}={shown}: cannot create it, {parent} is not writable; choose a writable "
                          f"{setting}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".zett-probe-", dir=parent))
    except OSError as e:
        raise OutputError(f"{setting}={shown}: cannot create it in {parent} ({e.strerror or e}); choose a writable "
                          f"{setting}") from e


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_siblings(final: Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*`` siblings left by killed processes."""
    removed = []
    for p in final.parent.glob(f".{final.name}.*-*-*"):
        kind, _, rest = p.name[len(final.name) + 2:].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("tmp", "old") and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def atomic_dir(path, overwrite: bool = False, setting: str = "output_dir") -> Iterator[Path]:
    """Write a directory whole: yields a temporary sibling to fill; see the module docstring."""
    final = check_output_dir(path, overwrite, setting).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
        apply_umask(tmp)
        if final.exists() and is_nonempty_dir(final) and not overwrite:  # appeared while we were writing
            kept = _keep(tmp, final)
            raise OutputError(f"{setting}={path} was created by another process while this one wrote it, and is left "
                              f"as that process wrote it; this run's result is "
                              f"{f'in {kept}' if kept else 'discarded'}. Choose a new {setting}, or pass "
                              "overwrite=true to replace it")
        try:
            _move_into_place(tmp, final)
        except OSError as e:
            kept = _keep(tmp, final)
            raise OutputError(f"{setting}={path}: the finished result could not be moved into place "
                              f"({e.strerror or e}); {setting} is unchanged and the result is "
                              f"{f'in {kept}' if kept else 'discarded'}. Choose another {setting} (a directory "
                              "inside a mount point, not the mount point itself)") from e
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, an existing ``final`` moved aside first and deleted after; on an error
    ``final`` is as it was and no ``.old-`` sibling is left (unless putting ``final`` back failed too: then the
    sibling holds it)."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
    previous = old / "previous"
    if _exchange(tmp, final):  # one atomic swap: the final name never goes missing; tmp now holds the previous
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        try:
            os.replace(final, previous)
            try:
                os.replace(tmp, final)
            except OSError:
                os.replace(previous, final)
                raise
        except OSError:
            if not previous.exists():
                shutil.rmtree(old, ignore_errors=True)
            raise
    shutil.rmtree(old, ignore_errors=True)


def _keep(tmp: Path, final: Path) -> Path | None:
    """Give a finished result that cannot take ``final``'s place a visible name beside it (None: it cannot)."""
    kept = final.with_name(f"{final.name}.zett-{os.getpid()}")
    try:
        os.replace(tmp, kept)
    except OSError:
        return None
    return kept


def write_text_atomic(path, text: str) -> Path:
    """Write one file whole (temporary sibling + rename), with the user's umask."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if absent) for the duration of the block: processes that
    fetch or build the same thing wait for each other instead of writing it twice."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
