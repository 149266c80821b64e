"""The project's error types: no bare ``ValueError`` is raised anywhere in the three packages, API argument errors
are :class:`pam_bench.errors.ArgumentError` (still a ValueError), and checks that a user's file can reach name
the file. The CLI side (one line, no traceback) is in ``tests/test_bad_input_cli.py``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from pam_bench.errors import ArgumentError, InputError, OptionError, PamBenchError

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pam_bench", "pam", "baselines")


def value_error_raises(source: str) -> list[int]:
    """Line numbers of ``raise ValueError``, ``raise ValueError(...)`` and ``raise builtins.ValueError(...)``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = exc.id if isinstance(exc, ast.Name) else exc.attr if isinstance(exc, ast.Attribute) else None
        if name == "ValueError":
            out.append(node.lineno)
    return sorted(out)


def test_the_scan_finds_every_spelling():
    src = ("def f(x):\n    if x:\n        raise ValueError('a')\n    raise ValueError\n"
           "def g():\n    import builtins\n    raise builtins.ValueError('b') from None\n"
           "def h():\n    raise ArgumentError('ok')\n")
    assert value_error_raises(src) == [3, 4, 7]


def test_no_bare_value_error_in_the_packages():
    files = [f for pkg in PACKAGES for f in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 50  # the scan sees the packages
    found = [f"{f.relative_to(REPO)}:{n}" for f in files for n in value_error_raises(f.read_text())]
    assert not found, ("raise InputError (user file), OptionError (user option) or ArgumentError (API argument) "
                       f"instead of ValueError at: {found}")


def test_argument_error_is_a_project_error_and_a_value_error():
    assert issubclass(ArgumentError, PamBenchError) and issubclass(ArgumentError, ValueError)
    assert issubclass(OptionError, ValueError) and not issubclass(InputError, ValueError)
    from pam_bench.metrics.frechet import FrechetStats

    with pytest.raises(ValueError, match="dimension 3, the statistics 2"):  # old callers still catch it
        FrechetStats(2).update(np.zeros((4, 3)))
    with pytest.raises(ArgumentError, match="must be 'basic' or 'percentile', got 'bca'"):
        from pam_bench.metrics.set_interval import bootstrap_interval

        bootstrap_interval(1.0, [0.5, 1.5], "bca")


def test_safetensors_header_length_names_the_file(tmp_path):
    from pam.checkpoint import weight_keys

    d = tmp_path / "model"
    d.mkdir()
    f = d / "diffusion_pytorch_model.safetensors"
    f.write_bytes((0).to_bytes(8, "little") + b"{}")
    with pytest.raises(InputError, match="header length 0") as e:
        weight_keys(d)
    assert str(f) in str(e.value)


def test_transformer_config_with_fewer_layers_than_the_branch_names_config_json(tmp_path):
    pytest.importorskip("diffusers")
    import pam.stage3_motion as s3
    from tests import tiny_pam as tiny

    d = s3.save_transformer(tiny.tiny_transformer(0), tmp_path / "tr")
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_layers"] = 0  # the weights hold one copied block (transformer_blocks_copy.0)
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="num_tracking_blocks must be in 1..num_layers=0, got 1") as e:
        s3.load_transformer(d)
    assert e.value.path == str(d / "config.json")
