"""Every decoder path returns the same pixels, with the one YUV->RGB conversion recorded in results.json.

Files are made here: lossless RGB h264 (what pam-bench writes), yuv420p h264 (what the official evaluation
writes through imageio/libx264 defaults: untagged BT.601 limited range), mpeg4 yuv420p (the DexYCB sample's
codec) and a BT.709-tagged h264 file; the real DexYCB sample, and its frames re-encoded to mpeg4, are added
when the test data has it (tests/testdata.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pam_bench.types import Video
from pam_bench.video import DECODERS, decode_info, read_video, write_video

from .conftest import SAMPLES, data_missing, require_data

SAMPLE = SAMPLES / "dexycb" / "val_video.mp4"
PATHS = [(d, 1) for d in DECODERS] + [("pyav", 3)]  # (decoder, threads): PyAV with frame threading too


def _frames(t=12, h=96, w=128, seed=0) -> np.ndarray:
    """Smooth moving colour ramps plus noise: every chroma value and edge case the encoders see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        base = np.stack([(xx * 2 + i * 5) % 256, (yy * 3 + i * 7) % 256, (xx + yy + i * 11) % 256], -1)
        out[i] = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255)
    return out


def _encode(path: Path, frames: np.ndarray, codec: str, tag709: bool = False) -> Path:
    import av

    with av.open(str(path), mode="w") as c:
        st = c.add_stream(codec, rate=15)
        st.pix_fmt, st.width, st.height = "yuv420p", frames.shape[2], frames.shape[1]
        st.options = {"crf": "18"} if codec == "libx264" else {"qscale": "3"}
        if tag709:
            st.codec_context.colorspace = st.codec_context.color_primaries = st.codec_context.color_trc = 1
            st.codec_context.color_range = 1
        for f in frames:
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf = vf.reformat(format="yuv420p", dst_colorspace="ITU709" if tag709 else "ITU601",
                             dst_color_range=1)
            for pkt in st.encode(vf):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("decoders")
    fr = _frames()
    out = {
        "lossless-rgb-h264": write_video(d / "rgb.mp4", Video(fr, 15.0)),
        "yuv420p-h264": _encode(d / "yuv.mp4", fr, "libx264"),
        "mpeg4": _encode(d / "mpeg4.mp4", fr, "mpeg4"),
        "bt709-tagged-h264": _encode(d / "bt709.mp4", fr, "libx264", tag709=True),
    }
    if data_missing(SAMPLE) is None:
        out["dexycb-sample-mpeg4"] = SAMPLE
        # real footage through today's mpeg4 encoder: the case where decord's own libavcodec differs
        real = read_video(SAMPLE, decoder="pyav").frames[:49, ::4, ::4]
        out["dexycb-reencoded-mpeg4"] = write_video(d / "real_mpeg4.mp4", Video(real, 15.0), codec="mpeg4")
    return out, fr


@pytest.mark.parametrize("kind", ["lossless-rgb-h264", "yuv420p-h264", "mpeg4", "bt709-tagged-h264",
                                  "dexycb-sample-mpeg4", "dexycb-reencoded-mpeg4"])
def test_every_decoder_path_returns_identical_frames(files, kind):
    out, _ = files
    if kind not in out:
        require_data(SAMPLE)
    got = {p: read_video(out[kind], decoder=p[0], threads=p[1]).frames for p in PATHS}
    ref = got[PATHS[0]]
    assert ref.ndim == 4 and ref.shape[-1] == 3 and ref.dtype == np.uint8 and ref.shape[0] > 0
    for p, fr in got.items():
        assert fr.shape == ref.shape, p
        assert np.array_equal(fr, ref), f"{p} differs from {PATHS[0]} on {kind}: max |d| = " \
                                        f"{np.abs(fr.astype(int) - ref).max()}"


def test_lossless_rgb_is_bit_exact_on_every_path(files):
    out, fr = files
    for p in PATHS:
        assert np.array_equal(read_video(out["lossless-rgb-h264"], decoder=p[0], threads=p[1]).frames, fr)


