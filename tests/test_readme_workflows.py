"""The README's Workflows section runs as written: its bash blocks, on small official-layout eval folders.

Only the set-up line (`make setup weights`: this test already runs in the set-up environment) and the two
placeholders a user sets (`PB`, `EVAL`) are replaced; every other line runs verbatim, in order.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from pam_bench.types import Video
from pam_bench.video import write_video

from .conftest import REPO, require_weights


def workflow_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Workflows\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def _eval_folder(d: Path, clips: list[np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    for i, c in enumerate(clips):
        write_video(d / "gt" / f"gt_{i:04d}.mp4", Video(c, 15))
        g = np.clip(c.astype(np.int16) + rng.integers(-6, 7, c.shape), 0, 255).astype(np.uint8)
        write_video(d / "generated" / f"generated_{i:04d}.mp4", Video(g, 15))


def test_readme_workflows_run_as_written(tmp_path, dexycb_clip):
    import cv2

    require_weights("i3d-k400")
    require_weights("lpips-alexnet")
    blocks = workflow_blocks()
    assert len(blocks) == 3
    clips = [np.stack([cv2.resize(f, (160, 120)) for f in dexycb_clip[i * 4: i * 4 + 16]]) for i in range(3)]
    evals = tmp_path / "pam_eval"
    _eval_folder(evals / "ckpt_0040", clips)
    shutil.copytree(evals / "ckpt_0040", evals / "ckpt_0042")  # checkpoint N: same GT, same quality
    script = "\n".join(blocks)
    script = script.replace("make setup weights\n", "")
    script = re.sub(r"^PB=\S+", f"PB='{sys.executable} -m pam_bench'", script, flags=re.M)
    script = re.sub(r"^EVAL=\S+", f"EVAL={evals}", script, flags=re.M)
    work = tmp_path / "clone"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ckpt_0042 accepted" in r.stdout
    assert "holds videos for 3 of the 3 clips" in r.stderr
    tex = (work / "table1.tex").read_text()
    assert "Ours-40k" in tex and "Ours-42k" in tex and r"\toprule" in tex
    assert (work / "site" / "index.html").is_file() and (work / "site" / "clips.html").is_file()
