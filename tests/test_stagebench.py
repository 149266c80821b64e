"""``pam-bench bench --method M``: per-stage wall time and memory, in Table 5's shape."""
from __future__ import annotations

import time

import numpy as np
import pytest
from click.testing import CliRunner

from pam_bench.procstats import rss_bytes
from pam_bench.stagebench import REPORTED, StageTimer


def test_timer_measures_time_and_memory_against_references():
    timer = StageTimer("cpu", interval_s=0.002)
    t0 = time.perf_counter()
    with timer("sleep"):
        time.sleep(0.05)
    outer = time.perf_counter() - t0
    before = rss_bytes()
    with timer("alloc"):
        a = np.ones(40_000_000, np.float64)  # 320 MB, touched
        time.sleep(0.02)
        del a
    sleep, alloc = timer.records
    assert 0.05 <= sleep.seconds <= outer
    assert [r.name for r in timer.records] == ["sleep", "alloc"]
    if before is not None:  # Linux: the sampled peak saw the array, though it is freed by the stage's end
        assert alloc.host_peak_gb - before / 1e9 > 0.9 * 0.32
        assert alloc.host_highwater_gb >= alloc.host_peak_gb * 0.99
    assert alloc.cuda_peak_gb is None


def _cli(args):
    from pam_bench.cli import cli

    r = CliRunner().invoke(cli, ["bench", *args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


def _row(out: str, label: str) -> list[str]:
    line = next(x for x in out.splitlines() if x.startswith(f"| {label}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_method_without_stages_is_one_generate_stage():
    out = _cli(["--method", "static", "--frames", "5", "--height", "32", "--width", "48"])
    row = _row(out, "generate (no stages)")
    assert float(row[1]) >= 0 and float(row[2]) > 0
    assert "Stage III" not in out and "reported s (H20)" in out


class FakeStaged:
    """A generator with PAM's hook shape (pipeline().stage_timer) whose stages sleep known times."""

    name, mode, stage1 = "fake-pam", "full", "builtin"
    sleeps = {"stage1": 0.02, "stage2": 0.04, "stage3": 0.06}

    def __init__(self, device="cpu", **options):
        self.options = options
        self.stage_timer = None

    def check_ready(self):
        pass

    def pipeline(self):
        return self

    def generate(self, sample, seed):
        for name, s in self.sleeps.items():
            with self.stage_timer(name):
                time.sleep(s)
        return sample.video


def test_staged_method_rows_line_up_with_table5(monkeypatch):
    seen = {}

    def build(name, device="cpu", **opts):
        seen.update(opts, name=name)
        return FakeStaged(device, **opts)

    monkeypatch.setattr("pam_bench.run.components.build_method", build)
    out = _cli(["--method", "pam", "--checkpoint", "/ck", "-o", "steps=3", "--frames", "5", "--height", "32",
                "--width", "48"])
    assert seen == {"name": "pam", "checkpoint": "/ck", "steps": 3}
    labels = ("Stage I (pose)", "Stage II (appearance)", "Stage III (motion)")
    rows = [_row(out, lab) for lab in labels]
    for row, key in zip(rows, ("stage1", "stage2", "stage3")):
        assert float(row[1]) >= FakeStaged.sleeps[key] - 1e-3
        assert float(row[2]) > 0 and row[4] == "– (cpu)"
        assert (float(row[5]), float(row[6])) == REPORTED[key]
    lines = out.splitlines()
    pos = [next(i for i, x in enumerate(lines) if x.startswith(f"| {lab}")) for lab in labels]
    assert pos == sorted(pos)  # Table 5's column order, as rows
    assert float(_row(out, "total (generate, excl. loading)")[1]) >= sum(float(r[1]) for r in rows) * 0.999


@pytest.mark.slow
def test_pam_tiny_i2v_prints_table5_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    from tests.tiny_pam import write_tiny_checkpoint

    ck = write_tiny_checkpoint(tmp_path / "PAM", mode="i2v")
    out = _cli(["--method", "pam", "--checkpoint", str(ck), "-o", "mode=i2v", "-o", "steps=1",
                "-o", "shared_prompt=true", "--frames", "9", "--height", "32", "--width", "48"])
    s3 = _row(out, "Stage III (motion)")
    assert float(s3[1]) > 0 and float(s3[2]) > 0 and s3[4] == "– (cpu)"
    assert (float(s3[5]), float(s3[6])) == REPORTED["stage3"]  # reported H20 columns, cited
    assert "not run (mode=i2v" in _row(out, "Stage II (appearance)")[1]
    assert "not run (no -o stage1" in _row(out, "Stage I (pose)")[1]
    assert float(_row(out, "model loading")[1]) > 0
    total = _row(out, "total (generate, excl. loading)")
    assert float(total[1]) >= float(s3[1])
    assert "PAM supplementary Table 1" in out


@pytest.mark.slow
def test_pam_tiny_full_mode_all_three_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    from tests.tiny_pam import write_tiny_checkpoint

    ck = write_tiny_checkpoint(tmp_path / "PAM", mode="full")
    out = _cli(["--method", "pam", "--checkpoint", str(ck), "-o", "mode=full", "-o", "stage1=builtin",
                "-o", "steps=1", "--frames", "9", "--height", "32", "--width", "48"])
    stages = [_row(out, lab) for lab in ("Stage I (pose)", "Stage II (appearance)", "Stage III (motion)")]
    for row, key in zip(stages, ("stage1", "stage2", "stage3")):
        assert float(row[1]) > 0 and float(row[2]) > 0
        assert (float(row[5]), float(row[6])) == REPORTED[key]
    total = float(_row(out, "total (generate, excl. loading)")[1])
    assert total >= sum(float(r[1]) for r in stages) * 0.999
