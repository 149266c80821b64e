"""The SimpleHand launcher with a stand-in executable that checks what it is given."""
from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from pam_bench.errors import MissingResource, PamBenchError

STANDIN = textwrap.dedent('''
    """Stand-in for SimpleHand's train.py / infer_to_json.py: checks its arguments and files."""
    import json, os, sys
    from pathlib import Path
    import numpy as np

    def check_list(path):
        paths = json.loads(Path(path).read_text())
        assert isinstance(paths, list) and paths, "empty image list"
        for p in paths:
            assert p.endswith(".jpg") and Path(p).is_file(), p
            info = json.loads(Path(p[:-4] + ".json").read_text())
            xyz, uv, K = (np.array(info[k]) for k in ("xyz", "uv", "K"))
            assert xyz.shape == (21, 3) and uv.shape == (21, 2) and K.shape == (3, 3)
            assert np.array(info["vertices"]).shape == (778, 3)
            assert info["image_path"] == p
            proj = (K @ xyz.T).T
            assert np.abs(proj[:, :2] / proj[:, 2:] - uv).max() < 1e-3, "uv is not K @ xyz"
        return paths

    mode = sys.argv[1]
    if mode == "fail":
        print("boom: CUDA not available")
        sys.exit(3)
    if mode == "train":
        _, _, train_json, seed, workdir = sys.argv
        assert os.environ["PAM_BENCH_TRAIN_JSON"] == train_json
        assert os.environ["PAM_BENCH_SEED"] == seed == "5"
        n = len(check_list(train_json))
        (Path(workdir) / "standin_trained.json").write_text(json.dumps({"n": n, "cwd": os.getcwd()}))
    elif mode == "predict":
        _, _, eval_json, predictions = sys.argv
        out = []
        rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        for p in check_list(eval_json):
            info = json.loads(Path(p[:-4] + ".json").read_text())
            # a similarity transform of the GT: PA alignment must undo it
            out.append({"image_path": p, "pred_xyz": (0.8 * np.array(info["xyz"]) @ rot.T + 0.1).tolist(),
                        "pred_vertices": (0.8 * np.array(info["vertices"]) @ rot.T + 0.1).tolist()})
        Path(predictions).write_text(json.dumps(out))
''')


def _frames(split: str, n_frames: int, verts: bool = True):
    from pam_bench.datasets.synthetic import SyntheticHOI
    from pam_bench.downstream.frames import extract

    ds = SyntheticHOI(split=split, n_clips=1, frames=n_frames, height=96, width=128)
    s = ds.load("synthetic_0000")
    if verts:
        rng = np.random.default_rng(0)
        j = s.joints_3d
        s.meta["mano_vertices"] = j[:, :, rng.integers(0, 21, 778)] + rng.normal(0, 0.005, (n_frames, 1, 778, 3))
    return extract(s, s.video, size=48)


@pytest.fixture
def simplehand_dir(tmp_path):
    d = tmp_path / "simpleHand"
    d.mkdir()
    (d / "standin.py").write_text(STANDIN)
    return d


def _trainer(d, train_mode="train"):
    from pam_bench.downstream.simplehand import SimpleHandTrainer

    return SimpleHandTrainer(
        device="cpu", simplehand_dir=str(d),
        train_command=[sys.executable, "standin.py", train_mode, "{train_json}", "{seed}", "{workdir}"],
        predict_command=f"{sys.executable} standin.py predict {{eval_json}} {{predictions}}")


def test_launcher_exports_runs_and_reads_predictions(simplehand_dir, tmp_path):
    from pam_bench.downstream.evaluate import PoseEvaluator

    train, evalset = _frames("train", 3), _frames("val", 2)
    work = tmp_path / "runs" / "gen" / "seed5"
    pred = _trainer(simplehand_dir).run(train, evalset, seed=5, workdir=work)
    marker = json.loads((work / "standin_trained.json").read_text())
    assert marker["n"] == len(train) and marker["cwd"] == str(simplehand_dir)
    assert pred["xyz"].shape == (len(evalset), 21, 3) and pred["verts"].shape == (len(evalset), 778, 3)
    ev = PoseEvaluator()
    ev.feed(evalset.xyz, pred["xyz"], evalset.verts, pred["verts"])
    r = ev.result()
    assert r["pa_mpjpe_mm"] < 1e-3 and r["pa_mpvpe_mm"] < 1e-3 and r["f_at_5mm"] == 1.0
    assert r["fscore_on"] == "vertices"
    assert (work / "train.log").is_file() and (work / "predict.log").is_file()


def test_launcher_errors(simplehand_dir, tmp_path):
    from pam_bench.downstream.simplehand import SimpleHandTrainer, substitute

    train, evalset = _frames("train", 2), _frames("val", 2)
    with pytest.raises(PamBenchError, match="exited with status 3.*boom"):
        _trainer(simplehand_dir, "fail").run(train, evalset, 5, tmp_path / "w1")
    with pytest.raises(MissingResource, match="vertices"):
        _trainer(simplehand_dir).run(_frames("train", 2, verts=False), evalset, 5, tmp_path / "w2")
    with pytest.raises(MissingResource, match="SimpleHand folder"):
        SimpleHandTrainer(simplehand_dir=str(tmp_path / "nope"), train_command="x", predict_command="y").check_ready()
    with pytest.raises(MissingResource, match="predict_command"):
        SimpleHandTrainer(simplehand_dir=str(simplehand_dir), train_command=sys.executable).check_ready()
    with pytest.raises(PamBenchError, match="unknown placeholder"):
        substitute(["--x={oops}"], {"seed": "1"})
    assert substitute(["a={seed}", "{seed}{seed}", "plain"], {"seed": "1"}) == ["a=1", "11", "plain"]
