"""The project's error types: no bare ``ValueError`` is raised anywhere in the three packages, API argument errors
are :class:`pam_bench.errors.ArgumentError` (still a ValueError), checks that a user's file can reach name
the file, and an ``InputError`` never names an option or a flag in place of a file (options are
:class:`~pam_bench.errors.OptionError`, command-line flags :class:`~pam_bench.errors.FlagError`). The CLI side
(one line, no traceback) is in ``tests/test_bad_input_cli.py``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from pam_bench.errors import ArgumentError, FlagError, InputError, OptionError, PamBenchError

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


def test_transformer_config_of_another_sample_size_names_the_weight_file(tmp_path):
    """A config.json whose sizes build other tensor shapes than the stored ones (here the learned positional
    embedding of another sample_height) is one InputError naming the weight file, not a load_state_dict
    RuntimeError."""
    pytest.importorskip("diffusers")
    import pam.stage3_motion as s3
    from tests import tiny_pam as tiny

    d = tmp_path / "tr"
    tiny.write_tiny_transformer(d, "save-hook")
    cfg = json.loads((d / "config.json").read_text())
    cfg["sample_height"] *= 2
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"1 tensor\(s\) of another shape \(e.g. patch_embed.pos_embedding") as e:
        s3.load_transformer(d)
    assert e.value.path.endswith(".safetensors") and e.value.path.startswith(str(d))


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or bool(Path(text).suffix)


def input_errors_naming_no_file(source: str) -> list[tuple[int, str]]:
    """``InputError(<literal>, ...)`` (or ``path=<literal>``) whose literal is no path: an option, flag or word
    ('--root', 'layout', 'checkpoint', '-o mode'); and f-strings that start with a flag (``f"-d {key}"``)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if name != "InputError":
            continue
        first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "path"), None)
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and not _looks_like_path(first.value):
            out.append((node.lineno, first.value))
        elif isinstance(first, ast.JoinedStr) and first.values and isinstance(first.values[0], ast.Constant) \
                and str(first.values[0].value).startswith("-"):
            out.append((node.lineno, str(first.values[0].value)))
    return out


def test_the_file_name_scan_finds_options_and_flags():
    src = ("from pam_bench.errors import InputError as IE\nimport pam_bench.errors as E\n"
           "def f(p, k):\n"
           "    InputError('--root', 'x')\n"            # a flag: FlagError
           "    E.InputError('layout', 'x')\n"          # an option: OptionError
           "    InputError(path='checkpoint', problem='x')\n"
           "    InputError(f'-d {k}', 'x')\n"
           "    InputError(p, 'x')\n"                   # a path variable: fine
           "    InputError('results.json', 'x')\n"      # literal file names: fine
           "    InputError('runs/a', 'x')\n"
           "    InputError(f'{p}:3', 'x')\n"
           "    FlagError('--root', 'x')\n")
    assert input_errors_naming_no_file(src) == [(4, "--root"), (5, "layout"), (6, "checkpoint"), (7, "-d ")]