def _yuv_to_rgb(y, u, v, kr=0.299, kb=0.114, limited=True) -> np.ndarray:
    """Independent reference: the textbook matrix (BT.601: kr .299, kb .114; BT.709: .2126, .0722), limited
    or full range, nearest chroma upsampling, in float64, rounded."""
    u = np.repeat(np.repeat(u, 2, 0), 2, 1).astype(np.float64) - 128
    v = np.repeat(np.repeat(v, 2, 0), 2, 1).astype(np.float64) - 128
    yy = (y.astype(np.float64) - 16) * 255 / 219 if limited else y.astype(np.float64)
    s = 255 / 224 if limited else 1.0
    r = yy + s * 2 * (1 - kr) * v
    b = yy + s * 2 * (1 - kb) * u
    g = yy - s * 2 * (kb * (1 - kb) * u + kr * (1 - kr) * v) / (1 - kr - kb)
    return np.clip(np.rint(np.stack([r, g, b], -1)), 0, 255)


@pytest.mark.parametrize("kind", ["yuv420p-h264", "mpeg4"])
def test_untagged_yuv_uses_bt601_limited_range(files, kind):
    """The recorded conversion is the applied one: an independent BT.601 limited-range formula on the
    decoded planes agrees to within libswscale's fixed point and chroma interpolation, several times closer
    than BT.709 or full range would."""
    import av

    out, _ = files
    with av.open(str(out[kind])) as c:
        planes = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    rgb = read_video(out[kind]).frames
    h = rgb.shape[1]
    for p, fr in zip(planes, rgb):
        y, u, v = p[:h], p[h:h + h // 4].reshape(h // 2, -1), p[h + h // 4:].reshape(h // 2, -1)
        err = {name: float(np.abs(_yuv_to_rgb(y, u, v, **kw) - fr).mean()) for name, kw in
               {"601-limited": {}, "709-limited": {"kr": 0.2126, "kb": 0.0722},
                "601-full": {"limited": False}}.items()}
        assert err["601-limited"] < 1.5, err
        assert 3 * err["601-limited"] < min(err["709-limited"], err["601-full"]), err


def test_decode_info_records_the_conversion(monkeypatch):
    info = decode_info()
    assert info["decoder"] == DECODERS[0] and "BT.601" in info["yuv_to_rgb"] and "limited" in info["yuv_to_rgb"]
    monkeypatch.setenv("PAM_BENCH_DECODER", "decord")
    assert decode_info()["decoder"] == "decord"
    monkeypatch.setenv("PAM_BENCH_DECODER", "nope")
    from pam_bench.errors import InputError

    with pytest.raises(InputError, match="PAM_BENCH_DECODER"):
        decode_info()


def test_frames_are_gathered_in_place_and_grow_past_a_wrong_count(tmp_path):
    """Decoded frames go straight into one array sized by the container's count (or the frames wanted); a
    container that under-reports its length still yields every frame, and a frame of another size is one
    InputError naming the file."""
    from pam_bench.errors import InputError
    from pam_bench.video import _Frames

    src = _frames(t=5)
    for wanted, count in ((None, None), (1, None), (None, 2), (5, None), (None, 50), (None, 2**40)):
        sink = _Frames(tmp_path / "v.mp4", wanted, count)  # 2**40: a header that lies sizes no 1 TB array
        for f in src:
            sink.add(f)
        got = sink.video(15.0).frames
        assert np.array_equal(got, src) and got.flags.c_contiguous, (wanted, count)
    sink = _Frames(tmp_path / "v.mp4", 5)
    sink.add(src[0])
    with pytest.raises(InputError, match="v.mp4.*frame 1 is 64x48, the first frame 128x96"):
        sink.add(src[1, :48, :64])
    with pytest.raises(InputError, match="no decodable frames"):
        _Frames(tmp_path / "v.mp4", 5).video(15.0)


@pytest.mark.parametrize("decoder, threads", PATHS)
def test_a_container_without_a_frame_count_decodes_every_frame(tmp_path, decoder, threads):
    """A Matroska file's header gives no frame count: the frame array starts small and grows, and every path
    returns all 70 frames, identical to what was encoded (lossless RGB)."""
    import av

    src = np.stack([np.full((48, 64, 3), (3 * i) % 256, np.uint8) for i in range(70)])
    src[:, 10:20, 5:9] = 200
    f = tmp_path / "no_count.mkv"
    with av.open(str(f), "w") as c:
        st = c.add_stream("libx264rgb", rate=15)
        st.width, st.height, st.pix_fmt, st.options = 64, 48, "rgb24", {"qp": "0"}  # lossless
        for fr in src:
            for p in st.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")):
                c.mux(p)
        for p in st.encode():
            c.mux(p)
    with av.open(str(f)) as c:
        assert c.streams.video[0].frames == 0  # the case under test: no count in the header
    got = read_video(f, decoder=decoder, threads=threads).frames
    assert got.shape == src.shape and np.array_equal(got, src)
