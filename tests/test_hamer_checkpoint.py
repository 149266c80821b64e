"""HaMeR: the official Lightning hamer.ckpt layout loads as downloaded; hostile checkpoints are refused
with one line and no code run; the backend's options (dtype, detector) and hash cache."""
from __future__ import annotations

import contextlib
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pam_bench.errors import InputError, MissingResource, OptionError  # noqa: E402


@contextlib.contextmanager
def _yacs_standin():
    """A dict subclass named yacs.config.CfgNode, registered in sys.modules only while the file is written
    (yacs is not installed here; the pickle names the class by module and name only)."""

    class CfgNode(dict):
        def __init__(self, init=None, **kw):
            super().__init__(init or {}, **kw)
            self.__dict__["__immutable__"] = False
            self.__dict__["__deprecated_keys__"] = set()
            self.__dict__["__renamed_keys__"] = {}
            self.__dict__["__new_allowed__"] = False

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    mod = types.ModuleType("yacs.config")
    mod.CfgNode = CfgNode
    saved = {k: sys.modules.get(k) for k in ("yacs", "yacs.config")}
    sys.modules.update({"yacs": types.ModuleType("yacs"), "yacs.config": mod})
    try:
        yield CfgNode
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _official_layout(CfgNode, extra=None) -> dict:
    """A tiny checkpoint with the keys Lightning writes for HaMeR's Trainer + ModelCheckpoint (facts)."""
    cfg = CfgNode({"MODEL": CfgNode({"IMAGE_SIZE": 256, "BACKBONE": CfgNode({"TYPE": "vit"})}),
                   "MANO": CfgNode({"NUM_HAND_JOINTS": 15, "MODEL_PATH": "data/mano"}),
                   "LOSS_WEIGHTS": CfgNode({"KEYPOINTS_3D": 0.05}), "TRAIN": CfgNode({"LR": 1e-5})})
    cfg.__dict__["__immutable__"] = True
    sd = {"backbone.patch_embed.proj.weight": torch.randn(4, 3, 2, 2), "mano_head.decpose.bias": torch.randn(6)}
    ckpt = {
        "epoch": 12, "global_step": 1000000, "pytorch-lightning_version": "2.1.0", "state_dict": sd,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 13, "completed": 12}},
                               "epoch_loop.state_dict": {"_batches_that_stepped": 1000000}}},
        "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 10000, "
                      "'every_n_epochs': 0, 'train_time_interval': None}":
                      {"monitor": None, "best_model_score": None, "best_model_path": "",
                       "current_score": None, "dirpath": "/logs/hamer/checkpoints", "best_k_models": {},
                       "kth_best_model_path": "", "kth_value": torch.tensor(float("inf")),
                       "last_model_path": "/logs/hamer/checkpoints/last.ckpt"}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(6),
                                            "exp_avg_sq": torch.zeros(6)}},
                              "param_groups": [{"lr": 1e-5, "betas": (0.9, 0.999), "eps": 1e-8,
                                                "weight_decay": 1e-4, "amsgrad": False, "params": [0]}]}],
        "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": {"cfg": cfg},
    }
    ckpt.update(extra or {})
    return ckpt


def test_official_layout_loads_as_downloaded(tmp_path):
    from pam_bench.metrics.hamer_checkpoint import load_hamer_checkpoint

    path = tmp_path / "hamer.ckpt"
    with _yacs_standin() as CfgNode:
        ckpt = _official_layout(CfgNode)
        torch.save(ckpt, path)
    with pytest.raises(Exception):  # what the old code did, and why it failed on the real file
        torch.load(path, weights_only=True)
    sd, info = load_hamer_checkpoint(path)
    assert set(sd) == set(ckpt["state_dict"])
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(sd[k], v)
    assert info["lightning_version"] == "2.1.0" and info["global_step"] == 1000000 and info["has_yacs_cfg"]
    assert "yacs.config.CfgNode" in info["read_with"]
    assert "yacs" not in sys.modules or not hasattr(sys.modules.get("yacs.config"), "CfgNode")


class _Gadget:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # would create a file if the unpickler ran it
        return (open, (self.marker, "w"))


class _Callback:  # a pickled Lightning object: off the allow-list
    def __init__(self):
        self.best = 1.0


_Callback.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
_Callback.__qualname__ = "ModelCheckpoint"


