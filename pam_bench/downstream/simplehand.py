"""The official SimpleHand trainer (patienceFromZhou/simpleHand) as an external command.

Default launch (no ``train_command``): pam-bench's :mod:`.simplehand_entry` runs the user's unmodified clone:
``python -m torch.distributed.run --standalone --nproc_per_node len(gpus) simplehand_entry.py train ...``
then ``python simplehand_entry.py predict ...``, both with ``CUDA_VISIBLE_DEVICES`` = exactly ``gpus``
(upstream sets ``world_size = torch.cuda.device_count()``, so a host with more GPUs would otherwise hang) and
the run folder ``OUT/runs/<mixture>/seed<k>/`` as working directory, so upstream's fixed
``./train_log/models_<NAME>`` is one folder per mixture and seed (and upstream's ``--resume`` is never
passed, so no run can pick up another run's ``latest``). ``honour_seed`` (default on) makes ``--seeds``
effective: upstream re-seeds with the GPU rank in ``before_train``; the launcher seeds ``seed * 65536 + rank``.
With ``honour_seed=false``, or with a custom command, the run records that its seed was not effective, and
the table reports no spread over seeds.

Custom launch: ``train_command`` / ``predict_command`` are argument lists (never a shell), run in
``simplehand_dir`` with placeholders ``{train_json}``, ``{eval_json}``, ``{workdir}``, ``{seed}``,
``{device}``, ``{predictions}``, ``{gpus}``, ``{nproc}`` (also in the environment as ``PAM_BENCH_<NAME>``).
The predict command writes ``{predictions}``: a JSON list of ``{"image_path", "pred_xyz" (21x3 m)
[, "pred_vertices" (778x3 m)]}``. Logs: ``{workdir}/train.log`` and ``{workdir}/predict.log``; every command
has a timeout (``timeout_s``, default 48 h). Metrics are computed here (:mod:`.evaluate`).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import MissingResource, PamBenchError
from .export import export_freihand, read_predictions
from .frames import FrameSet
from .trainer import Trainer

PLACEHOLDERS = ("train_json", "eval_json", "workdir", "seed", "device", "predictions", "gpus", "nproc")
ENTRY = Path(__file__).with_name("simplehand_entry.py")
INPUT_SIZE = 224  # upstream cfg.py DATA.IMAGE_SHAPE [224, 224, 3]
DEFAULT_TIMEOUT_S = 48 * 3600.0
SEED_NOTES = {
    "patched": "official train.py re-seeds with the GPU rank; pam-bench's launcher seeds seed*65536+rank",
    "official": "the official train.py re-seeds every run with the GPU rank (Trainer.before_train), so --seeds "
                "change neither the initialisation nor the data order (honour_seed=false)",
    "custom": "a custom train_command: pam-bench cannot make its seed effective (the official train.py ignores "
              "--seed)",
}
_FIELD = re.compile(r"\{(\w+)\}")
HOW = ("clone patienceFromZhou/simpleHand, install its requirements, and pass -t simplehand_dir=DIR "
       "(see docs/downstream.md)")


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


def parse_gpus(gpus, device: str) -> list[str]:
    """'0,1' / [0, 1] -> ['0', '1']; default: the index in ``device`` ('cuda:1' -> ['1'], 'cuda' -> ['0'])."""
    if gpus is None or gpus == "":
        dev = str(device)
        return [dev.split(":", 1)[1]] if dev.startswith("cuda:") else ["0"]
    items = [str(g).strip() for g in (gpus.split(",") if isinstance(gpus, str) else gpus)]
    if not items or not all(i.isdigit() for i in items) or len(set(items)) != len(items):
        raise PamBenchError(f"simplehand trainer: gpus must be distinct GPU indices like 0,1; got {gpus!r}")
    return items


class SimpleHandTrainer(Trainer):
    """Options: simplehand_dir, gpus, honour_seed, timeout_s, require_vertices, train_command, predict_command."""

    name = "simplehand"
    input_size = INPUT_SIZE
    OPTIONS = ("simplehand_dir", "gpus", "honour_seed", "timeout_s", "require_vertices", "train_command",
               "predict_command")

    def __init__(self, device: str = "cuda", simplehand_dir=None, train_command=None, predict_command=None,
                 require_vertices: bool = True, timeout_s: float | None = DEFAULT_TIMEOUT_S, gpus=None,
                 honour_seed: bool = True, **options):
        if options:
            raise PamBenchError(f"simplehand trainer: unknown option(s) {sorted(options)}; known: "
                                + ", ".join(self.OPTIONS))
        self.device = device
        self.dir = Path(simplehand_dir).expanduser() if simplehand_dir else None
        self.train_argv = _argv(train_command)
        self.predict_argv = _argv(predict_command)
        if bool(self.train_argv) != bool(self.predict_argv):
            raise PamBenchError("simplehand trainer: give both train_command and predict_command, or neither "
                                "(pam-bench's launcher of the official code)")
        self.require_vertices = _flag(require_vertices)
        self.timeout_s = float(timeout_s) if timeout_s not in (None, "", 0, "0", "none") else None
        self.gpus = parse_gpus(gpus, device)
        self.honour_seed = _flag(honour_seed)

    @property
    def custom(self) -> bool:
        return bool(self.train_argv)

    @property
    def seed_mode(self) -> str:
        return "custom" if self.custom else ("patched" if self.honour_seed else "official")

    def check_ready(self) -> None:
        if self.dir is None or not self.dir.is_dir():
            raise MissingResource(f"SimpleHand folder {self.dir}" if self.dir else "SimpleHand folder", HOW)
        if not self.custom:
            for name in ("train.py", "cfg.py", "dataset.py", "eval_datataset.py", "hand_net.py", "utils.py"):
                if not (self.dir / name).is_file():
                    raise MissingResource(f"SimpleHand file {self.dir / name}", HOW)
            return
        for what, argv in (("train_command", self.train_argv), ("predict_command", self.predict_argv)):
            exe = argv[0]
            if shutil.which(exe) is None and not (self.dir / exe).is_file():
                raise MissingResource(f"executable '{exe}' of the SimpleHand {what}",
                                      "install it or give its full path in the command")

    def identity(self) -> dict[str, Any]:
        from .. import weights as W

        files = {}
        if self.dir is not None:
            for name in ("cfg.py", "train.py", "hand_net.py", "dataset.py", "eval_datataset.py"):
                p = self.dir / name
                if p.is_file():
                    files[name] = W.sha256_file(p)
        launch = ({"train_command": self.train_argv, "predict_command": self.predict_argv} if self.custom else
                  {"launcher": "pam_bench.downstream.simplehand_entry", "entry_sha256": W.sha256_file(ENTRY)})
        return {"trainer": self.name, "simplehand_dir": str(self.dir), "source_sha256": files, **launch,
                "gpus": self.gpus, "nproc": len(self.gpus), "seed_mode": self.seed_mode,
                "seed_note": SEED_NOTES[self.seed_mode], "timeout_s": self.timeout_s, "device": self.device,
                "input_size": INPUT_SIZE}

    def _commands(self) -> tuple[list[str], list[str]]:
        if self.custom:
            return self.train_argv, self.predict_argv
        common = ["--simplehand-dir", str(self.dir), "--workdir", "{workdir}", "--eval-json", "{eval_json}"]
        train = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "{nproc}",
                 str(ENTRY), "train", *common, "--train-json", "{train_json}", "--seed", "{seed}"]
        if self.honour_seed:
            train.append("--honour-seed")
        return train, [sys.executable, str(ENTRY), "predict", *common, "--predictions", "{predictions}"]

    def _call(self, argv: list[str], values: dict[str, str], log: Path, cwd: Path) -> None:
        env = dict(os.environ)
        env.update({f"PAM_BENCH_{k.upper()}": v for k, v in values.items()})
        env["CUDA_VISIBLE_DEVICES"] = values["gpus"]
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as f:
            try:
                rc = subprocess.run(substitute(argv, values), cwd=cwd, env=env, stdout=f,
                                    stderr=subprocess.STDOUT, timeout=self.timeout_s, check=False).returncode
            except subprocess.TimeoutExpired:
                raise PamBenchError(f"{log}: the SimpleHand command ran past {self.timeout_s:g} s "
                                    "(-t timeout_s=SECONDS)") from None
            except OSError as e:
                raise PamBenchError(f"could not start the SimpleHand command {argv[0]!r}: {e}") from None
        if rc != 0:
            tail = log.read_bytes()[-400:].decode(errors="replace").strip().splitlines()
            raise PamBenchError(f"{log}: the SimpleHand command exited with status {rc}"
                                + (f" (last line: {tail[-1]})" if tail else ""))

    def run(self, train: FrameSet, evalset: FrameSet, seed: int, workdir: Path) -> dict[str, Any]:
        import json

        self.check_ready()
        workdir = Path(workdir).resolve()
        shared = workdir.parent.parent / "simplehand-eval"  # one evaluation export for every mixture
        train_json = export_freihand(train, workdir / "data" / "train", workdir / "data" / "train.json",
                                     require_vertices=self.require_vertices)
        eval_json = export_freihand(evalset, shared / "images", shared / "eval.json",
                                    require_vertices=self.require_vertices)
        values = {"train_json": str(train_json), "eval_json": str(eval_json), "workdir": str(workdir),
                  "seed": str(int(seed)), "device": self.device, "predictions": str(workdir / "predictions.json"),
                  "gpus": ",".join(self.gpus), "nproc": str(len(self.gpus))}
        stale = workdir / "predictions.json"
        if stale.exists():
            stale.unlink()  # never read a previous attempt's predictions
        cwd = self.dir if self.custom else workdir
        train_argv, predict_argv = self._commands()
        self._call(train_argv, values, workdir / "train.log", cwd)
        self._call(predict_argv, values, workdir / "predict.log", cwd)
        pred = read_predictions(workdir / "predictions.json", json.loads(Path(eval_json).read_text()))
        return {**pred, "seed_effective": self.seed_mode == "patched", "seed_note": SEED_NOTES[self.seed_mode]}


def _flag(v) -> bool:
    return str(v).strip().lower() not in ("0", "false", "no", "off", "")
