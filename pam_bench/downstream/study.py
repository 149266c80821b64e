"""The downstream augmentation study end to end (PAM Table 4 / Fig. 7), resumable.

Stages, all under the output folder ``OUT``:

1. **Generated set** (``OUT/generated/``): either a run folder of ``pam-bench evaluate`` (``--generated
   RUN_DIR``: its ``videos/<id>.mp4`` paired with the GT of the dataset split it was made on, rebuilt
   from its run.json) or videos generated here with a registry method (``generated_method``, e.g.
   ``sim-render`` or ``oracle``) on the generated-source split. Each video is scored with the hand MPJPE
   metric (``filter_backend``, e.g. mediapipe or hamer) through the harness, so scores are cached.
2. **Filtering** (``OUT/filter.json``): the worst ``filter_fraction`` of the generated videos by pose
   accuracy are dropped (:func:`.mixtures.filter_worst`); or scores come from a user file
   (``filter_scores``: JSON {video_id: mpjpe_mm}); or no filtering (``filter_backend='none'``).
3. **Crops** (``OUT/frames/<role>-<hash>/<clip>.npz``): hand crops + GT per clip (:mod:`.frames`).
4. **Runs** (``OUT/runs/<mixture>/seed<k>/``): one training + evaluation per (mixture, seed); its
   ``result.json`` is written last and carries the run's key (hash of everything that defines it), so
   a rerun skips finished runs, and refuses (without ``force``) a folder holding a different run.
5. **Report**: ``table4.md`` / ``table4.csv`` (Table 4 layout), ``fig7.png``, ``results.json`` (every
   run), ``config.json`` (the full configuration and identities).
"""
from __future__ import annotations

import inspect
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..console import progress
from ..errors import IncompatibleResults, InputError, PamBenchError
from ..store import atomic_write_bytes, atomic_write_json, read_json, safe_id
from ..types import Dataset, Generator, stable_hash
from . import mixtures as MX
from .evaluate import PoseEvaluator
from .frames import FrameSet, concat, extract

SCHEMA = "pam-bench downstream v1"

#: Per dataset: default (real, eval, generated-source) split names and dataset options per role.
PRESETS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "splits": ("train", "val", "sim"),
        "options": {"real": {"n_clips": 16, "frames": 12, "height": 240, "width": 320},
                    "eval": {"n_clips": 6, "frames": 12, "height": 240, "width": 320},
                    "generated": {"n_clips": 16, "frames": 12, "height": 240, "width": 320}},
    },
    "dexycb": {"splits": ("s0-train", "s0-pam-val", "s0-train"), "options": {}},
}


@dataclass
class StudyConfig:
    out: str
    dataset: str = "synthetic"
    root: str | None = None
    real_split: str | None = None
    eval_split: str | None = None
    dataset_options: dict = field(default_factory=dict)
    real_limit: int | None = None
    eval_limit: int | None = None
    generated_run: str | None = None
    generated_method: str = "sim-render"
    generated_method_options: dict = field(default_factory=dict)
    generated_dataset: str | None = None
    generated_root: str | None = None
    generated_split: str | None = None
    generated_options: dict = field(default_factory=dict)
    generated_limit: int | None = None
    filter_backend: str = "mediapipe"
    filter_fraction: float = 0.25
    filter_options: dict = field(default_factory=dict)
    filter_scores: str | None = None
    trainer: str = "embedded"
    trainer_options: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    fractions: tuple[float, ...] = MX.REAL_FRACTIONS
    real_only_curve: bool = False
    subset_seed: int = 0
    crop_size: int | None = None  # None: the trainer's input size (SimpleHand: 224)
    crop_enlarge: float = 1.5
    frame_stride: int = 1
    device: str = "cpu"
    force: bool = False
    progress: bool = True  # bars with ETA on stderr: overall (runs) and per mixture (training steps)


def _log(msg: str) -> None:
    print(f"[downstream] {msg}", file=sys.stderr, flush=True)