@pytest.mark.parametrize("what", ["reduce_gadget", "unexpected_global", "exec_gadget"])
def test_hostile_checkpoint_is_refused_with_no_code_run(tmp_path, what):
    from pam_bench.metrics.hamer_checkpoint import load_hamer_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "hamer.ckpt"
    if what == "reduce_gadget":
        extra, refused = {"callbacks": {"x": _Gadget(str(marker))}}, "io.open"
    elif what == "exec_gadget":
        class Exec:
            def __reduce__(self):
                return (exec, (f"open({str(marker)!r}, 'w')",))
        extra, refused = {"loops": Exec()}, ".exec"  # protocol 2 writes __builtin__.exec
    else:
        mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
        mod.ModelCheckpoint = _Callback
        sys.modules.update({"pytorch_lightning": types.ModuleType("pytorch_lightning"),
                            "pytorch_lightning.callbacks": types.ModuleType("pytorch_lightning.callbacks"),
                            "pytorch_lightning.callbacks.model_checkpoint": mod})
        extra, refused = {"callbacks": {"mc": _Callback()}}, "ModelCheckpoint"
    try:
        with _yacs_standin() as CfgNode:
            torch.save(_official_layout(CfgNode, extra), path)
    finally:
        if what == "unexpected_global":
            for name in ("pytorch_lightning", "pytorch_lightning.callbacks",
                         "pytorch_lightning.callbacks.model_checkpoint"):
                sys.modules.pop(name, None)
    with pytest.raises(InputError) as e:
        load_hamer_checkpoint(path)
    msg = str(e.value)
    assert "hamer.ckpt" in msg and refused in msg and "\n" not in msg
    assert not marker.exists()


