"""`pam-bench data verify` checks everything, then prints counts by kind of problem with the first few paths."""
from __future__ import annotations

import numpy as np

from pam_bench.cli import main
from pam_bench.commands.data import SHOW_PER_KIND, format_problems, problem_kind
from pam_bench.types import Video
from pam_bench.video import write_video


def test_problems_are_counted_by_kind_with_the_first_few_paths():
    problems = [(f"/d/cam/{i:06d}.jpg", "missing (colour frame)") for i in range(147)]
    problems += [("/d/meta.yml", "missing (sequence meta)"), ("/d/x.mp4", "has 30 frames; the protocol needs 49"),
                 ("/d/y.mp4", "has 12 frames; the protocol needs 49")]
    lines = format_problems(problems)
    assert lines[0] == "INCOMPLETE: 150 problem(s) of 4 kind(s)"
    assert "  N.jpg: missing (colour frame): 147" in lines and "  meta.yml: missing (sequence meta): 1" in lines
    assert "  x.mp4: has N frames; the protocol needs N: 1" in lines
    assert sum(1 for x in lines if x.startswith("    /d/cam/")) == SHOW_PER_KIND
    assert "    ... and 144 more (--list shows all)" in lines
    assert len(lines) < 15  # not one line per file
    every = format_problems(problems, show_all=True)
    assert sum(1 for x in every if x.startswith("    /d/cam/")) == 147
    assert problem_kind("/d/c/000012.jpg", "unreadable colour frame (broken data at 0x12)") == \
        "N.jpg: unreadable colour frame"


def test_cli_checks_every_clip_and_reports_kinds(tmp_path, capsys):
    d = tmp_path / "eval"
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    for i in range(6):
        write_video(d / "gt" / f"gt_{i:04d}.mp4", Video(frames, 15))
    for i in range(1, 6):  # five broken GT files: every one is found, not just the first
        p = d / "gt" / f"gt_{i:04d}.mp4"
        p.write_bytes(p.read_bytes()[:40])
    try:
        main(["data", "verify", "--dataset", "pam-eval-dir", "--root", str(d)])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr().out
    assert code == 1
    assert "INCOMPLETE: 5 problem(s) of 1 kind(s)" in out and "gt_N.mp4: " in out
    assert "complete: 1" in out and "... and 2 more (--list shows all)" in out
