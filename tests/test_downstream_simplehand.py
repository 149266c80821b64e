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
    with pytest.raises(PamBenchError, match="predict_command"):
        SimpleHandTrainer(simplehand_dir=str(simplehand_dir), train_command=sys.executable)
    with pytest.raises(MissingResource, match="train.py"):  # the default launch needs the official files
        SimpleHandTrainer(simplehand_dir=str(simplehand_dir)).check_ready()
    with pytest.raises(PamBenchError, match="gpus"):
        SimpleHandTrainer(simplehand_dir=str(simplehand_dir), gpus="0,x")
    with pytest.raises(PamBenchError, match="unknown placeholder"):
        substitute(["--x={oops}"], {"seed": "1"})
    assert substitute(["a={seed}", "{seed}{seed}", "plain"], {"seed": "1"}) == ["a=1", "11", "plain"]


# --- the default launch: pam-bench's entry around a stand-in of the official files ---------------------
# Written here (not upstream code): modules with upstream's names and the behaviour the launcher relies on
# (facts from patienceFromZhou/simpleHand): cfg._CONFIG with DATA.JSON_DIR / VAL.BMK.json_dir / NAME /
# DATA.ROOT_INDEX; dataset.py reads JSON_DIR when imported; train.Trainer.before_train calls
# set_random_seed(rank) before building the model; world_size = torch.cuda.device_count(); checkpoints go
# to ./train_log/models_<NAME>/latest as {"epoch", "state_dict", ...}; models/ is read relative to the cwd.
FAKE_UPSTREAM = {
    "cfg.py": '''_CONFIG = dict(NAME="fastvit_ma36", DATA=dict(JSON_DIR="dataset/train.json", ROOT_INDEX=9,
    IMAGE_SHAPE=[224, 224, 3]), VAL=dict(BMK=dict(json_dir="dataset/eval.json", scale_enlarge=1.25),
    IMAGE_SHAPE=(224, 224), BATCH_SIZE=4))
''',
    "utils.py": '''import os
def get_log_model_dir(tag=""):
    return os.path.join("train_log", f"models_{tag}" if tag else "models")
''',
    "dataset.py": '''import json
from cfg import _CONFIG
open("models/MANO_RIGHT_C.pkl", "rb").close()  # like models/mano_torch.py: relative to the cwd
with open(_CONFIG["DATA"]["JSON_DIR"]) as f:
    all_image_info = json.load(f)
for p in all_image_info:
    info = json.load(open(p.replace(".jpg", ".json")))
    assert len(info["vertices"]) == 778 and len(info["xyz"]) == 21 and len(info["K"]) == 3
''',
    "hand_net.py": '''import torch
class HandNet(torch.nn.Module):
    def __init__(self, cfg, pretrained=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3))
    def forward(self, img):
        b = img.shape[0]
        j = self.w.view(1, 1, 3).expand(b, 21, 3) * torch.arange(21.0).view(1, 21, 1) * 0.01
        return {"joints": j.reshape(b, -1), "vertices": j[:, :1].expand(b, 778, 3).reshape(b, -1)}
''',
    "eval_datataset.py": '''import json
import numpy as np
class HandMeshEvalDataset:
    def __init__(self, json_path, img_size=(224, 224), scale_enlarge=1.2, rot_angle=0):
        self.paths = json.load(open(json_path))
    def __len__(self):
        return len(self.paths)
    def __getitem__(self, i):
        return {"img": np.zeros((3, 8, 8), np.float32), "trans_matrix_3d": np.eye(3, dtype=np.float32)}
''',
    "train.py": '''import argparse, json, os, random
import numpy as np
import torch
from cfg import _CONFIG
import dataset
from hand_net import HandNet
from utils import get_log_model_dir
class Trainer:
    def __init__(self, cfg, args):
        self.cfg, self.args = cfg, args
        self.rank = int(os.environ["LOCAL_RANK"])
        self.world_size = torch.cuda.device_count() if torch.cuda.is_available() else int(os.environ["WORLD_SIZE"])
    def set_random_seed(self, seed):
        random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    def train(self):
        self.set_random_seed(self.rank)
        model = HandNet(self.cfg)
        if self.rank == 0:
            d = get_log_model_dir(self.cfg["NAME"])
            os.makedirs(d, exist_ok=True)
            torch.save({"epoch": 1, "state_dict": model.state_dict()}, os.path.join(d, "latest"))
            json.dump({"cwd": os.getcwd(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                       "world": os.environ["WORLD_SIZE"], "json_dir": self.cfg["DATA"]["JSON_DIR"],
                       "n_images": len(dataset.all_image_info)}, open("launch.json", "w"))
def main():
    p = argparse.ArgumentParser(); p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    Trainer(_CONFIG, args).train()
''',
}


