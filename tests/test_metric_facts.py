"""Display and gate facts live on the metric classes: the leaderboard and the gate read them from there."""
from __future__ import annotations

import ast
from pathlib import Path

from pam_bench.metrics import facts
from pam_bench.registry import REGISTRY

REPO = Path(__file__).resolve().parents[1]


def test_facts_come_from_the_class():
    for name in REGISTRY.names("metric"):
        cls = REGISTRY.load("metric", name)
        assert facts.label(name) == (cls.label or name)
        assert facts.decimals(name) == cls.decimals and facts.direction(name) == cls.direction
        assert facts.tolerance(name) == (dict(cls.tolerance) if cls.tolerance else None)
        assert facts.n_dependent(name) is bool(cls.n_dependent)
    assert facts.label("no-such-metric") == "no-such-metric" and facts.decimals("no-such-metric") == 4
    assert facts.n_dependent("no-such-metric") is False
    assert facts.direction("no-such-metric") is None and facts.tolerance("no-such-metric") is None


def test_small_n_reads_the_class(monkeypatch):
    """The small-N mark follows the class's ``n_dependent``, not a list of metric names."""
    from pam_bench.metrics.fvd import FVD
    from pam_bench.metrics.pixel import SSIM
    from pam_bench.report.smalln import is_small

    few, many = {"value": 1.0, "n": 2}, {"value": 1.0, "n": 1600}
    assert FVD.n_dependent and is_small("fvd", few) and not is_small("fvd", many)
    assert not is_small("ssim", few) and not is_small("fvd", {"value": None, "n": 2})
    monkeypatch.setattr(FVD, "n_dependent", False)
    monkeypatch.setattr(SSIM, "n_dependent", True)
    assert not is_small("fvd", few) and is_small("ssim", few) and not is_small("ssim", many)


def test_regression_defaults_are_the_class_tolerances():
    from pam_bench.metrics.fvd import FVD
    from pam_bench.report.regression import DEFAULT_TOLERANCE, load_tolerances

    tol = load_tolerances(None)
    assert tol["fvd"] == FVD.tolerance and tol["default"] == DEFAULT_TOLERANCE
    assert "fvmd" not in tol  # FVMD declares none: the gate's default applies


def test_no_dict_keyed_by_metric_names_outside_the_metrics():
    """No literal dict in the table and gate modules has two or more metric names as keys."""
    names = set(REGISTRY.names("metric"))
    for f in ("leaderboard.py", "regression.py", "cells.py", "latex.py", "html.py"):
        for node in ast.walk(ast.parse((REPO / "pam_bench" / "report" / f).read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert len(keys & names) < 2, f"{f}:{node.lineno} keys on metric names {sorted(keys & names)}"