def test_no_input_error_names_an_option_or_a_flag_instead_of_a_file():
    files = [f for pkg in PACKAGES for f in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 50
    found = [f"{f.relative_to(REPO)}:{n} {lit!r}"
             for f in files for n, lit in input_errors_naming_no_file(f.read_text())]
    assert not found, ("InputError names the file; for a -o/-d/-m option raise OptionError(component, option, "
                       f"...), for a command-line flag or environment variable FlagError(flag, ...): {found}")


def test_flag_error_is_an_input_error_naming_the_flag(monkeypatch):
    from pam_bench.run.selection import check_limit
    from pam_bench.video import default_decoder

    assert issubclass(FlagError, InputError) and FlagError.exit_code == InputError.exit_code
    with pytest.raises(FlagError, match="^--limit: must be a whole number >= 1, got 0$") as e:
        check_limit(0)
    assert e.value.flag == "--limit" and isinstance(e.value, InputError)  # old `except InputError` still catches it
    monkeypatch.setenv("PAM_BENCH_DECODER", "nope")
    with pytest.raises(FlagError, match="^PAM_BENCH_DECODER: unknown decoder 'nope'"):
        default_decoder()


def test_dataset_options_are_option_errors_naming_the_dataset(tmp_path):
    from pam_bench.datasets.dexycb import DexYCB
    from pam_bench.datasets.folder import PamEvalDir
    from pam_bench.datasets.oakink2 import OakInk2

    with pytest.raises(OptionError, match="^dexycb option layout: must be one of auto, raw, pam, got 'flat'$"):
        DexYCB(root=tmp_path, layout="flat")
    with pytest.raises(OptionError, match="^dexycb option depth_source: must be one of"):
        DexYCB(root=tmp_path, depth_source="lidar")
    with pytest.raises(OptionError, match="^dexycb option colour, frames: unknown -d option"):
        DexYCB(root=tmp_path, frames=3, colour=1)
    with pytest.raises(FlagError, match="^--root: dexycb needs --root"):
        DexYCB()
    with pytest.raises(OptionError, match="^oakink2 option frames: unknown -d option"):
        OakInk2(root=tmp_path, frames=3)
    with pytest.raises(OptionError, match="^pam-eval-dir option frames: unknown -d option; known: seg_videos$"):
        PamEvalDir(root=tmp_path, frames=3)


def test_method_options_are_option_errors_naming_the_method():
    from baselines.coshand import official_ddim_timesteps
    from pam.checkpoint import resolve

    with pytest.raises(OptionError, match="^pam option mode: must be one of i2v, full, got 'both'$"):
        resolve("/nonexistent", mode="both")
    with pytest.raises(OptionError, match="^coshand option steps: must be between 1 and 1000, got 0$"):
        official_ddim_timesteps(0)
    with pytest.raises(OptionError, match="^coshand option timesteps: unknown timestep rule 'karras'"):
        official_ddim_timesteps(2, "karras")
    with pytest.raises(ArgumentError, match="^hand_pose: expected \\[B, 3\\] PCA coefficients, got \\[2, 45\\]$"):
        from pam_bench.geometry.mano import Layer

        Layer(None, np.zeros((3, 45)), np.zeros(45)).full_hand_pose(np.zeros((2, 45)))


def test_coshand_checkpoint_errors_name_the_file(tmp_path):
    pytest.importorskip("diffusers")
    from baselines.coshand import convert_ldm_checkpoint

    ck = tmp_path / "coshandrelease.ckpt"
    with pytest.raises(InputError, match="is not a CosHand LDM checkpoint") as e:
        convert_ldm_checkpoint({}, path=ck)
    assert e.value.path == str(ck)
    with pytest.raises(ArgumentError, match="^CosHand state_dict: is not a CosHand LDM checkpoint"):
        convert_ldm_checkpoint({})  # a state_dict without its file: an API argument


@pytest.mark.parametrize("method,opt,expect", [
    ("coshand", "guidance=abc", "coshand option guidance: must be a number, got 'abc'"),
    ("coshand", "ema=maybe", "coshand option ema: must be a boolean (true/false), got 'maybe'"),
    ("pam", "steps=x", "pam option steps: must be an integer, got 'x'"),
    ("svd-hand", "fps=fast", "svd-hand option fps: must be an integer, got 'fast'"),
    ("cond-warp", "min_flow=nan", "cond-warp option min_flow: must be finite, got nan"),
])
def test_numeric_method_options_are_one_line_naming_the_option(tmp_path, capsys, method, opt, expect):
    from pam_bench.cli import main

    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--method", method, "--dataset", "synthetic", "-o", opt, "--limit", "1",
              "--metrics", "psnr", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"pam-bench: error: {expect}"]


def test_require_packages_names_the_first_missing_one():
    from pam_bench.errors import MissingResource, require_packages

    require_packages("json", "numpy", how="never shown")  # installed: nothing happens
    with pytest.raises(MissingResource) as e:
        require_packages("numpy", "no_such_pkg_x", "no_such_pkg_y", how="pip install x", label="for a test")
    assert str(e.value) == "missing python package 'no_such_pkg_x' (for a test): pip install x"
