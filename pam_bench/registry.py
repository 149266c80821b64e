"""One lazy registry: name -> "module:Attr".

Listing never imports the target modules (so ``pam-bench list`` never imports diffusers or a model).
Each entry declares what it needs: python packages (checked with importlib.util.find_spec), pinned weight
files (checked on disk by pam_bench.weights) and the inputs only the user can supply (``requires``: a
checkpoint folder, a dataset root, a method option), so ``list`` can say what is missing. An entry that
requires an input is never "ready" until the user passes it (``pam-bench list --method pam --checkpoint
DIR`` then builds the method and runs its own readiness check). ``user_files`` holds the exact ``evaluate``
flags to pass (a test parses them and checks that ``evaluate`` accepts every one).
Adding a dataset, method or metric is one file plus one line here.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from .errors import ArgumentError, PamBenchError

KINDS = ("dataset", "method", "metric")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    target: str  # "module:Attr"
    summary: str
    packages: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()  # names in pam_bench.weights.PINNED
    user_files: str = ""  # the evaluate flags that supply it, e.g. "--checkpoint PAM_DIR" ([...]: optional)
    requires: tuple[str, ...] = ()  # inputs it cannot run without: "checkpoint", "videos", "root", "o:KEY", "d:KEY"
    where: str = ""  # where to get what it requires

    def load(self):
        mod_name, _, attr = self.target.partition(":")
        module = importlib.import_module(mod_name)
        return getattr(module, attr)

    def missing(self, given: dict | None = None) -> list[str]:
        """What is missing here for this entry to run (cheap: no heavy import).

        ``given``: the inputs the user passes ({"checkpoint": DIR, "root": DIR, "videos": DIR, "o": {...},
        "d": {...}}); each required input absent from it is reported as "needs FLAG".
        """
        absent = [_flag(r) for r in self.requires if not _given(r, given or {})]
        out = [f"needs {' and '.join(absent)}" + (f" ({self.where})" if self.where else "")] if absent else []
        for pkg in self.packages:
            try:
                found = importlib.util.find_spec(pkg) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(f"python package '{pkg}'")
        if self.weights:
            from . import weights as W

            for w in self.weights:
                if W.locate(w) is None:
                    out.append(f"weights '{w}' (run: pam-bench weights fetch {w})")
        return out


def _flag(req: str) -> str:
    """'checkpoint' -> '--checkpoint', 'o:svd' -> '-o svd=...'."""
    if req.startswith(("o:", "d:")):
        return f"-{req[0]} {req[2:]}=..."
    return f"--{req}"


def _given(req: str, given: dict) -> bool:
    if req.startswith(("o:", "d:")):
        return req[2:] in (given.get(req[0]) or {})
    return given.get(req) is not None


def build_backend(what: str, table: dict[str, type], name: str, **kwargs):
    """Build a metric's backend (a tracker, a hand-pose estimator) from its small name -> class table.

    Backends are options of one registered metric, not registry entries of their own; this keeps their
    errors uniform: an unknown name lists the known ones, a bad option names the backend.
    """
    try:
        cls = table[name]
    except KeyError:
        raise PamBenchError(f"unknown {what} '{name}'; known: {', '.join(table)}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:
        opts = sorted(k for k in kwargs if k != "device")
        raise PamBenchError(f"{what} '{name}': bad option(s) {opts} ({e})") from None


class Registry:
    def __init__(self):
        self._entries: dict[tuple[str, str], Entry] = {}

    def add(self, kind: str, name: str, target: str, summary: str, **kw) -> None:
        if kind not in KINDS:
            raise ArgumentError(kind)
        key = (kind, name)
        if key in self._entries:
            raise ArgumentError(f"duplicate registry entry {kind} {name}")
        self._entries[key] = Entry(kind, name, target, summary, **kw)

    def get(self, kind: str, name: str) -> Entry:
        try:
            return self._entries[(kind, name)]
        except KeyError:
            known = ", ".join(self.names(kind))
            raise PamBenchError(f"unknown {kind} '{name}'; known: {known}") from None

    def names(self, kind: str) -> list[str]:
        return [n for (k, n) in self._entries if k == kind]

    def entries(self, kind: str | None = None) -> list[Entry]:
        return [e for (k, _), e in self._entries.items() if kind is None or k == kind]

    def load(self, kind: str, name: str):
        return self.get(kind, name).load()


REGISTRY = Registry()
_add = REGISTRY.add

# --- datasets -------------------------------------------------------------------------------
_add("dataset", "synthetic", "pam_bench.datasets.synthetic:SyntheticHOI",
     "embedded procedural HOI clips (offline default): hand + object, RGB/depth/seg/joints/conditions")
_add("dataset", "pam-eval-dir", "pam_bench.datasets.folder:PamEvalDir",
     "the folder the official PAM evaluation script writes: gt/gt_XXXX.mp4 (GT side), identified by GT content",
     user_files="--root EVAL_DIR [-d seg_videos=SEG_DIR]", requires=("root",),
     where="implied by --method folder --videos EVAL_DIR")
_add("dataset", "dexycb", "pam_bench.datasets.dexycb:DexYCB",
     "DexYCB s0 clips (PAM's 1,600-clip val by default), 49 frames at 480x720, PAM conditions",
     user_files="--root DEXYCB_DIR", requires=("root",), where="https://dex-ycb.github.io; README 'Datasets'")
_add("dataset", "oakink2", "pam_bench.datasets.oakink2:OakInk2",
     "OAKINK2 49-frame chunks at 480x720, PAM-prepared conditions; joints need MANO",
     user_files="--root OAKINK2_DIR [-d clip_list=FILE] [-d mano_dir=MANO_DIR]", requires=("root",),
     where="https://oakink.net/v2; PAM's shipped sample: README 'OAKINK2 sample'")

# --- methods --------------------------------------------------------------------------------
_add("method", "oracle", "baselines.reference:Oracle", "the GT video (upper bound)")
_add("method", "static", "baselines.reference:Static", "the GT first frame held (no-motion bound)")
_add("method", "sim-render", "baselines.reference:SimRender",
     "the condition videos composited as RGB (a simulator without appearance)")
_add("method", "folder", "baselines.folder:FolderMethod",
     "videos generated elsewhere: generated/generated_XXXX.mp4, generated_XXXX.mp4 or <video_id>.mp4",
     user_files="--videos VIDEOS_DIR", requires=("videos",))
_add("method", "pam", "pam.generator:PAMGenerator",
     "PAM: CogVideoX-5B-I2V + multi-condition branch (i2v), or + FLUX double-ControlNet first frame (full)",
     packages=("diffusers", "transformers"), user_files="--checkpoint PAM_TRANSFORMER [-o base=COGVIDEOX_DIR]",
     requires=("checkpoint",), where="PAM's released weights and a CogVideoX-5B-I2V snapshot; docs/pam_gpu.md")
_add("method", "coshand", "baselines.coshand:CosHand", "CosHand image model (LDM ckpt on diffusers), frame by frame",
     packages=("diffusers", "transformers"), user_files="--checkpoint COSHAND_DIR", requires=("checkpoint",),
     where="CosHand's released checkpoint; docs/baselines.md")
_add("method", "svd-hand", "baselines.svd:SVDHand", "InterDyn-style SVD + ControlNet on the hand-mask video",
     packages=("diffusers", "transformers"), user_files="--checkpoint INTERDYN_DIR -o svd=SVD_DIR",
     requires=("checkpoint", "o:svd"), where="InterDyn's ControlNet and SVD img2vid-xt; docs/baselines.md")
_add("method", "svd-multi", "baselines.svd:SVDMulti", "SVD + ControlNet on depth, seg and keypoints (suppl. Table 6)",
     packages=("diffusers", "transformers"), user_files="--checkpoint SVD_MULTI_DIR -o svd=SVD_DIR",
     requires=("checkpoint", "o:svd"), where="no public weights: train your own ControlNet; docs/baselines.md")
_add("method", "cond-warp", "baselines.warp:CondWarp", "GT first frame warped along DIS flow of the seg condition",
     packages=("cv2",))

# --- metrics --------------------------------------------------------------------------------
_add("metric", "ssim", "pam_bench.metrics.pixel:SSIM", "SSIM (Wang et al. 2004, gaussian 11x11 sigma 1.5), per frame")
_add("metric", "psnr", "pam_bench.metrics.pixel:PSNR", "PSNR (data range 255), per frame")
_add("metric", "lpips", "pam_bench.metrics.pixel:LPIPS", "LPIPS AlexNet v0.1, per frame",
     packages=("lpips",), weights=("lpips-alexnet",))
_add("metric", "fvd", "pam_bench.metrics.fvd:FVD", "FVD (I3D K400; protocols stylegan-v, start, windows16-mean, cmvq)",
     weights=("i3d-k400",))
_add("metric", "mf", "pam_bench.metrics.motion:MotionFidelity",
     "Motion Fidelity: two-sided track-direction agreement, 100 foreground points (LK default; cotracker3)",
     packages=("cv2",))
_add("metric", "mpjpe", "pam_bench.metrics.hand:HandMPJPE",
     "root-aligned 3D hand MPJPE (mm) on the generated video (MediaPipe default; hamer)",
     packages=("mediapipe",), weights=("hand-landmarker",))
_add("metric", "fvmd", "pam_bench.metrics.fvmd:FVMD",
     "FVMD: Fréchet distance of keypoint velocity/acceleration histograms (LK default; cotracker3)",
     packages=("cv2",))