@pytest.fixture
def fake_upstream(tmp_path):
    d = tmp_path / "simpleHand-standin"
    (d / "models").mkdir(parents=True)
    (d / "models" / "MANO_RIGHT_C.pkl").write_bytes(b"")
    for name, text in FAKE_UPSTREAM.items():
        (d / name).write_text(text)
    return d


def _weights(workdir):
    import torch

    return torch.load(workdir / "train_log" / "models_fastvit_ma36" / "latest", weights_only=True)["state_dict"]["w"]


def test_default_launch_per_run_folders_gpus_and_effective_seeds(fake_upstream, tmp_path):
    import torch

    from pam_bench.downstream.report import write_report
    from pam_bench.downstream.simplehand import SimpleHandTrainer

    train, evalset = _frames("train", 2), _frames("val", 2)
    tr = SimpleHandTrainer(device="cuda", simplehand_dir=str(fake_upstream), gpus="3,5", timeout_s=300)
    assert tr.identity()["seed_mode"] == "patched" and tr.identity()["nproc"] == 2
    runs = tmp_path / "out" / "runs" / "gen"
    pred = {s: tr.run(train, evalset, seed=s, workdir=runs / f"seed{s}") for s in (0, 1)}
    launch = json.loads((runs / "seed0" / "launch.json").read_text())
    assert launch["cwd"] == str(runs / "seed0")  # upstream's ./train_log is per mixture and seed
    assert launch["visible"] == "3,5" and launch["world"] == "2"  # exactly the requested GPUs
    assert launch["json_dir"] == str(runs / "seed0" / "data" / "train.json") and launch["n_images"] == len(train)
    assert not (fake_upstream / "train_log").exists()
    assert not torch.equal(_weights(runs / "seed0"), _weights(runs / "seed1"))  # two seeds, two models
    assert pred[0]["seed_effective"] and pred[0]["xyz"].shape == (len(evalset), 21, 3)
    assert pred[0]["verts"].shape == (len(evalset), 778, 3)

    official = SimpleHandTrainer(device="cuda:2", simplehand_dir=str(fake_upstream), honour_seed="false")
    assert official.gpus == ["2"] and official.timeout_s == 48 * 3600
    res = {s: official.run(train, evalset, seed=s, workdir=tmp_path / "o" / "runs" / "gen" / f"seed{s}")
           for s in (0, 1)}
    # upstream re-seeds with the rank: the seed does not change the model, and the run says so
    assert torch.equal(_weights(tmp_path / "o/runs/gen/seed0"), _weights(tmp_path / "o/runs/gen/seed1"))
    assert not res[0]["seed_effective"] and "GPU rank" in res[0]["seed_note"]
    mixture = {"name": "gen", "label": "All gen. data", "real_fraction": 0.0, "generated": True}
    metrics = {"pa_mpjpe_mm": 5.0, "pa_mpvpe_mm": 6.0, "f_at_5mm": 0.5, "f_at_15mm": 0.9, "auc_joints": 0.8,
               "mean_pose_pa_mpjpe_mm": 9.0, "fscore_on": "vertices"}
    rows = [{"mixture": mixture, "seed": s, "metrics": {**metrics, "pa_mpjpe_mm": 5.0 + s}, "n_train_images": 4,
             "seed_effective": r["seed_effective"], "seed_note": r["seed_note"]} for s, r in res.items()]
    write_report(rows, tmp_path / "o", (1.0,))
    md = (tmp_path / "o" / "table4.md").read_text()
    assert "5.50 †" in md and "±" not in md and "seeds not effective" in md and "GPU rank" in md
    csv_row = (tmp_path / "o" / "table4.csv").read_text().splitlines()[1].split(",")
    assert csv_row[-1] == "0" and csv_row[8] == ""  # pa_mpjpe_mm_std left empty


