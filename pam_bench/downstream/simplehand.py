"""The official SimpleHand trainer as an external command (for users who have it set up).

SimpleHand's ``train.py`` hard-codes CUDA and NCCL (torchrun, ``LOCAL_RANK``) and reads its data paths
from ``cfg.py`` (``DATA.JSON_DIR``, ``VAL.BMK.json_dir``); its ``infer_to_json.py`` prints metrics and
keeps the predictions in ``dataset.all_info`` (the JSON dump is commented out). So the user supplies two
commands, run as argument lists (never through a shell) in ``simplehand_dir``:

- ``train_command``: trains on the exported mixture, e.g.
  ``torchrun --nproc_per_node 1 train.py --seed {seed}`` with cfg.py reading ``PAM_BENCH_TRAIN_JSON``;
- ``predict_command``: writes predictions for the exported evaluation images to ``{predictions}``: a JSON
  list of ``{"image_path", "pred_xyz" (21x3 m)[, "pred_vertices" (778x3 m)]}`` (the entries of
  infer_to_json.py's ``dataset.all_info``).

Placeholders substituted in every argument: ``{train_json}``, ``{eval_json}``, ``{workdir}``, ``{seed}``,
``{device}``, ``{predictions}``; the same values are in the environment as ``PAM_BENCH_TRAIN_JSON``,
``PAM_BENCH_EVAL_JSON``, ``PAM_BENCH_WORKDIR``, ``PAM_BENCH_SEED``, ``PAM_BENCH_DEVICE``,
``PAM_BENCH_PREDICTIONS``. Output goes to ``{workdir}/train.log`` and ``{workdir}/predict.log``.
Metrics are computed here (:mod:`.evaluate`) from the predictions, not parsed from SimpleHand's prints.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MissingResource, PamBenchError
from .export import export_freihand, read_predictions
from .frames import FrameSet
from .trainer import Trainer

PLACEHOLDERS = ("train_json", "eval_json", "workdir", "seed", "device", "predictions")
_FIELD = re.compile(r"\{(\w+)\}")
HOW = ("clone patienceFromZhou/simpleHand, install its requirements, and pass -t simplehand_dir=DIR "
       "-t train_command='...' -t predict_command='...' (see docs/downstream.md)")


def _argv(cmd: str | Sequence[str] | None) -> list[str]:
    if cmd is None:
        return []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]


def substitute(argv: Sequence[str], values: dict[str, str]) -> list[str]:
    """Replace ``{name}`` placeholders in every argument; an unknown placeholder is an error."""
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise PamBenchError(f"simplehand command: unknown placeholder {{{m.group(1)}}}; "
                                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        return values[m.group(1)]

    return [_FIELD.sub(one, a) for a in argv]


class SimpleHandTrainer(Trainer):
    """Options: simplehand_dir, train_command, predict_command, require_vertices (True), timeout_s."""

    name = "simplehand"

    def __init__(self, device: str = "cuda", simplehand_dir=None, train_command=None, predict_command=None,
                 require_vertices: bool = True, timeout_s: float | None = None, **options):
        if options:
            raise PamBenchError(f"simplehand trainer: unknown option(s) {sorted(options)}; known: simplehand_dir, "
                                "train_command, predict_command, require_vertices, timeout_s")
        self.device = device
        self.dir = Path(simplehand_dir) if simplehand_dir else None
        self.train_argv = _argv(train_command)
        self.predict_argv = _argv(predict_command)
        self.require_vertices = bool(require_vertices)
        self.timeout_s = float(timeout_s) if timeout_s else None

    def check_ready(self) -> None:
        if self.dir is None or not self.dir.is_dir():
            raise MissingResource(f"SimpleHand folder {self.dir}" if self.dir else "SimpleHand folder", HOW)
        for what, argv in (("train_command", self.train_argv), ("predict_command", self.predict_argv)):
            if not argv:
                raise MissingResource(f"SimpleHand {what}", HOW)
            exe = argv[0]
            if shutil.which(exe) is None and not (self.dir / exe).is_file():
                raise MissingResource(f"executable '{exe}' of the SimpleHand {what}",
                                      "install it or give its full path in the command")

    def identity(self) -> dict[str, Any]:
        from .. import weights as W

        files = {}
        if self.dir is not None:
            for name in ("cfg.py", "train.py", "hand_net.py", "dataset.py"):
                p = self.dir / name
                if p.is_file():
                    files[name] = W.sha256_file(p)
        return {"trainer": self.name, "simplehand_dir": str(self.dir), "source_sha256": files,
                "train_command": self.train_argv, "predict_command": self.predict_argv, "device": self.device}

    def _call(self, argv: list[str], values: dict[str, str], log: Path) -> None:
        env = dict(os.environ)
        env.update({f"PAM_BENCH_{k.upper()}": v for k, v in values.items()})
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as f:
            try:
                rc = subprocess.run(substitute(argv, values), cwd=self.dir, env=env, stdout=f,
                                    stderr=subprocess.STDOUT, timeout=self.timeout_s, check=False).returncode
            except subprocess.TimeoutExpired:
                raise PamBenchError(f"{log}: the SimpleHand command ran past {self.timeout_s:g} s") from None
            except OSError as e:
                raise PamBenchError(f"could not start the SimpleHand command {argv[0]!r}: {e}") from None
        if rc != 0:
            tail = log.read_bytes()[-400:].decode(errors="replace").strip().splitlines()
            raise PamBenchError(f"{log}: the SimpleHand command exited with status {rc}"
                                + (f" (last line: {tail[-1]})" if tail else ""))

    def run(self, train: FrameSet, evalset: FrameSet, seed: int, workdir: Path) -> dict[str, np.ndarray | None]:
        import json

        self.check_ready()
        workdir = Path(workdir).resolve()
        shared = workdir.parent / "simplehand-eval"
        train_json = export_freihand(train, workdir / "data" / "train", workdir / "data" / "train.json",
                                     require_vertices=self.require_vertices)
        eval_json = export_freihand(evalset, shared / "images", shared / "eval.json",
                                    require_vertices=self.require_vertices)
        values = {"train_json": str(train_json), "eval_json": str(eval_json), "workdir": str(workdir),
                  "seed": str(int(seed)), "device": self.device, "predictions": str(workdir / "predictions.json")}
        self._call(self.train_argv, values, workdir / "train.log")
        self._call(self.predict_argv, values, workdir / "predict.log")
        return read_predictions(workdir / "predictions.json", json.loads(Path(eval_json).read_text()))