class Study:
    def __init__(self, cfg: StudyConfig, log: Callable[[str], None] = _log):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.log = log
        preset = PRESETS.get(cfg.dataset, {"splits": (None, None, None), "options": {}})
        self.splits = dict(zip(("real", "eval", "generated"), preset["splits"]))
        self.preset_options = preset["options"]
        self.input_size = 224
        self.upsampled: dict[str, dict] = {}

    # ------------------------------------------------------------------ datasets
    def _dataset(self, role: str, name: str, root, split, options: dict) -> Dataset:
        from ..run.components import build_dataset

        opts = {**self.preset_options.get(role, {}), **self.cfg.dataset_options, **options} \
            if name == self.cfg.dataset else dict(options)
        split = split or self.splits.get(role)
        return build_dataset(name, root, split, **opts)

    @staticmethod
    def _ids(ds: Dataset, limit: int | None) -> list[str]:
        ids = list(ds.split().ids)
        return ids[:limit] if limit else ids

    def _generated_from_run(self) -> tuple[Generator, Dataset]:
        from baselines.folder import FolderMethod

        from ..run.components import build_dataset

        run = Path(self.cfg.generated_run)
        info = read_json(run / "run.json")
        if not (run / "videos").is_dir():
            raise InputError(run / "videos", "the generated run folder has no videos/ (run pam-bench evaluate first)")
        want = info.get("dataset", {})
        name = self.cfg.generated_dataset or want.get("name")
        if not name:
            raise InputError(run / "run.json", "names no dataset; pass --generated-dataset")
        split = self.cfg.generated_split or want.get("split")
        root = self.cfg.generated_root or self.cfg.root
        candidates = [dict(self.cfg.generated_options)] if self.cfg.generated_options else []
        if not candidates:
            from ..registry import REGISTRY

            params = inspect.signature(REGISTRY.load("dataset", name)).parameters
            proto = {k: v for k, v in (want.get("protocol") or {}).items() if k in params and k not in ("root", "split")}
            candidates = [proto, {}]
        ds = None
        for opts in candidates:
            try:
                cand = build_dataset(name, root, split, **opts)
            except PamBenchError:
                continue
            if not want.get("manifest_hash") or cand.split().manifest_hash == want["manifest_hash"]:
                ds = cand
                break
        if ds is None:
            raise InputError(run / "run.json", f"cannot rebuild its dataset ({name}/{split}, manifest "
                                               f"{str(want.get('manifest_hash'))[:12]}); pass --generated-dataset, "
                                               "--generated-root, --generated-split and -g options that match it")
        return FolderMethod(device=self.cfg.device, videos=str(run / "videos")), ds

    def _generated(self) -> tuple[Generator, Dataset]:
        from ..run.components import build_method

        c = self.cfg
        if c.generated_run:
            return self._generated_from_run()
        name = c.generated_dataset or c.dataset
        ds = self._dataset("generated", name, c.generated_root or c.root, c.generated_split, c.generated_options)
        return build_method(c.generated_method, c.device, **c.generated_method_options), ds

    @staticmethod
    def _check_disjoint(a: Dataset, b: Dataset, what: str) -> None:
        sa, sb = a.split(), b.split()
        if sa.dataset == sb.dataset and sa.name == sb.name:
            raise PamBenchError(f"the {what} come from the evaluation split {sa.dataset}/{sa.name}: "
                                "choose another split (the evaluation clips must stay unseen)")

    # ------------------------------------------------------------------ generated set + filter
    def _score_and_filter(self, gen: Generator, gds: Dataset) -> dict[str, Any]:
        from ..run.loop import evaluate

        c = self.cfg
        use_metric = c.filter_backend != "none" and not c.filter_scores
        metric_opts = {"mpjpe": {"backend": c.filter_backend, **c.filter_options}} if use_metric else None
        self.log(f"generated set: {gen.name} on {gds.split().dataset}/{gds.split().name}"
                 + (f", scoring with mpjpe/{c.filter_backend}" if use_metric else ""))
        if use_metric and c.generated_run:
            self._reuse_run_payloads(metric_opts["mpjpe"])
        res = evaluate(gen, gds, metrics=["mpjpe"] if use_metric else [], out=self.out / "generated",
                       device=c.device, seed=c.subset_seed, limit=c.generated_limit, metric_options=metric_opts,
                       force=c.force, progress=False)
        ids = self._ids(gds, c.generated_limit)
        if c.filter_scores:
            raw = read_json(Path(c.filter_scores))
            if not isinstance(raw, dict):
                raise InputError(c.filter_scores, "filter scores must be a JSON object {video_id: mpjpe_mm}")
            scores = {v: (None if raw.get(v) is None else float(raw[v])) for v in ids}
            source = {"file": str(Path(c.filter_scores).resolve()), "sha256": stable_hash(raw)}
        elif use_metric:
            rows = [json.loads(line) for line in (self.out / "generated" / "per_video.jsonl").read_text().splitlines()]
            scores = {r["video_id"]: r.get("mpjpe") for r in rows}
            source = {"metric": "mpjpe", "config": res["metrics"]["mpjpe"]}
        else:
            scores, source = {v: None for v in ids}, {"none": "no filtering"}
        fraction = c.filter_fraction if (use_metric or c.filter_scores) else 0.0
        kept, dropped = MX.filter_worst(scores, fraction)
        n_scored = sum(s is not None for s in scores.values())
        if (use_metric or c.filter_scores) and n_scored < len(scores) / 2:
            self.log(f"warning: only {n_scored}/{len(scores)} generated videos have a pose score; unscored "
                     "videos rank as the worst, ties broken by id")
        info = {"backend": c.filter_backend if use_metric else None, "drop_fraction": fraction, "source": source,
                "scores_mm": scores, "n_scored": n_scored, "kept": kept, "dropped": dropped,
                "generator": gen.identity(), "dataset": gds.identity()}
        atomic_write_json(self.out / "filter.json", info)
        self.log(f"filter: kept {len(kept)}, dropped {len(dropped)} of {len(scores)} generated videos")
        return info

    def _reuse_run_payloads(self, options: dict) -> None:
        """Copy the generated run's own mpjpe payloads of the same metric key (same videos, same GT)."""
        from ..registry import REGISTRY

        key = REGISTRY.load("metric", "mpjpe")(device=self.cfg.device, **options).key
        src = Path(self.cfg.generated_run) / "payloads" / key
        dst = self.out / "generated" / "payloads" / key
        if src.is_dir():
            n = 0
            for f in src.iterdir():
                if f.suffix in (".json", ".npz") and not (dst / f.name).exists():
                    atomic_write_bytes(dst / f.name, f.read_bytes())
                    n += 1
            if n:
                self.log(f"reused {n} mpjpe payloads ({key}) from {src}")

    def _generated_video(self, gen: Generator, sample):
        from ..store import RunStore

        if gen.writes_videos:
            return RunStore(self.out / "generated").read_video(sample.id)
        return gen.generate(sample, 0)

    # ------------------------------------------------------------------ crops
    def _crop_params(self) -> dict:
        c = self.cfg
        return {"size": int(c.crop_size or self.input_size), "enlarge": c.crop_enlarge, "stride": c.frame_stride}

    def _warn_upsampled(self, role: str, sets: dict[str, FrameSet]) -> None:
        """Warn when crops are upsampled (source side < crop size): the trainer then sees interpolated pixels."""
        size = self._crop_params()["size"]
        sides = [s.side for s in sets.values() if len(s) and s.side is not None]
        if not sides:
            return
        side = np.concatenate(sides)
        n_up = int((side < size).sum())
        self.upsampled[role] = {"n": n_up, "of": int(side.size), "median_source_side_px": float(np.median(side))}
        if n_up:
            self.log(f"warning: {n_up} of {side.size} {role} hand crops are upsampled (median source side "
                     f"{np.median(side):.0f} px < crop size {size} px)")

    def _frames(self, role: str, ds: Dataset, ids: list[str], video_of=None, extra: dict | None = None) -> dict[str, FrameSet]:
        key = stable_hash({"dataset": ds.identity(), "crop": self._crop_params(), "extra": extra or {}})[:12]
        d = self.out / "frames" / f"{role}-{key}"
        out = {}
        p = self._crop_params()
        for vid in ids:
            f = d / f"{safe_id(vid)}.npz"
            if f.is_file():
                out[vid] = FrameSet.load(f)
                continue
            sample = ds.load(vid)
            video = video_of(sample) if video_of else sample.video
            if video is None:
                raise InputError(vid, f"{role} clip has no video")
            fs = extract(sample, video, size=p["size"], stride=p["stride"], enlarge=p["enlarge"])
            atomic_write_bytes(f, fs.to_bytes())
            out[vid] = fs
        self.log(f"{role}: {len(ids)} clips, {sum(len(v) for v in out.values())} hand crops")
        self._warn_upsampled(role, out)
        return out

    # ------------------------------------------------------------------ runs
    def _run(self, trainer, mixture: MX.Mixture, seed: int, train: FrameSet, evalset: FrameSet,
             common: dict, counts: dict) -> dict:
        key = stable_hash({**common, "mixture": mixture.to_json(), "seed": int(seed)})
        d = self.out / "runs" / mixture.name / f"seed{seed}"
        res_path = d / "result.json"
        if res_path.is_file():
            old = read_json(res_path)
            if old.get("key") == key:
                self.log(f"{mixture.name} seed {seed}: done before, skipped")
                return old
            if not self.cfg.force:
                raise IncompatibleResults(f"{res_path}: holds a run with a different configuration; use another "
                                          "--out, or --force to retrain")
            res_path.unlink()
        d.mkdir(parents=True, exist_ok=True)
        self.log(f"{mixture.name} seed {seed}: training on {len(train)} crops ({counts['n_real_clips']} real + "
                 f"{counts['n_generated_clips']} generated clips)")
        t0 = time.time()
        bar = progress(trainer.steps, f"{mixture.name} seed {seed}", "step", self.cfg.progress, position=1)
        trainer.on_step = bar.update
        try:
            pred = trainer.run(train, evalset, seed, d)
        finally:
            trainer.on_step = None
            bar.close()
        if not np.isfinite(np.asarray(pred["xyz"], np.float64)).all():
            raise PamBenchError(f"{mixture.name} seed {seed}: the trained model predicts non-finite joints (training "
                                "diverged; try a smaller -t lr)")
        ev = PoseEvaluator()
        ev.feed(evalset.xyz, pred["xyz"], evalset.verts, pred.get("verts"))
        metrics = ev.result()
        metrics["mean_pose_pa_mpjpe_mm"] = mean_pose_reference(train, evalset)
        buf_arrays = {"pred_xyz": np.asarray(pred["xyz"], np.float32)}
        if pred.get("verts") is not None:
            buf_arrays["pred_verts"] = np.asarray(pred["verts"], np.float32)
        import io

        buf = io.BytesIO()
        np.savez(buf, **buf_arrays)
        atomic_write_bytes(d / "predictions.npz", buf.getvalue())
        result = {"key": key, "mixture": mixture.to_json(), "seed": int(seed), "metrics": metrics,
                  "seed_effective": bool(pred.get("seed_effective", False)),
                  "seed_note": pred.get("seed_note") or "the trainer did not say whether the seed was effective",
                  "n_train_images": len(train), **counts, "seconds": round(time.time() - t0, 2)}
        atomic_write_json(res_path, result)
        m = result["metrics"]
        self.log(f"{mixture.name} seed {seed}: PA-MPJPE {m['pa_mpjpe_mm']:.2f} mm, F@5 {m['f_at_5mm']:.3f}, "
                 f"F@15 {m['f_at_15mm']:.3f} ({result['seconds']:.0f} s)")
        return result

    def run(self) -> dict:
        from .report import write_report
        from .trainer import get_trainer

        c = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        trainer = get_trainer(c.trainer, c.device, **c.trainer_options)
        trainer.check_ready()
        self.input_size = int(trainer.input_size)
        real_ds = self._dataset("real", c.dataset, c.root, c.real_split, {})
        eval_ds = self._dataset("eval", c.dataset, c.root, c.eval_split, {})
        self._check_disjoint(real_ds, eval_ds, "real training clips")
        gen, gen_ds = self._generated()
        self._check_disjoint(gen_ds, eval_ds, "generated clips' GT")
        filt = self._score_and_filter(gen, gen_ds)

        real_ids = self._ids(real_ds, c.real_limit)
        eval_ids = self._ids(eval_ds, c.eval_limit)
        real = self._frames("real", real_ds, real_ids)
        evals = self._frames("eval", eval_ds, eval_ids)
        gen_frames = self._frames("generated", gen_ds, filt["kept"], lambda s: self._generated_video(gen, s),
                                  extra={"generator": gen.identity()})
        if not any(len(evals[v]) for v in eval_ids):
            raise PamBenchError(f"the evaluation split {eval_ds.split().name} has no hand with GT joints")
        evalset = concat([evals[v] for v in eval_ids])

        common = {"schema": SCHEMA, "real": real_ds.identity(), "real_ids": real_ids, "eval": eval_ds.identity(),
                  "eval_ids": eval_ids, "generated_kept": filt["kept"], "generator": filt["generator"],
                  "generated_dataset": filt["dataset"], "crop": self._crop_params(), "subset_seed": c.subset_seed,
                  "trainer": trainer.identity(), "device": c.device}
        results = []
        mixtures = MX.table4_mixtures(c.fractions, c.real_only_curve)
        overall = progress(len(mixtures) * len(c.seeds), "downstream: all mixtures", "run", c.progress, position=0)
        for mixture in mixtures:
            subset = MX.real_subset(real_ids, mixture.real_fraction, c.subset_seed)
            parts = [real[v] for v in subset] + ([gen_frames[v] for v in filt["kept"]] if mixture.generated else [])
            if not any(len(p) for p in parts):
                raise PamBenchError(f"mixture {mixture.name} has no training frames")
            train = concat(parts)
            counts = {"n_real_clips": len(subset), "n_generated_clips": len(filt["kept"]) if mixture.generated else 0,
                      "n_real_images": int(sum(len(real[v]) for v in subset))}
            for seed in c.seeds:
                results.append(self._run(trainer, mixture, seed, train, evalset, common, counts))
                overall.update(1)
        overall.close()

        config = {"config": _jsonable(asdict(c)), "identity": common, "crop_upsampled": self.upsampled,
                  "filter": {k: filt[k] for k in ("backend", "drop_fraction", "n_scored", "dropped", "source")},
                  "paper": "PAM (CVPR 2026) Section 4.5, Table 4, Fig. 7; SimpleHand evaluation (FreiHAND metrics)"}
        atomic_write_json(self.out / "config.json", config)
        atomic_write_json(self.out / "results.json", {"schema": SCHEMA, "runs": results})
        paths = write_report(results, self.out, c.fractions)
        self.log("wrote " + ", ".join(str(p) for p in paths))
        return {"runs": results, "files": [str(p) for p in paths]}


def mean_pose_reference(train: FrameSet, evalset: FrameSet) -> float:
    """PA-MPJPE (mm) of predicting the training mixture's mean root-relative pose for every evaluation
    image: what a model that ignores the image scores (a trained model should be below it)."""
    from .trainer import root_relative

    mean = root_relative(train.xyz.astype(np.float64)).mean(axis=0)
    ev = PoseEvaluator()
    ev.feed(evalset.xyz, np.repeat(mean[None], len(evalset), axis=0))
    return float(ev.result()["pa_mpjpe_mm"])


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d, default=str))


def run_study(cfg: StudyConfig, log: Callable[[str], None] = _log) -> dict:
    """Run (or resume) the study; returns {"runs": [...], "files": [...]}."""
    return Study(cfg, log).run()
