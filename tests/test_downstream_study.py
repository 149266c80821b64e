"""A tiny downstream study end to end through the CLI: table, figure, config, filtering, resume."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pam_bench.errors import IncompatibleResults


@pytest.fixture
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared: one thread is faster than two contended ones
    yield
    torch.set_num_threads(n)


def _argv(out, scores, steps=3):
    return ["downstream", "--out", str(out), "-d", "n_clips=4", "-d", "frames=3", "-d", "height=96", "-d", "width=128",
            "--real-limit", "4", "--eval-limit", "2", "--generated-method", "oracle", "--generated-limit", "4",
            "--filter-scores", str(scores), "--trainer", "embedded", "-t", "arch=tiny", "-t", f"steps={steps}",
            "-t", "batch_size=8", "--crop-size", "32", "--fractions", "0.5,1", "--seeds", "0"]


def test_tiny_study_end_to_end_and_resume(tmp_path, one_thread, monkeypatch, capsys):
    from pam_bench.cli import main
    from pam_bench.downstream.trainer import EmbeddedTrainer

    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"synthetic_0000": 12.0, "synthetic_0001": 40.0, "synthetic_0002": 25.0,
                                  "synthetic_0003": None}))
    out = tmp_path / "study"
    main(_argv(out, scores))
    err = capsys.readouterr().err  # progress with ETA: overall (4 runs) and per mixture (3 training steps)
    assert "downstream: all mixtures" in err and "4/4" in err
    assert "gen+real-50 seed 0" in err and "3/3" in err

    md = (out / "table4.md").read_text()
    for label in ("All real data", "All gen. data", "All gen. + 50% real data", "All gen. + 100% real data"):
        assert label in md
    assert "F-scores on joints" in md and "n/a" in md  # no vertices here: PA-MPVPE is n/a, never a number
    rows = list(csv.DictReader((out / "table4.csv").read_text().splitlines()))
    assert [r["name"] for r in rows] == ["real-100", "gen", "gen+real-50", "gen+real-100"]
    assert all(np.isfinite(float(r["pa_mpjpe_mm"])) for r in rows) and all(r["pa_mpvpe_mm"] == "" for r in rows)
    assert all(float(r["mean_pose_pa_mpjpe_mm"]) > 0 for r in rows) and "mean-pose PA-MPJPE" in md
    png = (out / "fig7.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    filt = json.loads((out / "filter.json").read_text())
    assert filt["dropped"] == ["synthetic_0003"] and filt["kept"] == ["synthetic_0000", "synthetic_0002",
                                                                       "synthetic_0001"]
    runs = {r["mixture"]["name"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert runs["gen"]["n_generated_clips"] == 3 and runs["gen"]["n_real_clips"] == 0
    assert runs["gen+real-50"]["n_real_clips"] == 2 and runs["real-100"]["n_generated_clips"] == 0
    assert runs["gen+real-100"]["n_train_images"] == runs["real-100"]["n_train_images"] + runs["gen"]["n_train_images"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["trainer_options"] == {"arch": "tiny", "steps": 3, "batch_size": 8}
    assert cfg["filter"]["dropped"] == ["synthetic_0003"]
    assert (out / "runs" / "gen" / "seed0" / "model.safetensors").is_file()

    # resume: every run is cached, nothing is retrained
    def boom(*a, **k):
        raise AssertionError("retrained a finished run")

    monkeypatch.setattr(EmbeddedTrainer, "run", boom)
    main(_argv(out, scores))
    assert json.loads((out / "results.json").read_text())["runs"] == list(runs.values())
    # a changed configuration is refused without --force
    with pytest.raises(IncompatibleResults):
        from pam_bench.cli import cli

        cli.main(args=_argv(out, scores, steps=4), standalone_mode=False)


def test_embedded_trainer_is_deterministic_and_learns(one_thread):
    from pam_bench.downstream.frames import FrameSet
    from pam_bench.downstream.trainer import EmbeddedTrainer

    rng = np.random.default_rng(0)
    n = 24
    xyz = rng.normal(0, 0.03, (n, 21, 3)).astype(np.float32)
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    fs = FrameSet("x", images, xyz, np.zeros((n, 21, 2), np.float32), np.tile(np.eye(3), (n, 1, 1)),
                  np.zeros(n, np.int32), np.zeros(n, np.int32))
    tr = EmbeddedTrainer(arch="tiny", steps=25, batch_size=8, lr=3e-3)
    net1, loss1 = tr.fit(fs, seed=3)
    net2, loss2 = tr.fit(fs, seed=3)
    assert loss1 == loss2
    np.testing.assert_array_equal(tr.predict(net1, fs), tr.predict(net2, fs))
    _, loss3 = tr.fit(fs, seed=4)
    assert loss3 != loss1
    assert np.mean(loss1[-5:]) < np.mean(loss1[:5])


def test_study_on_dexycb_format_clips(tmp_path, one_thread):
    """The dexycb defaults (s0-train real, s0-pam-val eval) on fixture clips in the toolkit's formats."""
    from pam_bench.downstream.study import StudyConfig, run_study

    from .fixtures_dexycb import make_dexycb_clip, make_dexycb_skeleton

    root = tmp_path / "dexycb"
    seqs = make_dexycb_skeleton(root)
    subj = sorted(seqs, key=lambda s: int(s.split("-")[-1]))[0]
    from pam_bench.datasets.dexycb import SERIALS

    for seq_index, serials in ((0, SERIALS[:2]), (4, SERIALS[:1])):  # s0-train: i%5 != 4; s0-pam-val: i%5 == 4
        for serial in serials:
            make_dexycb_clip(root, subj, seqs[subj][seq_index], serial, n_frames=49,
                             jpeg_quality=50)
    cfg = StudyConfig(out=str(tmp_path / "out"), dataset="dexycb", root=str(root), real_limit=2, eval_limit=1,
                      generated_method="oracle", generated_limit=1, filter_backend="none", frame_stride=8,
                      trainer_options={"arch": "tiny", "steps": 2, "batch_size": 4}, crop_size=32, fractions=(1.0,))
    res = run_study(cfg, log=lambda s: None)
    runs = {r["mixture"]["name"]: r for r in res["runs"]}
    assert set(runs) == {"real-100", "gen", "gen+real-100"}
    assert runs["real-100"]["n_real_clips"] == 2 and runs["gen"]["n_generated_clips"] == 1
    # frames 0, 8, ..., 48 of each 49-frame clip; the fixture's source frame 4 has no hand (not in the stride)
    assert runs["real-100"]["n_train_images"] == 2 * 7
    assert runs["gen"]["metrics"]["n_images"] == 7
    cfg_json = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg_json["identity"]["real"]["split"] == "s0-train" and cfg_json["identity"]["eval"]["split"] == "s0-pam-val"