def test_dexycb_mano_vertices_flow_into_the_export_with_every_field_the_loaders_read(tmp_path):
    """DexYCB pose_m + betas -> smplx MANO vertices (tiny MANO-format .pkl read through the allow-list
    unpickler) -> crops -> SimpleHand export with xyz, K, vertices (training loader) and uv (evaluation)."""
    import pickle

    from scipy.spatial.transform import Rotation

    from pam_bench.datasets.dexycb import SERIALS, SUBJECTS, DexYCB
    from pam_bench.downstream.export import export_freihand
    from pam_bench.downstream.frames import extract
    from pam_bench.errors import InputError

    from .fixtures_dexycb import fake_mano_arrays, fake_mano_dir, make_dexycb_clip

    pytest.importorskip("smplx")
    root, subj, seq, serial = tmp_path / "dexycb", SUBJECTS[0], "20200709_141754", SERIALS[0]
    make_dexycb_clip(root, subj, seq, serial, n_frames=49)
    d = root / subj / seq / serial
    rot, trans = {}, np.array([0.01, -0.02, 0.6])
    for t in range(49):
        lab = dict(np.load(d / f"labels_{t:06d}.npz"))
        if lab["pose_m"].any():  # a hand: global rotation, mean hand pose (zero PCA coefficients), translation
            rot[t] = np.array([0.3, -0.2, 0.1]) * (1 + t / 49)
            lab["pose_m"] = np.r_[rot[t], np.zeros(45), trans].astype(np.float32)[None]
            np.savez(d / f"labels_{t:06d}.npz", **lab)
    betas = np.linspace(-1, 1, 10)
    calib = root / "calibration" / "mano_20200709-subject-01_right"
    calib.mkdir(parents=True)
    (calib / "mano.yml").write_text("betas:\n" + "".join(f"- {b}\n" for b in betas))
    mano = fake_mano_dir(tmp_path / "mano", fmt="pkl")

    s = DexYCB(root=root, split="s0-train", mano_dir=mano).load(f"{subj}/{seq}/{serial}")
    verts = s.meta["mano_vertices"]
    assert verts.shape == (49, 1, 778, 3) and np.isnan(verts[4]).all()  # fixture frame 4: no hand
    # reference written from MANO's definition: shaped template, rotated about joint 0, translated
    # (zero hand pose: the pose blend shapes vanish; hands_mean of the fake model is zero)
    m = fake_mano_arrays(0)
    shaped = m["v_template"] + m["shapedirs"] @ betas
    j0 = m["J_regressor"][0] @ shaped
    for t in (0, 20, 48):
        ref = (shaped - j0) @ Rotation.from_rotvec(rot[t]).as_matrix().T + j0 + trans
        np.testing.assert_allclose(verts[t, 0], ref, atol=2e-5)

    fs = extract(s, s.video, size=32, stride=8)
    assert fs.verts is not None and np.isfinite(fs.verts).all()
    listing = export_freihand(fs, tmp_path / "export", tmp_path / "export.json", require_vertices=True)
    paths = json.loads(listing.read_text())
    assert len(paths) == len(fs)
    for i, p in enumerate(paths):
        info = json.loads((tmp_path / "export" / f"{i:08d}.json").read_text())
        assert p == info["image_path"] and p.endswith(".jpg") and p.replace(".jpg", ".json").endswith(f"{i:08d}.json")
        xyz, uv, K, v = (np.asarray(info[k]) for k in ("xyz", "uv", "K", "vertices"))
        assert xyz.shape == (21, 3) and uv.shape == (21, 2) and K.shape == (3, 3) and v.shape == (778, 3)
        # (the fixture's joint_2d is not K @ joint_3d, so uv is compared with the crop's own uv here; the
        # stand-in above checks uv == K @ xyz on consistent synthetic GT)
        np.testing.assert_allclose(uv, fs.uv[i], atol=1e-4)
        np.testing.assert_allclose(K, fs.K[i], atol=1e-9)
        np.testing.assert_allclose(v, fs.verts[i], atol=1e-6)

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    bad = tmp_path / "bad_mano"
    bad.mkdir()
    (bad / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(InputError, match="MANO_RIGHT.pkl"):
        DexYCB(root=root, split="s0-train", mano_dir=bad).load(f"{subj}/{seq}/{serial}")
    assert not (tmp_path / "pwned").exists()
