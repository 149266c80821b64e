"""Where MF's query points come from, end to end through the CLI: an official evaluation folder without
segmentation says "whole-frame" in results.json, on the console and in the tables; a folder of seg videos
or the dataset's own segmentation replaces it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pam_bench.cli import main
from pam_bench.types import Video
from pam_bench.video import read_video, resize_frames, write_video

from .conftest import SAMPLES, require_data

T, SIZE = 12, (120, 180)  # a short, small clip keeps LK fast


def _run_cli(argv, capsys) -> str:
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    return out.out


@pytest.fixture(scope="module")
def evaldir(tmp_path_factory, dexycb_clip):
    """gt/gt_0000.mp4 + generated/generated_0000.mp4 (a time-reversed copy) from the real DexYCB clip, and a
    seg/ folder with PAM's seg condition video of the same clip."""
    seg_src = SAMPLES / "dexycb" / "val_seg_mask.mp4"
    require_data(seg_src)
    root = tmp_path_factory.mktemp("evaldir")
    gt = resize_frames(dexycb_clip[:T], SIZE)
    write_video(root / "gt" / "gt_0000.mp4", Video(gt, 15.0))
    write_video(root / "generated" / "generated_0000.mp4", Video(np.ascontiguousarray(gt[::-1]), 15.0))
    seg = resize_frames(read_video(seg_src).frames[:T], SIZE)
    write_video(root.parent / f"{root.name}-seg" / "seg_0000.mp4", Video(seg, 15.0))
    return root, root.parent / f"{root.name}-seg"


def test_folder_without_segmentation_says_whole_frame_everywhere(evaldir, tmp_path, capsys):
    root, _ = evaldir
    out = tmp_path / "run"
    console = _run_cli(["evaluate", "--method", "folder", "--videos", str(root), "--metrics", "mf",
                        "--out", str(out), "--no-progress"], capsys)
    res = json.loads((out / "results.json").read_text())
    src = res["metrics"]["mf"]["extras"]["point_source"]
    assert src["counts"] == {"whole-frame": 1} and src["whole_frame"] == 1 and src["whole_frame_any"]
    assert "whole-frame points in 1 of 1 videos" in console
    assert "[whole-frame]" in console  # the result table's MF cell
    table = _run_cli(["table", str(out)], capsys)
    assert "[whole-frame]" in table
    for fmt in ("md", "tex", "csv"):
        board = _run_cli(["leaderboard", str(out), "--layout", "table1", "--format", fmt], capsys)
        assert "[whole-frame]" in board, fmt


def test_folder_with_seg_videos_uses_them(evaldir, tmp_path, capsys):
    root, seg = evaldir
    out = tmp_path / "run"
    console = _run_cli(["evaluate", "--method", "folder", "--videos", str(root), "--metrics", "mf",
                        "-d", f"seg_videos={seg}", "--out", str(out), "--no-progress"], capsys)
    res = json.loads((out / "results.json").read_text())
    src = res["metrics"]["mf"]["extras"]["point_source"]
    assert src["counts"] == {"seg-videos": 1} and not src["whole_frame_any"]
    assert "whole-frame" not in console
    protocol = res["dataset"]["protocol"]
    assert "seg_videos" not in protocol and "seg_sha256" in protocol  # content, not location

    # The same seg videos elsewhere: the same dataset, so the run resumes (nothing to recompute).
    moved = tmp_path / "moved_seg"
    shutil.copytree(seg, moved)
    _run_cli(["evaluate", "--method", "folder", "--videos", str(root), "--metrics", "mf",
              "-d", f"seg_videos={moved}", "--out", str(out), "--no-progress"], capsys)
    again = json.loads((out / "results.json").read_text())
    assert again["dataset"]["manifest_hash"] == res["dataset"]["manifest_hash"]
    assert again["metrics"]["mf"]["value"] == res["metrics"]["mf"]["value"]

    # New content in the same files: another manifest, still a resume of this run folder (the clip's
    # payload guards its seg file), and the value is recomputed from the new foreground.
    first = sorted(moved.glob("*.mp4"))[0]
    v = read_video(first)
    write_video(first, Video(np.ascontiguousarray(255 - v.frames), v.fps))
    _run_cli(["evaluate", "--method", "folder", "--videos", str(root), "--metrics", "mf",
              "-d", f"seg_videos={moved}", "--out", str(out), "--no-progress"], capsys)
    changed = json.loads((out / "results.json").read_text())
    assert changed["dataset"]["manifest_hash"] != res["dataset"]["manifest_hash"]


def test_missing_seg_video_is_one_error_naming_the_file(evaldir, tmp_path, capsys):
    root, _ = evaldir
    empty = tmp_path / "noseg"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--method", "folder", "--videos", str(root), "--metrics", "mf",
              "-d", f"seg_videos={empty}", "--out", str(tmp_path / "r"), "--no-progress"])
    assert e.value.code != 0
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("pam-bench: error")]
    assert len(err) == 1 and "seg_0000.mp4" in err[0]


def test_folder_scored_against_a_dataset_takes_its_segmentation(tmp_path, capsys):
    """--method folder with --dataset: the foreground comes from the dataset (here the synthetic set's seg)."""
    from pam_bench.datasets.synthetic import SyntheticHOI

    opts = {"n_clips": 1, "frames": 6, "height": 64, "width": 96}
    ds = SyntheticHOI(**opts)
    vid = ds.split().ids[0]
    write_video(tmp_path / "videos" / f"{vid}.mp4", ds.load(vid).video)
    out = tmp_path / "run"
    console = _run_cli(["evaluate", "--method", "folder", "--videos", str(tmp_path / "videos"), "--dataset",
                        "synthetic", *sum((["-d", f"{k}={v}"] for k, v in opts.items()), []), "--metrics", "mf",
                        "--out", str(out), "--no-progress"], capsys)
    src = json.loads((out / "results.json").read_text())["metrics"]["mf"]["extras"]["point_source"]
    assert src["counts"] == {"seg": 1} and "whole-frame" not in console
