"""Datasets, methods and metrics built from the registry, a bad option being a one-line error naming it."""
from __future__ import annotations

from typing import Sequence

from ..errors import OptionError, PamBenchError
from ..registry import REGISTRY
from ..types import Dataset, Generator

DEFAULT_METRICS = ("ssim", "psnr", "lpips")


def _construct(kind: str, name: str, cls, **kw):
    """Build a registered component; a bad option is a one-line error naming the component."""
    try:
        return cls(**kw)
    except PamBenchError:
        raise
    except (TypeError, ValueError) as e:
        raise PamBenchError(f"{kind} '{name}': {e}") from None


def build_dataset(name: str, root=None, split=None, **options) -> Dataset:
    """The registered dataset ``name`` (``-d key=value`` options)."""
    cls = REGISTRY.load("dataset", name)
    kw = {k: v for k, v in {"root": root, "split": split}.items() if v is not None}
    return _construct("dataset", name, cls, **kw, **options)


def rebuild_dataset(run_dir, root=None, options: dict | None = None) -> Dataset:
    """The dataset of a run folder, from the ``dataset_args.json`` the evaluate loop wrote (``root`` and
    ``options`` override it); an absent file is an InputError naming it."""
    from pathlib import Path

    from ..errors import InputError
    from ..store import read_json

    p = Path(run_dir) / "dataset_args.json"
    if not p.is_file():
        raise InputError(p, "absent: the run was made with a Dataset object and does not record its dataset")
    a = read_json(p)
    return build_dataset(a["name"], root or a.get("root"), a.get("split"),
                         **{**(a.get("options") or {}), **(options or {})})


def build_method(name: str, device: str = "cpu", **options) -> Generator:
    """The registered method ``name`` (``-o key=value`` options) on ``device``."""
    cls = REGISTRY.load("method", name)
    return _construct("method", name, cls, device=device, **options)


def build_metrics(names: Sequence, device: str = "cpu", options: dict | None = None) -> list:
    """Registered metrics by name (``-m name.key=value`` options in ``options[name]``); a Metric instance
    among ``names`` is used as it is (it carries its own options)."""
    from ..metrics.base import Metric

    by_name = [n for n in names if not isinstance(n, Metric)]
    unknown = set(options or {}) - set(by_name)
    if unknown:
        raise PamBenchError(f"metric options given for {sorted(unknown)}, which are not among --metrics "
                            f"{list(by_name)}")
    out = []
    for n in names:
        if isinstance(n, Metric):
            out.append(n)
            continue
        cls = REGISTRY.load("metric", n)
        opts = (options or {}).get(n, {})
        known = metric_option_names(cls)
        if known is not None and set(opts) - set(known):
            bad = sorted(set(opts) - set(known))[0]
            raise OptionError(n, bad, f"-m {n}.{bad} is not an option of metric '{n}'; "
                                      + (f"known: {', '.join(known)}" if known else "it takes no options"))
        out.append(_construct("metric", n, cls, device=device, **opts))
    return out


def metric_option_names(cls) -> tuple[str, ...] | None:
    """The options a metric class reads: its ``option_names``; none when it keeps the base constructor;
    None (checked by the backend it builds) otherwise."""
    from ..metrics.base import Metric

    if getattr(cls, "option_names", None) is not None:
        return tuple(cls.option_names)
    return () if cls.__init__ is Metric.__init__ else None
