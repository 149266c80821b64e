"""Launch the official SimpleHand code (patienceFromZhou/simpleHand) for one study run; run as a script.

``python -m torch.distributed.run --standalone --nproc_per_node N simplehand_entry.py train ...`` and
``python simplehand_entry.py predict ...``, started by :class:`pam_bench.downstream.simplehand.SimpleHandTrainer`
with ``CUDA_VISIBLE_DEVICES`` set to exactly the requested GPUs (so upstream's
``world_size = torch.cuda.device_count()`` equals N) and the run folder as working directory.

What it changes at run time, without editing the user's clone (facts from upstream, named in the identity):

- ``cfg._CONFIG['DATA']['JSON_DIR']`` and ``['VAL']['BMK']['json_dir']`` -> the exported lists (``dataset.py``
  reads its list when imported, so this happens before ``train`` is imported);
- the imports run with the SimpleHand folder as working directory (``models/mano_torch.py`` reads
  ``models/MANO_*_C.pkl`` relative to it when imported); training then runs in the run folder, so
  upstream's ``./train_log/models_<NAME>`` (utils.get_log_model_dir) and ``./train_log/out.log`` are per run;
- ``--honour-seed``: upstream's ``Trainer.before_train`` calls ``set_random_seed(rank)`` whatever ``--seed``
  says; the launcher wraps it to ``set_random_seed(seed * 65536 + rank)``, so init, sampler order and
  augmentation depend on the seed (ranks still differ). Without the flag upstream's behaviour is kept.

``predict`` loads ``train_log/models_<NAME>/latest`` with ``torch.load(weights_only=True)`` into
``HandNet(_CONFIG, pretrained=False)``, runs upstream's ``HandMeshEvalDataset`` (VAL image shape, BMK
scale_enlarge) and writes, per listed image, ``pred_xyz`` / ``pred_vertices``: the network's joints and
vertices minus its root joint (``DATA.ROOT_INDEX``), mapped back by the inverse of the dataset's
``trans_matrix_3d`` (what upstream's ``infer_to_json.infer_single_json`` does; that module is not imported
because it needs open3d). Imports only the standard library before the upstream code.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

SEED_STRIDE = 65536


def _import_upstream(simplehand_dir: str, train_json: str | None, eval_json: str | None):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, simplehand_dir)
    os.chdir(simplehand_dir)
    import cfg  # upstream cfg.py

    if train_json:
        cfg._CONFIG["DATA"]["JSON_DIR"] = train_json
    if eval_json:
        cfg._CONFIG["VAL"]["BMK"]["json_dir"] = eval_json
    return cfg._CONFIG


def train(args) -> None:
    _import_upstream(args.simplehand_dir, args.train_json, args.eval_json)
    import train as upstream  # noqa: E402 - upstream train.py (imports dataset.py, which reads JSON_DIR)

    if args.honour_seed:
        original = upstream.Trainer.set_random_seed
        upstream.Trainer.set_random_seed = lambda self, rank: original(self, args.seed * SEED_STRIDE + int(rank))
    os.makedirs(os.path.join(args.workdir, "train_log"), exist_ok=True)
    os.chdir(args.workdir)
    sys.argv = ["train.py", "--seed", str(args.seed)]
    upstream.main()


def predict(args) -> None:
    config = _import_upstream(args.simplehand_dir, None, args.eval_json)
    import torch
    from eval_datataset import HandMeshEvalDataset  # upstream
    from hand_net import HandNet  # upstream
    from utils import get_log_model_dir  # upstream

    ckpt = os.path.join(args.workdir, get_log_model_dir(config["NAME"]), "latest")
    if not os.path.isfile(ckpt):
        sys.exit(f"{ckpt}: no trained SimpleHand checkpoint in this run folder")
    model = HandNet(config, pretrained=False)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"], strict=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(dev)
    val, bmk = config["VAL"], config["VAL"]["BMK"]
    ds = HandMeshEvalDataset(args.eval_json, val["IMAGE_SHAPE"], bmk["scale_enlarge"])
    loader = torch.utils.data.DataLoader(ds, batch_size=val["BATCH_SIZE"], shuffle=False)
    root = config["DATA"].get("ROOT_INDEX", 9)
    xyz, verts = [], []
    with torch.no_grad():
        for batch in loader:
            res = model(batch["img"].to(dev).float())
            j = res["joints"].reshape(-1, 21, 3).float()
            v = res["vertices"].reshape(-1, 778, 3).float()
            r = j[:, root:root + 1]
            inv = torch.linalg.inv(batch["trans_matrix_3d"].to(dev).float())
            xyz += ((j - r) @ inv.transpose(1, 2)).cpu().numpy().tolist()
            verts += ((v - r) @ inv.transpose(1, 2)).cpu().numpy().tolist()
    with open(args.eval_json) as f:
        paths = json.load(f)
    out = [{"image_path": p, "pred_xyz": x, "pred_vertices": v} for p, x, v in zip(paths, xyz, verts)]
    tmp = args.predictions + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, args.predictions)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("train", "predict"))
    p.add_argument("--simplehand-dir", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--train-json")
    p.add_argument("--eval-json", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--honour-seed", action="store_true")
    p.add_argument("--predictions")
    args = p.parse_args(argv)
    args.simplehand_dir, args.workdir = os.path.abspath(args.simplehand_dir), os.path.abspath(args.workdir)
    (train if args.mode == "train" else predict)(args)


if __name__ == "__main__":
    main()
