"""Scale-out: a 2-process gloo run equals a 1-process run; shard folders merged equal a single run."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pam_bench.distributed import merge
from pam_bench.run.torchrun import world_from_env
from pam_bench.errors import IncompatibleResults, InputError, PamBenchError
from pam_bench.run.loop import evaluate
from pam_bench.metrics.base import Metric, MetricResult
from pam_bench.registry import REGISTRY

DS = {"n_clips": 5, "frames": 4, "height": 48, "width": 64}


class ColourStat(Metric):
    """A tiny set metric with a GT side (like FVD): squared distance of the mean colours of both sets.

    measure_reference -> {"real": mean RGB}, measure -> {"gen": mean RGB}; the harness caches the GT side.
    """

    name = "test-colour-stat"
    direction = "lower"
    version = "1"
    kind = "set"
    backend = "numpy"

    def measure_reference(self, sample):
        return {"real": sample.video.frames.reshape(-1, 3).mean(0)}

    def measure(self, sample, generated):
        return {"gen": generated.frames.reshape(-1, 3).mean(0)}

    def reset(self):
        self._real, self._gen = [], []

    def update(self, payload):
        self._real.append(np.asarray(payload["real"], np.float64))
        self._gen.append(np.asarray(payload["gen"], np.float64))

    def compute(self):
        d = np.mean(self._real, axis=0) - np.mean(self._gen, axis=0)
        return MetricResult(self.name, float(d @ d), self.direction, self.backend, self.version, len(self._real))


if ("metric", ColourStat.name) not in {(e.kind, e.name) for e in REGISTRY.entries("metric")}:
    REGISTRY.add("metric", ColourStat.name, "tests.test_distributed:ColourStat", "test-only set metric")
METRICS = ["ssim", "psnr", ColourStat.name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, gt: str) -> None:
    """One torchrun-like rank: the environment torchrun would set, then the ordinary evaluate call."""
    from tests._small import Noisy

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    gen = Noisy()
    res = evaluate(gen, _dataset(), METRICS, out, progress=False, gt_cache=gt)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"calls": gen.calls, "metrics": res["metrics"]}))


def _dataset():
    from pam_bench.datasets.synthetic import SyntheticHOI

    return SyntheticHOI(**DS)


def _same_metrics(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k]["value"] == b[k]["value"], k  # identical, not approximately equal
        assert a[k]["ci95"] == b[k]["ci95"] and a[k]["n"] == b[k]["n"], k


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    from tests._small import Noisy

    base = tmp_path_factory.mktemp("dist")
    res = evaluate(Noisy(), _dataset(), METRICS, base / "single", progress=False, gt_cache=base / "gt")
    return base, res


def test_world_from_env():
    assert world_from_env({}) == (0, 1, 0)
    assert world_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == (2, 4, 0)
    with pytest.raises(PamBenchError, match="RANK"):
        world_from_env({"WORLD_SIZE": "2"})


def test_two_gloo_processes_equal_one_process(single, tmp_path):
    import torch.multiprocessing as mp

    base, one = single
    out = tmp_path / "two"
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(tmp_path / "gt")), nprocs=2, join=True)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["calls"] for r in ranks] == [3, 2]  # disjoint shares: clips 0,2,4 and 1,3
    two = json.loads((out / "results.json").read_text())
    _same_metrics(two["metrics"], one["metrics"])
    _same_metrics(ranks[1]["metrics"], one["metrics"])  # every rank returns the results
    assert two["env"]["world_size"] == 2
    assert (out / "per_video.jsonl").read_text() == (base / "single" / "per_video.jsonl").read_text()
    assert sorted(p.name for p in (out / "videos").glob("*.mp4")) == [f"synthetic_{i:04d}.mp4" for i in range(5)]


def _shard(i, n, out, gt):
    from tests._small import Noisy

    return evaluate(Noisy(), _dataset(), METRICS, out, shard=f"{i}/{n}", progress=False, gt_cache=gt)


def test_shards_merged_equal_a_single_run(single, tmp_path):
    base, one = single
    gt = base / "gt"  # the shards of one job array share the GT cache
    dirs = [tmp_path / f"s{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        _shard(i, 3, d, gt)
    from pam_bench.cli import main

    main(["merge", str(dirs[2]), str(dirs[0]), str(dirs[1]), "--out", str(tmp_path / "merged"), "--gt-cache", str(gt)])
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    _same_metrics(merged["metrics"], one["metrics"])
    assert (tmp_path / "merged" / "per_video.jsonl").read_text() == (base / "single" / "per_video.jsonl").read_text()
    assert merged["n_evaluated"] == merged["n_expected"] == DS["n_clips"]
    assert json.loads((tmp_path / "merged" / "run.json").read_text())["shard"] == [0, 1]
    # refusals: a missing shard, a shard of another run, a duplicate
    with pytest.raises(IncompatibleResults, match="missing"):
        merge(dirs[:2], tmp_path / "m2", gt_cache=gt)
    with pytest.raises(IncompatibleResults, match="more than once"):
        merge([dirs[0], dirs[0], dirs[1]], tmp_path / "m3", gt_cache=gt)
    from tests._small import Noisy

    odd = tmp_path / "odd"
    evaluate(Noisy(amp=5), _dataset(), METRICS, odd, shard="1/3", progress=False, gt_cache=gt)
    with pytest.raises(IncompatibleResults, match="method"):
        merge([dirs[0], odd, dirs[2]], tmp_path / "m4", gt_cache=gt)
    with pytest.raises(InputError, match="run.json"):
        merge([tmp_path], tmp_path / "m5", gt_cache=gt)
    # a shard whose payloads of a metric sit under another key (another configuration of that metric)
    import shutil

    other = tmp_path / "other_key"
    shutil.copytree(dirs[0], other)
    key_dir = sorted(p for p in (other / "payloads").iterdir() if p.is_dir())[0]
    key_dir.rename(key_dir.with_name(key_dir.name.split("@")[0] + "@0-another-configuration"))
    with pytest.raises(InputError, match="under another key .*@0-another-configuration"):
        merge([other, dirs[1], dirs[2]], tmp_path / "m6", gt_cache=gt)


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """The documented command line: torchrun --nproc-per-node 2 -m pam_bench evaluate ... (CPU, gloo)."""
    common = ["--method", "static", "--dataset", "synthetic", "--metrics", "ssim,psnr", "--no-progress",
              "-d", "n_clips=3", "-d", "frames=4", "-d", "height=48", "-d", "width=64"]
    env = {**os.environ, "PAM_BENCH_HOME": str(tmp_path / "home")}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    "-m", "pam_bench", "evaluate", *common, "--out", str(tmp_path / "two")],
                   check=True, env=env, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "pam_bench", "evaluate", *common, "--out", str(tmp_path / "one")],
                   check=True, env=env, capture_output=True, timeout=300)
    a = json.loads((tmp_path / "two" / "results.json").read_text())
    b = json.loads((tmp_path / "one" / "results.json").read_text())
    _same_metrics(a["metrics"], b["metrics"])
    assert a["env"]["world_size"] == 2
