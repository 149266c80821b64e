"""The one unpickler for untrusted pickles: an exact allow-list of (module, name) pairs.

Every pickle pam-bench reads (D-Grasp / GraspXL motion files, MANO models, OAKINK2 annotations, jax weight
pickles, Lightning checkpoints) goes through :class:`SafeUnpickler`. A reader declares its own allow-list:
a mapping from an exact ``(module, name)`` pair to the object the pickle gets for it, either the real
class or function (:func:`real`, imported lazily, one attribute, never a dotted path) or a safe stand-in
written here (:class:`Inert`, :class:`StateDict`, :class:`StateHolder`).

A torch checkpoint goes through :func:`torch_checkpoint`: ``torch.load(weights_only=True)``, and only where
torch's own list refuses a global, ``torch.load`` again with the reader's exact allow-list.

What is refused (``pickle.UnpicklingError`` inside, :class:`~pam_bench.errors.InputError` from
:func:`load` / :func:`loads` / :func:`torch_checkpoint`):

- any pair not in the allow-list, including every name with a dot: protocol 4's ``STACK_GLOBAL`` would
  otherwise walk ``a.b.c`` attribute by attribute (e.g. ``numpy.dtypes.__builtins__`` -> ``eval``);
- persistent ids (unless a caller such as ``torch.load`` installs its own ``persistent_load``).

Python-2 names (``__builtin__``, ``copy_reg``) are translated with the standard library's own table
before the exact lookup, so old protocol 0-2 files keep loading.
"""
from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickle
from pathlib import Path
from typing import Any, Mapping

from .errors import ArgumentError, InputError


class real:  # noqa: N801 - reads as a declaration in allow-lists
    """The genuine ``module.name`` object, imported only when a pickle asks for it."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        if "." in name:
            raise ArgumentError(f"allow-list entries are single attributes, not {name!r}")
        self.module, self.name = module, name

    def resolve(self):
        return getattr(importlib.import_module(self.module), self.name)

    def __repr__(self):
        return f"real({self.module!r}, {self.name!r})"


class Inert:
    """Stands in for a class whose objects carry nothing we need (callbacks, loggers, optimiser
    bookkeeping). Construction, calls and state are accepted and dropped; no code from the file runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return Inert()

    def __reduce__(self):  # never re-pickled as anything but an empty stand-in
        return (Inert, ())


class StateHolder:
    """Stands in for a class whose pickled state we read as data: ``.state`` is what BUILD passed,
    ``.args`` what construction passed (e.g. chumpy's ``Ch`` keeps its array in ``state['x']``)."""

    args: tuple = ()
    kwargs: dict = {}
    state: Any = None

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state


class StateDict(dict):
    """Stands in for a dict subclass (e.g. ``yacs.config.CfgNode``): the items stay, as a plain dict;
    the instance state (its ``__dict__``) is kept in ``.state`` and never applied as attributes."""

    state: Any = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.state = None

    def __setstate__(self, state):
        self.state = state


def _latin1_encode(text, encoding="utf-8"):
    """``_codecs.encode`` as protocol 0-2 use it for bytes (``encode(str, 'latin1')``); nothing else."""
    if not isinstance(text, str) or str(encoding).lower().replace("-", "").replace("_", "") not in ("latin1",):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {type(text).__name__} / {encoding!r}")
    return text.encode("latin1")


def _numpy_core(sub: str, name: str) -> real:
    """numpy 2 moved ``numpy.core`` to ``numpy._core``; both names resolve to the installed one."""
    import numpy as np

    base = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
    return real(f"{base}.{sub}", name)


class _NumpyCore(real):
    """Lazy ``_numpy_core`` entry (numpy is imported only when a pickle needs it)."""

    __slots__ = ()

    def __init__(self, sub: str, name: str):
        super().__init__(sub, name)

    def resolve(self):
        return _numpy_core(self.module, self.name).resolve()


#: Plain containers and the helpers the pickle protocols use for them.
CONTAINERS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex, ("builtins", "slice"): slice,
    ("collections", "OrderedDict"): real("collections", "OrderedDict"),
    ("_codecs", "encode"): _latin1_encode,
}

#: Exactly the globals numpy's own pickles name (arrays, scalars, dtypes; numpy 1.x and 2.x module
#: paths; protocol 5's buffer rebuild). numpy 2 pickles every dtype, old or new, as ``numpy.dtype``
#: except StringDType, whose one helper is listed; no ``numpy.dtypes`` class is admitted.
NUMPY: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): real("numpy", "ndarray"),
    ("numpy", "dtype"): real("numpy", "dtype"),
    **{(f"numpy.{core}.multiarray", n): _NumpyCore("multiarray", n)
       for core in ("core", "_core") for n in ("_reconstruct", "scalar")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _NumpyCore("numeric", "_frombuffer") for core in ("core", "_core")},
    ("numpy._core._internal", "_convert_to_stringdtype_kwargs"):
        real("numpy._core._internal", "_convert_to_stringdtype_kwargs"),
}

#: Numpy data in plain containers: weight pickles, D-Grasp / GraspXL motion files, numpy-only MANO.
NUMPY_DATA: dict[tuple[str, str], Any] = {**CONTAINERS, **NUMPY}


def torch_tensors() -> dict[tuple[str, str], Any]:
    """Exact pairs of torch's own ``weights_only`` allow-list (tensors, storages, dtypes, ``torch.Size``),
    for checkpoints that also hold objects ``weights_only=True`` refuses. Imports torch."""
    from torch import _weights_only_unpickler as wo

    out: dict[tuple[str, str], Any] = {}
    for dotted, obj in wo._get_allowed_globals().items():
        module, _, name = dotted.rpartition(".")
        if module and "." not in name:
            out[(module, name)] = obj
    out.update(CONTAINERS)  # _codecs.encode limited to latin-1, as above
    return out


