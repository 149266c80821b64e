"""The Python API: ``import pam_bench`` is cheap and has no process-wide side effect; metrics are exported
lazily (classes, functional metrics, ``create_metric``); the Hugging Face hub is switched off only where
models load."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "diffusers", "transformers", "cv2", "scipy", "numpy", "lpips", "av", "decord")


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_import_pam_bench_loads_nothing_heavy_and_sets_nothing():
    out = json.loads(_python(
        "import json, os, sys; before = dict(os.environ); import pam_bench; "
        f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], "
        "'env': sorted(set(os.environ.items()) ^ set(before.items()))}))"))
    assert out == {"heavy": [], "env": []}


def test_every_exported_name_is_its_modules_object():
    import pam_bench

    for name, module in pam_bench._LAZY.items():
        assert getattr(pam_bench, name) is getattr(importlib.import_module(module), name), name
    assert set(pam_bench._LAZY) <= set(pam_bench.__all__) and set(pam_bench.__all__) <= set(dir(pam_bench))
    with pytest.raises(AttributeError, match="no_such_thing"):
        pam_bench.no_such_thing  # noqa: B018


def test_create_metric_builds_the_registered_class_with_options():
    import pam_bench
    from pam_bench.errors import PamBenchError
    from pam_bench.registry import REGISTRY

    m = pam_bench.create_metric("ssim")
    assert type(m) is REGISTRY.load("metric", "ssim") and m.device == "cpu"
    mf = pam_bench.create_metric("mf", tracker="lk")
    assert isinstance(mf, pam_bench.MotionFidelity) and mf.options == {"tracker": "lk"}
    with pytest.raises(PamBenchError, match="nope"):
        pam_bench.create_metric("nope")


def test_functional_ssim_matches_scikit_image():
    """The exported functional metric is the real one: per frame and channel, against scikit-image."""
    from skimage.metrics import structural_similarity

    import pam_bench

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    ref = [structural_similarity(x, y, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for x, y in zip(a, b)]
    np.testing.assert_allclose(pam_bench.ssim_frames(a, b), ref, atol=1e-6)


def test_hub_offline_is_set_where_models_load_and_a_user_setting_wins():
    code = ("import os, json; from pam_bench.hf_offline import hub_offline; import huggingface_hub.constants as c; "
            "first = c.HF_HUB_OFFLINE; hub_offline(); "
            "print(json.dumps([first, c.HF_HUB_OFFLINE, os.environ['HF_HUB_OFFLINE'], "
            "os.environ['TRANSFORMERS_OFFLINE']]))")
    pytest.importorskip("huggingface_hub")
    assert json.loads(_python(code)) == [False, True, "1", "1"]
    user = "import os; os.environ['HF_HUB_OFFLINE'] = '0'; os.environ['TRANSFORMERS_OFFLINE'] = '0'; " + code
    assert json.loads(_python(user)) == [False, False, "0", "0"]


def test_notebook_evaluate_with_a_metric_instance_returns_results_without_a_run_folder(tmp_path, monkeypatch):
    """The notebook call: a Metric instance, out=None; results come back and no run folder is left behind
    (neither in the working directory nor in the temporary folder it ran in). The SSIM value is checked
    against scikit-image on the same clips (the static method holds each clip's first frame)."""
    from skimage.metrics import structural_similarity

    import pam_bench
    import pam_bench.metrics
    from pam_bench.datasets.synthetic import SyntheticHOI

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    before = sorted(p.name for p in tmp_path.iterdir())
    ds = SyntheticHOI(n_clips=2, frames=3, height=32, width=40)
    res = pam_bench.evaluate(method="static", dataset=ds, metrics=[pam_bench.metrics.SSIM()], out=None,
                             progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/ folder
    assert list(tmp.iterdir()) == []  # the temporary run folder is removed
    assert res["n_evaluated"] == 2 and set(res["metrics"]) == {"ssim"}
    kw = dict(channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    frames = [ds.load(v).video.frames for v in ds.split().ids]
    ref = np.mean([np.mean([structural_similarity(f, v[0], **kw) for f in v]) for v in frames])
    assert ref < 0.999  # the clips move: a real score, not the identity
    assert res["metrics"]["ssim"]["value"] == pytest.approx(ref)
