"""One error contract for every console script (``zett-assets``, ``zett-train``, ``zett-transfer``, ``zett-eval``).

A user mistake (a bad setting, a missing file, an unknown asset) prints one line ``<prog>: error: <message>`` that
names the setting and the fix, and exits with status 2, without a traceback unless ``ZETT_DEBUG=1``. Anything else
is a bug: it propagates and shows its traceback.

User mistakes are recognised by type: :class:`UserError` (raise it, or a subclass, for a new check) and the
existing error classes of zett's modules, listed in :func:`user_error_types`. Errors wrapped by Hydra's
``instantiate`` or re-raised with ``from`` count when their cause is one.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A setting or input the user controls is wrong; the message names it and says how to fix it."""


class MissingInputError(UserError, FileNotFoundError):
    """An input path the user gave does not exist."""


def debug() -> bool:
    return os.environ.get("ZETT_DEBUG", "") not in ("", "0", "false", "no")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception class that means "the user asked for something that cannot work"."""
    from zett.assets.store import AssetError
    from zett.eval.runner import EvalConfigError
    from zett.eval.texts import EvalDataError
    from zett.hypernets import ShippedHypernetError
    from zett.models import HypernetFormatError, HypernetMismatchError, UnsupportedModelError
    from zett.tokenizers import TokenizerLoadError
    from zett.training.base import BaseModelError
    from zett.training.data import DataConfigError
    from zett.transfer import TransferError

    return (UserError, AssetError, EvalConfigError, EvalDataError, HypernetFormatError, HypernetMismatchError,
            UnsupportedModelError, TokenizerLoadError, BaseModelError, DataConfigError, TransferError,
            ShippedHypernetError, FileNotFoundError, NotADirectoryError)


def as_user_error(exc: BaseException) -> BaseException | None:
    """``exc`` or the first exception in its ``__cause__`` chain that is a user error; None for a bug."""
    types = user_error_types()
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, types):
            return exc
        exc = exc.__cause__
    return None


def report(prog: str, exc: BaseException) -> None:
    print(f"{prog}: error: {exc}", file=sys.stderr)


def user_errors_exit(prog: str) -> Callable:
    """Decorator for a console script's task function: user errors print one line and exit 2; bugs propagate.

    Put it *inside* ``@hydra.main`` so Hydra never sees (and never prints a traceback for) a user error. The
    returned function's ``entered`` attribute says whether it ran (see :func:`hydra_entry`)."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            run.entered = True
            release = getattr(sys.stderr, "release", None)  # hydra_entry's held stderr: the task runs now
            if release is not None:
                release()
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - classified below; bugs are re-raised unchanged
                user = as_user_error(e)
                if user is None or debug():
                    raise
                report(prog, user)
                sys.exit(EXIT_USER_ERROR)

        run.entered = False
        return run

    return wrap


def hydra_entry(prog: str, hydra_main: Callable, task: Callable) -> Callable[[], None]:
    """The console-script ``main`` around ``hydra_main`` (a ``@hydra.main`` over ``task``, which is wrapped by
    :func:`user_errors_exit`).

    Hydra exits with status 1 after its own multi-line error when the command line does not compose (an unknown
    key or config option, a malformed override, a run directory it cannot create): a user mistake too, so it
    exits 2 with one line of zett's (Hydra's own text is held back and shown only with ``ZETT_DEBUG=1``). A task
    that ran and failed with a bug also leaves through Hydra with status 1 after its traceback, and keeps
    status 1."""

    def main() -> None:
        if debug():
            os.environ.setdefault("HYDRA_FULL_ERROR", "1")
        task.entered = False
        stderr = sys.stderr
        sys.stderr = tee = _Tee(stderr, hold=not debug())  # Hydra's text until the task runs
        try:
            hydra_main()
        except SystemExit as e:
            if e.code == 1 and not getattr(task, "entered", True):
                print(f"{prog}: error: {composition_error(''.join(tee.seen), prog)}", file=stderr)
                sys.exit(EXIT_USER_ERROR)
            tee.release()
            raise
        except BaseException:
            tee.release()
            raise
        finally:
            sys.stderr = stderr
        tee.release()

    return main