def test_two_seeds_two_models_and_crop_default_with_upsampling_warning(tmp_path, one_thread):
    """Embedded trainer: two seeds give two different trained models (and the table a spread); the crop
    size defaults to the trainer's input and a crop larger than its source hand box is reported."""
    from safetensors.numpy import load_file

    from pam_bench.downstream.study import StudyConfig, run_study
    from pam_bench.downstream.trainer import EmbeddedTrainer

    logs = []
    cfg = StudyConfig(out=str(tmp_path / "out"), dataset_options={"n_clips": 2, "frames": 2, "height": 96,
                                                                  "width": 128},
                      real_limit=2, eval_limit=1, generated_method="oracle", generated_limit=1, filter_backend="none",
                      trainer_options={"arch": "tiny", "steps": 2, "batch_size": 4}, fractions=(1.0,), seeds=(0, 1))
    res = run_study(cfg, log=logs.append)
    d = tmp_path / "out" / "runs" / "real-100"
    w0, w1 = load_file(d / "seed0" / "model.safetensors"), load_file(d / "seed1" / "model.safetensors")
    assert set(w0) == set(w1) and any(not np.array_equal(w0[k], w1[k]) for k in w0)
    assert all(r["seed_effective"] for r in res["runs"])
    assert "±" in (tmp_path / "out" / "table4.md").read_text()
    conf = json.loads((tmp_path / "out" / "config.json").read_text())
    assert conf["identity"]["crop"]["size"] == EmbeddedTrainer.input_size
    up = conf["crop_upsampled"]["real"]  # 96x128 synthetic frames: hand boxes x 1.5 are 30-50 px < 64
    assert up["of"] == res["runs"][0]["n_train_images"] and up["n"] == up["of"]
    assert up["median_source_side_px"] < EmbeddedTrainer.input_size
    assert any("upsampled" in line and "real" in line for line in logs)