def _py3(module: str, name: str) -> tuple[str, str]:
    """Python 2 names -> Python 3 names, with pickle's own compatibility table (exact pairs only)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` answers only from an exact allow-list.

    ``SafeUnpickler(file, allow)``; or a class bound to one list with :func:`unpickler_class` (what
    ``torch.load(pickle_module=...)`` needs, since torch subclasses ``pickle_module.Unpickler``).
    """

    allow: Mapping[tuple[str, str], Any] = NUMPY_DATA
    #: what a name off the list becomes: None refuses it; a stand-in class (e.g. :class:`Inert`) replaces
    #: it. Dotted names are refused either way.
    fallback: Any = None

    def __init__(self, file, allow: Mapping[tuple[str, str], Any] | None = None, fallback: Any = None, **kwargs):
        super().__init__(file, **kwargs)
        if allow is not None:
            self.allow = allow
        if fallback is not None:
            self.fallback = fallback

    def find_class(self, module: str, name: str):
        key = _py3(str(module), str(name))
        if "." in key[1]:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: dotted names are never admitted")
        target = self.allow.get(key, self.fallback)
        if target is None:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not on the allow-list")
        return target.resolve() if isinstance(target, real) else target


def unpickler_class(allow: Mapping[tuple[str, str], Any], fallback: Any = None,
                    name: str = "BoundSafeUnpickler") -> type[SafeUnpickler]:
    """A :class:`SafeUnpickler` subclass bound to ``allow`` (constructor takes only the file)."""
    return type(name, (SafeUnpickler,), {"allow": dict(allow), "fallback": fallback})


class pickle_module:  # noqa: N801 - used where a module is expected
    """A stand-in for the ``pickle`` module for ``torch.load(..., weights_only=False, pickle_module=...)``:
    torch's zip reader then resolves every global through the exact allow-list."""

    def __init__(self, allow: Mapping[tuple[str, str], Any], fallback: Any = None):
        self.Unpickler = unpickler_class(allow, fallback)
        self.__name__ = "pam_bench.safe_pickle"

    def load(self, file, **kwargs):
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data: bytes, **kwargs):
        return self.Unpickler(io.BytesIO(data), **kwargs).load()


#: Failures that mean "this file is not a pickle we accept"; all become one InputError line.
LOAD_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
               IndexError, KeyError, RuntimeError, UnicodeDecodeError, OverflowError, MemoryError)


def _first_line(e: BaseException) -> str:
    """An exception as one line: its message's first line, else its type's name."""
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def loads(data: bytes, allow: Mapping[tuple[str, str], Any] = NUMPY_DATA, where: Any = "<bytes>",
          what: str = "a pickle of plain numpy data", **kwargs) -> Any:
    """Unpickle ``data`` with the allow-list; any failure is an InputError naming ``where``."""
    try:
        return SafeUnpickler(io.BytesIO(data), allow, **kwargs).load()
    except LOAD_ERRORS as e:
        raise InputError(where, f"not {what} ({_first_line(e)})") from None


def load(path, allow: Mapping[tuple[str, str], Any] = NUMPY_DATA, what: str = "a pickle of plain numpy data",
         **kwargs) -> Any:
    """Unpickle the file at ``path`` with the allow-list; any failure is an InputError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    return loads(data, allow, where=path, what=what, **kwargs)


def torch_checkpoint(path, allow: Mapping[tuple[str, str], Any], fallback: Any = None,
                     what: str = "a checkpoint") -> tuple[Any, bool]:
    """``torch.load`` of an untrusted checkpoint onto the CPU: ``weights_only=True`` first; if torch's own
    list refuses a global, again through :class:`pickle_module` with the exact ``allow`` list (a name off
    it becomes ``fallback``; None refuses it). Returns (the object, whether ``weights_only`` read it).
    Imports torch.

    A failure is one InputError line naming ``path``: ``cannot read the checkpoint (...)`` when torch
    cannot read the file at all, ``not <what> (...)`` when the allow-list refuses it."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True), True
    except pickle.UnpicklingError:
        pass  # a global torch's list refuses: try the exact allow-list
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise InputError(path, f"cannot read the checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module(allow, fallback))
    except Exception as e:  # noqa: BLE001 - refused by the allow-list, or unusable
        raise InputError(path, f"not {what} ({_first_line(e)})") from None
    return obj, False


def load_numpy_pickle(path_or_bytes) -> object:
    """A pickle of plain numpy data (a file path or the bytes), through :data:`NUMPY_DATA`."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return loads(bytes(path_or_bytes), NUMPY_DATA, what="a numpy-only pickle")
    return load(path_or_bytes, NUMPY_DATA, what="a numpy-only pickle")


def npy_pickle_body(raw: bytes, path, what: str) -> bytes:
    """The pickle inside a file's bytes: the whole file, or, for ``np.save`` of a Python object (a .npy
    header with dtype object), what follows the header. A plain numeric .npy is an InputError naming
    ``what`` was expected. Feed the result to :func:`loads`."""
    if not raw.startswith(b"\x93NUMPY"):
        return raw
    import numpy as np

    f = io.BytesIO(raw)
    try:
        major, _ = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = reader(f)
    except ValueError as e:
        raise InputError(path, f"bad .npy header ({e})") from None
    if dtype != object:  # noqa: E721 - numpy dtype equality (object dtype), not a type check
        raise InputError(path, f"a plain {dtype} array, not {what}")
    return raw[f.tell():]
