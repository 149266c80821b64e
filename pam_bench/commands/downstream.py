"""``pam-bench downstream``: the SimpleHand augmentation study (PAM Table 4 / Fig. 7)."""
from __future__ import annotations

import click

from ..errors import FlagError, PamBenchError
from .evaluate import check_device, parse_kv

#: numeric options of the embedded trainer and their type (pam_bench.downstream.trainer)
_EMBEDDED_NUMERIC = {"steps": int, "batch_size": int, "lr": float, "weight_decay": float}


def _floats(s: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise PamBenchError(f"expected comma-separated numbers, got {s!r}") from None
    for v in out:
        if not 0 < v <= 1:
            raise PamBenchError(f"real-data fractions must be in (0, 1], got {v}")
    return out


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise PamBenchError(f"expected comma-separated integers, got {s!r}") from None


def _trainer_options(trainer: str, pairs) -> dict:
    """``-t key=value``; for the embedded trainer the numeric ones are checked here (one line each)."""
    opts = parse_kv(pairs)
    if trainer == "embedded":
        for k, t in _EMBEDDED_NUMERIC.items():
            v = opts.get(k)
            if v is None:
                continue
            ok = not isinstance(v, bool) and isinstance(v, (int, float)) and (t is float or isinstance(v, int))
            if not ok or (v < 0 if k == "weight_decay" else v <= 0):
                raise FlagError(f"-t {k}", f"must be a positive {'whole number' if t is int else 'number'}, got {v!r}")
    return opts


@click.command("downstream", epilog="""\b
Examples:
  pam-bench downstream --out runs/downstream
  pam-bench downstream --dataset dexycb --root /data/dexycb --generated runs/pam --out runs/ds --device cuda
""")
@click.option("--dataset", default="synthetic", show_default=True, help="real/eval dataset (synthetic, dexycb)")
@click.option("--root", type=click.Path(), default=None, help="dataset root folder")
@click.option("--real-split", default=None, help="real training split [synthetic: train; dexycb: s0-train]")
@click.option("--eval-split", default=None, help="evaluation split [synthetic: val; dexycb: s0-pam-val]")
@click.option("-d", "--dataset-option", "dataset_options", multiple=True, help="dataset option key=value")
@click.option("--real-limit", type=click.IntRange(min=1), default=None, help="use only the first N real training clips")
@click.option("--eval-limit", type=click.IntRange(min=1), default=None,
              help="evaluate on the first N clips of the eval split")
@click.option("--generated", "generated_run", type=click.Path(), default=None,
              help="run folder of `pam-bench evaluate` whose videos/ are the generated set")
@click.option("--generated-method", default="sim-render", show_default=True,
              help="without --generated: registry method that makes the generated set here")
@click.option("-o", "--generated-method-option", "method_options", multiple=True, help="method option key=value")
@click.option("--generated-dataset", default=None, help="dataset of the generated clips' GT [--dataset / run.json]")
@click.option("--generated-root", type=click.Path(), default=None, help="its root [--root]")
@click.option("--generated-split", default=None, help="its split [synthetic: sim; run.json's split]")
@click.option("-g", "--generated-option", "generated_options", multiple=True, help="its dataset option key=value")
@click.option("--generated-limit", type=click.IntRange(min=1), default=None,
              help="use only the first N generated clips")
@click.option("--filter-backend", default="mediapipe", show_default=True,
              help="hand-pose backend scoring generated videos (mediapipe, hamer) or 'none'")
@click.option("--filter-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.25, show_default=True,
              help="share of generated videos dropped, worst pose accuracy first")
@click.option("-m", "--filter-option", "filter_options", multiple=True,
              help="option of the mpjpe metric that filters generated clips, key=value "
                   "(as -m mpjpe.key=value in evaluate)")
@click.option("--filter-scores", type=click.Path(), default=None,
              help="JSON {video_id: mpjpe_mm} computed elsewhere (replaces the backend)")
@click.option("--trainer", default="embedded", show_default=True, help="embedded | simplehand")
@click.option("-t", "--trainer-option", "trainer_options", multiple=True,
              help="trainer option key=value (embedded: arch, steps, batch_size, lr; simplehand: simplehand_dir, gpus, "
                   "honour_seed, timeout_s, train_command, predict_command)")
@click.option("--seeds", default="0", show_default=True, help="training seeds, comma-separated")
@click.option("--fractions", default="0.25,0.5,0.75,1", show_default=True, help="real-data shares added to gen.")
@click.option("--real-only-curve", is_flag=True, help="also train on p% real only (p < 100)")
@click.option("--subset-seed", type=int, default=0, show_default=True, help="seed of the real-clip subsets")
@click.option("--crop-size", type=click.IntRange(min=1), default=None,
              help="hand crop side (px); default: the trainer's input (simplehand 224, embedded 64)")
@click.option("--crop-enlarge", type=click.FloatRange(min=0, min_open=True), default=1.5, show_default=True,
              help="crop side / 2D joint box side")
@click.option("--frame-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="use every k-th frame of a clip")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--out", type=click.Path(), required=True, help="output folder (resumable)")
@click.option("--force", is_flag=True, help="retrain runs whose configuration changed")
@click.option("--no-progress", is_flag=True, help="no progress bars on stderr")
def downstream(dataset, root, real_split, eval_split, dataset_options, real_limit, eval_limit, generated_run,
               generated_method, method_options, generated_dataset, generated_root, generated_split,
               generated_options, generated_limit, filter_backend, filter_fraction, filter_options, filter_scores,
               trainer, trainer_options, seeds, fractions, real_only_curve, subset_seed, crop_size, crop_enlarge,
               frame_stride, device, out, force, no_progress):
    """Train a hand-pose estimator on real, generated and mixed data; write Table 4 and Fig. 7.

    Offline demo: `pam-bench downstream --out runs/downstream` (synthetic real/eval splits; the generated
    set is the sim-render method on the synthetic 'sim' split; embedded trainer). See docs/downstream.md.
    """
    from ..downstream.study import StudyConfig, run_study

    check_device(device)
    topts = _trainer_options(trainer, trainer_options)
    cfg = StudyConfig(
        out=out, dataset=dataset, root=root, real_split=real_split, eval_split=eval_split,
        dataset_options=parse_kv(dataset_options), real_limit=real_limit, eval_limit=eval_limit,
        generated_run=generated_run, generated_method=generated_method,
        generated_method_options=parse_kv(method_options), generated_dataset=generated_dataset,
        generated_root=generated_root, generated_split=generated_split,
        generated_options=parse_kv(generated_options), generated_limit=generated_limit,
        filter_backend=filter_backend, filter_fraction=filter_fraction, filter_options=parse_kv(filter_options),
        filter_scores=filter_scores, trainer=trainer, trainer_options=topts,
        seeds=_ints(seeds), fractions=_floats(fractions), real_only_curve=real_only_curve,
        subset_seed=subset_seed, crop_size=crop_size, crop_enlarge=crop_enlarge, frame_stride=frame_stride,
        device=device, force=force, progress=not no_progress)
    res = run_study(cfg)
    from pathlib import Path

    click.echo((Path(out) / "table4.md").read_text())
    click.echo("wrote " + ", ".join(res["files"]) + f", {out}/config.json, {out}/results.json")