def test_backend_options_identity_and_hash_cache(tmp_path, monkeypatch):
    from pam_bench.metrics import hands as H

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    d = tmp_path / "_DATA"
    for rel in ("hamer_ckpts/checkpoints/hamer.ckpt", "hamer_ckpts/model_config.yaml", "data/mano/MANO_RIGHT.pkl",
                "data/mano_mean_params.npz"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(rel.encode())
    b = H.HaMeRHands(hamer_dir=str(d))
    calls = []
    import pam_bench.weights as W

    real = W.sha256_file
    monkeypatch.setattr(W, "sha256_file", lambda p: calls.append(str(p)) or real(p))
    ident = b.identity()
    assert ident["dtype"] == "fp32" and ident["boxes"] == "mediapipe landmarks"
    assert ident["checkpoint_sha256"] == real(d / "hamer_ckpts/checkpoints/hamer.ckpt")
    n = len(calls)
    assert n >= 1 and b.identity() == ident and len(calls) == n  # cached by (path, size, mtime)
    ck = d / "hamer_ckpts/checkpoints/hamer.ckpt"
    ck.write_bytes(b"changed!" * 3)
    assert b.identity()["checkpoint_sha256"] == real(ck) and len(calls) > n
    assert H.HaMeRHands(hamer_dir=str(d), dtype="bf16").identity()["dtype"] == "bf16"
    with pytest.raises(OptionError, match="mpjpe \\(hamer\\) option dtype: must be one of fp32, bf16, got 'fp16'"):
        H.HaMeRHands(dtype="fp16")
    with pytest.raises(OptionError, match="option detector"):
        H.HaMeRHands(detector="yolo")
    v = H.HaMeRHands(hamer_dir=str(d), detector="vitdet")
    with pytest.raises(MissingResource, match="detectron2|mmpose|hamer"):
        v.check_ready()


# ---------------------------------------------------------------------------------------------
# the MPJPE payload key follows the HaMeR configuration (weights, dtype), not the folder's path

_HAMER_FILES = ("hamer_ckpts/checkpoints/hamer.ckpt", "hamer_ckpts/model_config.yaml", "data/mano/MANO_RIGHT.pkl",
                "data/mano_mean_params.npz")


def _hamer_data(d, checkpoint: bytes = b"weights A"):
    """A HaMeR _DATA folder of placeholder files (only their bytes matter to the key)."""
    for rel in _HAMER_FILES:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(checkpoint if rel.endswith(".ckpt") else rel.encode())
    return str(d)


def test_mpjpe_key_follows_hamer_weights_and_dtype_hashing_once(tmp_path, monkeypatch):
    import shutil

    import pam_bench.weights as W
    from pam_bench.metrics.hand import HandMPJPE

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    a = _hamer_data(tmp_path / "A")
    b = _hamer_data(tmp_path / "B", b"weights B")  # differs from A in the checkpoint's bytes only
    a_copy = str(shutil.copytree(a, tmp_path / "A-copy"))
    calls = []
    real = W.sha256_file
    monkeypatch.setattr(W, "sha256_file", lambda p: calls.append(str(p)) or real(p))

    def key(d, **kw):
        return HandMPJPE(backend="hamer", hamer_dir=d, **kw).key

    m = HandMPJPE(backend="hamer", hamer_dir=a)
    k_a = m.key
    n = len(calls)
    assert n == len(_HAMER_FILES)  # each file of A hashed once
    assert all(m.key == k_a for _ in range(50)) and len(calls) == n  # read per clip: no hashing again
    assert key(a) == k_a and len(calls) == n  # a second metric object: the (path, size, mtime) cache
    assert key(a, dtype="fp32") == k_a  # the default spelled out is the same configuration
    assert key(a, aggregate="videos") == k_a  # the aggregation does not change a per-video payload
    assert key(a_copy) == k_a  # the same files elsewhere: same key (hamer_dir counts by content)
    assert k_a.startswith("mpjpe@2-hamer-pck10-e")
    assert key(b) != k_a
    assert key(a, dtype="bf16") != k_a
    assert key(a, pck_px=5) != k_a
    assert HandMPJPE(backend="hamer", hamer_dir=a).config()["estimator"]["checkpoint_sha256"] == real(
        tmp_path / "A" / _HAMER_FILES[0])
    # the weights swapped in place (same path): a new key
    (tmp_path / "A" / _HAMER_FILES[0]).write_bytes(b"weights C, longer")
    assert key(a) not in (k_a, key(b))
    # absent weights: the one-line MissingResource naming what is missing, no traceback of a hash
    monkeypatch.delenv("PAM_BENCH_HAMER_DIR", raising=False)
    for kw in ({}, {"hamer_dir": str(tmp_path / "nowhere")}):
        with pytest.raises(MissingResource) as e:
            HandMPJPE(backend="hamer", **kw).key
        assert "hamer.ckpt" in str(e.value) and "\n" not in str(e.value)


def _fake_hamer(monkeypatch, seen: list):
    """HaMeRHands with its real identity (file hashes) but a stand-in model: one right hand per frame whose
    joints depend on the checkpoint's sha256, so two weight files give two different numbers."""
    from pam_bench.metrics.hands import HandDetection, HaMeRHands

    def estimate(self, video, hand_sides=(), intrinsics=None):
        sha = self.identity()["checkpoint_sha256"]
        seen.append(sha)
        rng = np.random.default_rng(int(sha[:8], 16))
        j3 = rng.normal(scale=0.05, size=(21, 3))
        h, w = video.size
        j2 = rng.uniform(0, min(h, w), size=(21, 2))
        return [[HandDetection(j2, j3, "right", 0.9)] for _ in range(video.num_frames)]

    monkeypatch.setattr(HaMeRHands, "check_ready", lambda self: None)  # no hamer package here
    monkeypatch.setattr(HaMeRHands, "estimate", estimate)


def _mpjpe_run(out, hamer_dir, limit=2):
    from pam_bench.metrics.hand import HandMPJPE
    from pam_bench.run.loop import evaluate

    m = HandMPJPE(backend="hamer", hamer_dir=hamer_dir)
    res = evaluate("oracle", "synthetic", metrics=[m], out=out, limit=limit, progress=False)
    return res["metrics"]["mpjpe"]["value"], m.key


def test_resumed_run_and_downstream_study_never_take_another_hamer_configurations_payloads(tmp_path, monkeypatch):
    from pam_bench.downstream.study import Study, StudyConfig

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    seen: list = []
    _fake_hamer(monkeypatch, seen)
    a = _hamer_data(tmp_path / "A")
    b = _hamer_data(tmp_path / "B", b"weights B")
    run = tmp_path / "run"
    v_a, k_a = _mpjpe_run(run, a)
    assert len(seen) == 2 and v_a is not None
    assert _mpjpe_run(run, a) == (v_a, k_a) and len(seen) == 2  # same configuration: payloads reused
    v_b, k_b = _mpjpe_run(run, b)  # other weights, same run folder: recomputed, not A's payloads
    assert k_b != k_a and len(seen) == 4 and seen[2:] != seen[:2]
    assert v_b == _mpjpe_run(tmp_path / "fresh-b", b)[0] and v_b != v_a  # the number B gives from scratch
    assert sorted(p.name for p in (run / "payloads").iterdir()) == sorted([k_a, k_b])

    # the downstream study copies the generated run's mpjpe payloads of the same configuration only
    logs: list = []
    only_a = tmp_path / "only-a"
    _mpjpe_run(only_a, a)
    n = len(seen)
    for d, reused in ((b, 0), (a, 2)):
        study = Study(StudyConfig(out=str(tmp_path / f"study-{reused}"), generated_run=str(only_a)), log=logs.append)
        study._reuse_run_payloads({"backend": "hamer", "hamer_dir": d})
        copied = list((study.out / "generated" / "payloads").rglob("*.json"))
        assert len(copied) == reused and len(seen) == n
    assert logs == [f"reused 2 mpjpe payloads ({k_a}) from {only_a / 'payloads' / k_a}"]
