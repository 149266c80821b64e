"""Errors that the CLI turns into one line and a non-zero exit."""
from __future__ import annotations


class PamBenchError(Exception):
    """Base class: the message is shown to the user as one line."""

    exit_code = 2


class InputError(PamBenchError):
    """A user-supplied file or folder is missing, unreadable or malformed.

    Always name the file: ``InputError(path, "what is wrong")``.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FlagError(InputError):
    """A bad command-line flag or environment variable value: names the flag, not a file.

    ``FlagError("--limit", "must be a whole number >= 1, got 0")`` reads ``--limit: must be a whole number >= 1,
    got 0``. Still an :class:`InputError` (``path`` holds the flag too), so ``except InputError`` callers and the
    exit code are unchanged.
    """

    def __init__(self, flag: str, problem: str):
        super().__init__(flag, problem)
        self.flag = flag


class MissingResource(PamBenchError):
    """A weight file, checkpoint or optional package that is not here.

    ``what`` names it, ``how`` says how to obtain it and where it goes.
    """

    exit_code = 3

    def __init__(self, what: str, how: str):
        self.what = what
        self.how = how
        super().__init__(f"missing {what}: {how}")


def require_packages(*packages: str, how: str, label: str = "") -> None:
    """MissingResource naming the first of ``packages`` that is not installed (``label`` says what for, in
    brackets), with ``how`` to install it; nothing is imported."""
    import importlib.util

    for pkg in packages:
        if importlib.util.find_spec(pkg) is None:
            raise MissingResource(f"python package '{pkg}'" + (f" ({label})" if label else ""), how)


class ChecksumError(PamBenchError):
    def __init__(self, path, expected: str, actual: str):
        super().__init__(f"{path}: sha256 {actual[:16]}... does not match the pinned {expected[:16]}...")


class IncompatibleResults(PamBenchError):
    """Results that must not be merged or compared (backends, manifests, identities differ)."""


class OptionError(PamBenchError, ValueError):
    """A bad ``-o/-d/-m`` option of a method, dataset or metric: names the component and the option.

    ``OptionError("fvd", "clip_frames", "must be >= 9, got 4")`` reads
    ``fvd option clip_frames: must be >= 9, got 4``. (Also a ValueError, as a bad argument is in Python.)
    """

    def __init__(self, component: str, option: str, problem: str):
        self.component = component
        self.option = option
        self.problem = problem
        super().__init__(f"{component} option {option}: {problem}")


class ArgumentError(PamBenchError, ValueError):
    """A bad argument to a Python API function (a shape, a range, a choice between internal functions).

    For callers of the Python API, not for user files or options: those are :class:`InputError` (naming the
    file) or :class:`OptionError` (naming the component and option), checked where the file or option is
    read. Also a ValueError, so ``except ValueError`` keeps working.
    """
