"""Per-clip metadata and `pam-bench breakdown`: groups whose clip counts add up, intervals, set metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pam_bench.datasets.dexycb import DexYCB
from pam_bench.errors import PamBenchError

from .fixtures_dexycb import make_dexycb_clip, make_dexycb_skeleton


def _cli(args):
    from pam_bench.cli import main

    try:
        main(args)
    except SystemExit as e:
        assert not e.code, e.code


def test_dexycb_breakdown_by_object_on_a_fixture_tree(tmp_path, capsys):
    """Ten s0-pam-val clips: 8 cameras of a sequence grasping YCB id 5 (mustard bottle) and 2 of one
    grasping id 10 (banana). Per-object rows add up to 10; FVMD only where a group has >= 5 clips."""
    root = tmp_path / "dexycb"
    make_dexycb_skeleton(root)
    ids = DexYCB(root=root, split="s0-pam-val").split().ids[:10]
    for sid in ids:
        make_dexycb_clip(root, *sid.split("/"), n_frames=49, jpeg_quality=60)
    subj, seq_b, _ = ids[-1].split("/")
    meta = root / subj / seq_b / "meta.yml"
    meta.write_text(meta.read_text().replace("ycb_grasp_ind: 0", "ycb_grasp_ind: 1"))  # ycb_ids [5, 10]
    ds = DexYCB(root=root, split="s0-pam-val")
    m0, m9 = ds.clip_meta(ids[0]), ds.clip_meta(ids[-1])
    assert (m0["object"], m0["object_id"], m0["camera"], m0["subject"]) == ("006_mustard_bottle", 5,
                                                                            ids[0].split("/")[2], subj)
    assert (m9["object"], m9["grasp_ind"]) == ("011_banana", 1)

    out = tmp_path / "run"
    _cli(["evaluate", "--method", "static", "--dataset", "dexycb", "--root", str(root), "--limit", "10",
          "--metrics", "psnr,fvmd", "-m", "fvmd.stride=15", "--out", str(out), "--no-progress",
          "--gt-cache", str(tmp_path / "gt")])
    capsys.readouterr()
    _cli(["breakdown", str(out), "--by", "object", "--min-set-clips", "5", "--gt-cache", str(tmp_path / "gt")])
    printed = capsys.readouterr().out
    rep = json.loads((out / "breakdown_object.json").read_text())
    groups = {g["group"]: g for g in rep["groups"]}
    assert set(groups) == {"006_mustard_bottle", "011_banana"}
    assert groups["006_mustard_bottle"]["n"] == 8 and groups["011_banana"]["n"] == 2
    assert sum(g["n"] for g in rep["groups"]) == rep["n_total"] == 10
    pv = {r["video_id"]: r for r in map(json.loads, (out / "per_video.jsonl").read_text().splitlines())}
    banana = groups["011_banana"]["metrics"]
    assert banana["psnr"]["value"] == pytest.approx(np.mean([pv[i]["psnr"] for i in ids[8:]]))
    assert banana["psnr"]["ci95"] is not None
    assert banana["fvmd"]["value"] is None and "2 clips < 5" in banana["fvmd"]["unavailable"]
    fv = groups["006_mustard_bottle"]["metrics"]["fvmd"]
    assert fv["value"] is not None and fv["value"] > 0 and fv["n"] == 8 and fv["backend"] == "lk"
    assert "006_mustard_bottle" in printed and "011_banana" in printed and "2 clips < 5" in printed
    assert (out / "breakdown_object.md").is_file()

    # one group holding every clip reproduces the run's own set-metric value (same payloads, same rule)
    _cli(["breakdown", str(out), "--by", "hand", "--min-set-clips", "5", "--gt-cache", str(tmp_path / "gt")])
    whole = json.loads((out / "breakdown_hand.json").read_text())["groups"]
    res = json.loads((out / "results.json").read_text())
    assert len(whole) == 1 and whole[0]["n"] == 10
    assert whole[0]["metrics"]["fvmd"]["value"] == pytest.approx(res["metrics"]["fvmd"]["value"], rel=1e-9)


def test_synthetic_metadata_and_unknown_key(tmp_path):
    from pam_bench.report.breakdown import breakdown
    from pam_bench.datasets.synthetic import SyntheticHOI
    from pam_bench.run.loop import evaluate

    opts = {"n_clips": 4, "frames": 4, "height": 48, "width": 64}
    ds = SyntheticHOI(**opts)
    meta = ds.clip_meta("synthetic_0000")
    assert meta["object"] == ds.spec(0).object_kind and meta["size"] in ("small", "large")
    evaluate("static", "synthetic", metrics=["psnr"], out=tmp_path / "r", dataset_options=opts, progress=False)
    rep = breakdown(tmp_path / "r", "object")
    assert sum(g["n"] for g in rep["groups"]) == 4
    assert {g["group"] for g in rep["groups"]} == {ds.spec(i).object_kind for i in range(4)}
    with pytest.raises(PamBenchError, match="no such clip metadata; it has: .*object"):
        breakdown(tmp_path / "r", "camera")


def test_oakink2_clip_meta(tmp_path):
    """OAKINK2: sequence, scene, camera, chunk, and the sequence's object list from anno_preview."""
    import pickle

    from pam_bench.datasets.oakink2 import OakInk2

    from .fixtures_dexycb import OAK_CAM, OAK_SEQ, make_oakink2_tree, oak_anno

    tree = make_oakink2_tree(tmp_path, n_frames=49)
    ds = OakInk2(root=tmp_path)
    sid = ds.split().ids[0]
    meta = ds.clip_meta(sid)
    assert (meta["sequence"], meta["scene"], meta["camera"], meta["chunk"]) == (OAK_SEQ, "scene_01", OAK_CAM, 0)
    assert meta["object"] is None  # the fixture's obj_list is empty
    anno = oak_anno(tree["ids"])
    anno["obj_list"] = ["O02@0012@00001", "O02@0021@00002"]
    with open(tmp_path / "anno_preview" / f"{OAK_SEQ}.pkl", "wb") as fh:
        pickle.dump(anno, fh)
    assert OakInk2(root=tmp_path).clip_meta(sid)["object"] == "O02@0012@00001+O02@0021@00002"
