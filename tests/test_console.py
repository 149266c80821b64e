"""Progress bars with an ETA for long work (downstream, bench), and rank-0-only printing under torchrun."""
from __future__ import annotations

import json
import subprocess
import sys

from pam_bench.console import is_main_process, progress


def test_only_rank_zero_is_the_main_process():
    assert is_main_process({}) and is_main_process({"RANK": "0"})
    assert not is_main_process({"RANK": "1"})


def test_progress_bar_shows_eta_and_is_silent_off_rank_zero(capsys, monkeypatch):
    bar = progress(4, "stages", "stage")
    for _ in range(4):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "stages" in err and "4/4" in err and "<" in err  # elapsed<remaining
    monkeypatch.setenv("RANK", "1")
    bar = progress(4, "quiet", "stage")
    bar.update(4)
    bar.close()
    assert "quiet" not in capsys.readouterr().err


def test_evaluate_prints_its_table_on_rank_zero_only(tmp_path):
    """Two processes that see torchrun's RANK: only rank 0 prints the table and the 'wrote' line."""
    outs = {}
    for rank in (0, 1):
        code = ("import os, sys; from pam_bench.cli import main\n"
                "from pam_bench import harness\n"
                "harness.evaluate = lambda **kw: json.loads(open(sys.argv[1]).read())\n"
                "import json\n"
                "main(['evaluate', '--method', 'static', '--metrics', 'psnr', '--out', sys.argv[2], '--no-progress'])")
        res = {"method": {"name": "static"}, "dataset": {"name": "synthetic", "split": "val"}, "n_evaluated": 1,
               "n_expected": 1, "metrics": {}}
        f = tmp_path / "res.json"
        f.write_text(json.dumps(res))
        r = subprocess.run([sys.executable, "-c", code, str(f), str(tmp_path / "o")], capture_output=True,
                           text=True, timeout=120, env={**__import__("os").environ, "RANK": str(rank)})
        assert r.returncode == 0, r.stderr
        outs[rank] = r.stdout
    assert "wrote" in outs[0] and "static" in outs[0]
    assert outs[1] == ""
