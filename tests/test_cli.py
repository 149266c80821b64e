"""The CLI's start-up path and its promises to a new user."""
from __future__ import annotations

import json
import subprocess
import sys

from pam_bench.registry import REGISTRY

HEAVY = ("torch", "diffusers", "transformers", "mediapipe", "cv2", "lpips", "scipy", "decord")


def test_list_imports_no_heavy_module():
    code = ("import sys; from pam_bench.cli import main\n"
            "try:\n    main(['list'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY=\n" in r.stdout or r.stdout.rstrip().endswith("HEAVY="), r.stdout[-300:]
    for name in ("synthetic", "dexycb", "oracle", "pam", "fvd", "mf", "mpjpe"):
        assert name in r.stdout


def test_every_registry_entry_resolves():
    """Each name -> "module:Attr" loads and is the right kind of object (one registry, no parallel ones)."""
    from pam_bench.metrics.base import Metric
    from pam_bench.types import Dataset, Generator

    base = {"dataset": Dataset, "method": Generator, "metric": Metric}
    for e in REGISTRY.entries():
        obj = e.load()
        assert issubclass(obj, base[e.kind]), e
        if e.kind == "metric":
            assert obj.direction in ("lower", "higher") and obj.version and obj.name == e.name


def test_pam_without_checkpoint_says_what_to_supply(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pam_bench", "evaluate", "--method", "pam", "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.startswith("pam-bench: error")]
    assert len(lines) == 1 and "--checkpoint" in lines[0]
    assert not (tmp_path / "o" / "results.json").exists()


def test_table_marks_backends(tmp_path, dexycb_clip):
    from pam_bench.commands.evaluate import format_results
    from pam_bench.harness import evaluate

    from ._small import Noisy, SmallReal

    ds = SmallReal(dexycb_clip, n=2)
    r1 = evaluate(Noisy(), ds, ["ssim", "psnr"], tmp_path / "a", progress=False)
    r2 = json.loads(json.dumps(r1))
    r2["metrics"]["ssim"]["backend"] = "other-backend"
    text = format_results([r1, r2])
    assert "ssim ↑ [skimage-gaussian11-s1.5]" in text and "ssim ↑ [other-backend]" in text