class _Tee:
    """A text stream keeping the first 64 kB written (Hydra's own message) and, with ``hold``, passing nothing on
    to ``stream`` until :meth:`release` (called when the task starts, or when Hydra returns or fails after it)."""

    def __init__(self, stream, hold: bool = False):
        self.stream, self.seen, self._size = stream, [], 0
        self._held: list[str] | None = [] if hold else None

    def write(self, text: str) -> int:
        if self._size < 1 << 16:
            self.seen.append(text)
            self._size += len(text)
        if self._held is not None:
            self._held.append(text)
            return len(text)
        return self.stream.write(text)

    def release(self) -> None:
        held, self._held = self._held, None
        if held:
            self.stream.write("".join(held))

    def __getattr__(self, name):
        return getattr(self.stream, name)


def composition_error(hydra_message: str, prog: str | None = None) -> str:
    """One line naming the setting from Hydra's composition error (a key no schema declares, with the closest
    declared one; a value of the wrong type; an unknown group option, with the available ones; a run directory
    Hydra cannot create); the schemas are in ``zett/config/schema.py``."""
    import re

    key = re.search(r"full_key: (\S+)", hydra_message)
    where = re.search(r"^In '([^']+)':", hydra_message, re.M)  # a config file (not the command line) holds it
    where = f" (set in configs/{where.group(1)}.yaml)" if where else ""
    override = re.search(r"(?:Error merging override|Could not override '?)\s*([^'\n]+)", hydra_message)
    if key and re.search(r"Key '[^']+' not in", hydra_message):
        return f"{key.group(1)}{where} is not a setting of this command; {spelling_hint(key.group(1), prog)}"
    oserror = re.search(r"^(\w*Error): \[Errno \d+\] ([^:\n]+): '([^'\n]+)'", hydra_message, re.M)
    if oserror and not key:
        run_dir = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(("hydra.run.dir=", "run_dir="))),
                       None)
        shown = f"hydra.run.dir={run_dir}" if run_dir else "the output directory (hydra.run.dir)"
        return (f"{shown} cannot be created ({oserror.group(2)}: {oserror.group(3)}); choose a writable "
                "hydra.run.dir")
    if key:
        reason = next((line.strip() for line in hydra_message.splitlines()
                       if "could not be converted" in line or "is not a valid" in line or "Value '" in line), "")
        shown = override.group(1).strip() if override else key.group(1)
        return (f"{shown} is invalid: {reason.rstrip('.') or 'wrong type'}; give {key.group(1)} a value of the type "
                "zett/config/schema.py declares for it")
    option = re.search(r"Could not find '([^']+)'", hydra_message)
    if option:
        group, _, name = option.group(1).rpartition("/")
        available = re.findall(r"^\t(\S+)$", hydra_message.split("Available options", 1)[-1].split(
            "Config search path", 1)[0], re.M) if "Available options" in hydra_message else []
        if not group:
            return f"unknown config option {option.group(1)}; check the spelling of each group=option"
        import difflib

        close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
        hint = f"did you mean {group}={close[0]}? " if close else ""
        return (f"{group}={name} is not an option of {group}; {hint}available: {', '.join(available) or 'none'}")
    return ("the command line is not a valid configuration (" + _first_line(hydra_message) + "); check the spelling "
            "of each key=value and group=option (ZETT_DEBUG=1 shows Hydra's full message)")


def _first_line(text: str) -> str:
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("Set the environment")]
    return lines[0].rstrip(".") if lines else "Hydra gave no reason"


SCHEMA_OF = {"zett-train": "train", "zett-transfer": "transfer", "zett-eval": "eval"}


def spelling_hint(path: str, prog: str | None) -> str:
    """"did you mean <closest declared key>?" (difflib over the schema's keys at that level), else where the keys
    are declared."""
    from zett.config.keys import PRIMARY, closest_key

    schema = PRIMARY.get(SCHEMA_OF.get(prog or "", ""))
    close = closest_key(path, schema) if schema is not None else None
    if close:
        return f"did you mean {close}?"
    return ("check its spelling (zett/config/schema.py declares every setting; a _target_ node takes the "
            "arguments of its class)")
