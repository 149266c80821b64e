"""PAM official parity: checkpoint layouts through the CLI, per-clip captions, protocol=official, Stage II schedule.

Facts from GasaiYU/PAM (read with the fetch tool): convert_ckpt.py (plain THUDM config.json, sharded
safetensors + index, or pytorch_model*.bin), the training save hook (CogVideoXTransformer3DModelTracking +
num_tracking_blocks), gen_prompt.py's jsonl, testing/evaluation_comb_dexycb.py + the combination pipeline
(slot inputs and generator order), appearance_gen's get_schedule(28, (W//8)*(H//8)//256).
"""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from pam import checkpoint as ckpt  # noqa: E402
from pam import stage3_motion as s3  # noqa: E402
from tests import tiny_pam as tiny  # noqa: E402
from pam.generator import PAMGenerator  # noqa: E402
from pam_bench.errors import InputError, OptionError  # noqa: E402

IDS = ("synthetic_0000", "synthetic_0001")


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))  # hash cache and prompt cache


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny.write_tiny_base(tmp_path_factory.mktemp("cogvideox") / "CogVideoX-5b-I2V")


def _captions(path, texts, prefix="../data/dexycb_videos"):
    with open(path, "w") as f:
        for cid, text in zip(IDS, texts):
            f.write(json.dumps({"video_path": f"{prefix}/{cid}/video.mp4", "response": text}) + "\n")
    return path


def _cli(args, capsys):
    from pam_bench.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _evaluate_args(ck, base, out, caps, *extra):
    return ["evaluate", "--method", "pam", "--checkpoint", str(ck), "-o", f"base={base}", "-o", f"prompts={caps}",
            "-o", "steps=1", *extra, "--dataset", "synthetic", "-d", "n_clips=1", "-d", "frames=9",
            "-d", "height=32", "-d", "width=48", "--metrics", "psnr", "--out", str(out), "--no-progress"]


@pytest.mark.parametrize("layout", ["save-hook", "convert", "convert-bin"])
def test_each_official_layout_runs_through_the_cli_with_the_saved_weights(layout, base, tmp_path, monkeypatch,
                                                                         capsys):
    if layout == "save-hook":  # the user holds the training checkpoint-N/ (DeepSpeed files + transformer/)
        ck = tmp_path / "checkpoint-2500"
        saved = tiny.write_tiny_transformer(ck / "transformer", layout)
        (ck / "latest").write_text("pytorch_model")
        (ck / "pytorch_model").mkdir()
        (ck / "pytorch_model" / "mp_rank_00_model_states.pt").write_bytes(b"not read")
    else:  # convert_ckpt.py OUT_DIR
        ck = tmp_path / "checkpoint-2500-convert"
        saved = tiny.write_tiny_transformer(ck, layout)
        cfg = json.loads((ck / "config.json").read_text())
        assert cfg["_class_name"] == "CogVideoXTransformer3DModel" and "num_tracking_blocks" not in cfg
        index = "pytorch_model.bin.index.json" if layout == "convert-bin" else ckpt.SAFE_INDEX
        assert (ck / index).is_file() and len(set(json.loads((ck / index).read_text())["weight_map"].values())) > 1
        assert saved["initial_combine_linear.weight"].dtype == torch.float32
        assert saved["transformer_blocks.0.attn1.to_q.weight"].dtype == torch.bfloat16
    loaded = {}
    real = s3.load_transformer

    def spy(*a, **kw):
        model, info = real(*a, **kw)
        loaded.update(model.state_dict())
        loaded["_info"] = info
        return model, info

    monkeypatch.setattr(s3, "load_transformer", spy)
    caps = _captions(tmp_path / "dexycb_prompt.jsonl", ["a hand grasps a red mug", "the person picks up a box"])
    code, _out, err = _cli(_evaluate_args(ck, base, tmp_path / "run", caps), capsys)
    assert code == 0, err
    info = loaded.pop("_info")
    assert info["init"] == "checkpoint" and info["num_tracking_blocks"] == tiny.TINY_NUM_TRACKING_BLOCKS
    assert set(loaded) == set(saved)
    for k, v in saved.items():  # fp32 on CPU: bf16 -> fp32 is exact, so the values must be equal
        assert torch.equal(loaded[k], v.to(loaded[k].dtype)), k
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["n_evaluated"] == 1 and np.isfinite(res["metrics"]["psnr"]["value"])
    ident = res["method"]
    assert ident["protocol"] == "official" and ident["prompts"]["per_clip"] is True
    assert ident["checkpoint"]["layout"].startswith("save-hook" if layout == "save-hook" else "convert_ckpt")
    assert set(ident["checkpoint_sha256"]) >= {"transformer", "vae", "scheduler", "text_encoder", "tokenizer"}


def test_raw_deepspeed_folder_is_one_line_naming_convert_ckpt(base, tmp_path, capsys):
    ds = tmp_path / "checkpoint-100"
    (ds / "global_step100").mkdir(parents=True)
    (ds / "latest").write_text("global_step100")
    (ds / "global_step100" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    (ds / "zero_to_fp32.py").write_text("# deepspeed's script")
    caps = _captions(tmp_path / "c.jsonl", ["a", "b"])
    code, _out, err = _cli(_evaluate_args(ds, base, tmp_path / "run", caps), capsys)
    assert code != 0 and "convert_ckpt.py" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "run" / "results.json").exists()


def test_missing_base_parts_are_named_in_one_error(base, tmp_path):
    ck = tmp_path / "ck"
    tiny.write_tiny_transformer(ck, "convert")
    half = tmp_path / "half"
    shutil.copytree(base, half)
    shutil.rmtree(half / "vae")
    shutil.rmtree(half / "tokenizer")
    g = PAMGenerator(checkpoint=ck, base=half, prompt="x", shared_prompt=True)
    with pytest.raises(Exception) as e:
        g.check_ready()
    assert "vae/" in str(e.value) and "tokenizer/" in str(e.value) and "THUDM/CogVideoX-5b-I2V" in str(e.value)
    with pytest.raises(Exception, match="no -o base"):
        PAMGenerator(checkpoint=ck, prompt="x").check_ready()


def test_init_from_base_is_refused_when_the_weights_hold_a_branch(tmp_path):
    for layout in ("save-hook", "convert"):
        d = tmp_path / layout
        tiny.write_tiny_transformer(d, layout)
        with pytest.raises(InputError, match="init_from_base would re-initialise it"):
            s3.load_transformer(d, init_from_base=True, num_tracking_blocks=1)
    cfg = json.loads((tmp_path / "save-hook" / "config.json").read_text())
    cfg["num_tracking_blocks"] = 2  # the weights hold 1 copied block
    (tmp_path / "save-hook" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="weights hold 1 copied"):
        s3.load_transformer(tmp_path / "save-hook")


# --- per-clip captions ---------------------------------------------------------------------------------

def test_caption_jsonl_gives_each_clip_its_own_prompt_and_hashes_into_the_identity(base, tmp_path):
    from pam.prompts import CaptionTable

    caps = _captions(tmp_path / "dexycb_prompt.jsonl", ["a hand grasps a red mug", "the person picks up a box"])
    t = CaptionTable(caps)
    assert t.lookup(IDS[0]) == "a hand grasps a red mug" and t.lookup(IDS[1]) == "the person picks up a box"
    assert t.lookup("synthetic_0002") is None
    ck = tmp_path / "ck"
    tiny.write_tiny_transformer(ck, "convert")
    a = PAMGenerator(checkpoint=ck, base=base, prompts=caps).identity()
    _captions(caps, ["a hand grasps a red mug", "the person picks up a BOX"])  # one caption changes
    b = PAMGenerator(checkpoint=ck, base=base, prompts=caps).identity()
    assert a["prompts"]["files_sha256"] != b["prompts"]["files_sha256"] and a != b
    assert a["prompts"]["per_clip"] and a["variant"] == ""


def test_caption_column_with_its_video_list_and_conflicts(tmp_path):
    from pam.prompts import CaptionTable

    (tmp_path / "val_prompts.txt").write_text("first caption\n\nsecond caption\n")
    (tmp_path / "val_videos.txt").write_text("data/dexycb_videos/s-01/seq_a/836/video.mp4\n"
                                             "data/dexycb_videos/s-01/seq_b/836/video.mp4\n")
    t = CaptionTable(tmp_path / "val_prompts.txt", tmp_path / "val_videos.txt")
    assert t.lookup("s-01/seq_a/836") == "first caption" and t.lookup("s-01/seq_b/836") == "second caption"
    with pytest.raises(InputError, match="video list"):
        CaptionTable(tmp_path / "val_prompts.txt")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"video_path": "x/c1/video.mp4", "response": "one"}) + "\n" +
                                        json.dumps({"video_path": "y/c1/video.mp4", "response": "two"}) + "\n")
    with pytest.raises(InputError, match="second, different caption"):
        CaptionTable(tmp_path / "bad.jsonl").lookup("c1")


def test_prompts_are_encoded_with_the_base_t5_and_cached(base, tmp_path):
    from transformers import T5EncoderModel, T5Tokenizer

    from pam.prompts import T5PromptEncoder

    enc = T5PromptEncoder(base / "text_encoder", base / "tokenizer", "h1", "cpu", max_length=16)
    e1 = enc("a hand grasps a red mug")
    tok = T5Tokenizer.from_pretrained(str(base / "tokenizer"))
    t5 = T5EncoderModel.from_pretrained(str(base / "text_encoder")).eval()
    ids = tok(["a hand grasps a red mug"], padding="max_length", max_length=16, truncation=True,
              return_tensors="pt").input_ids
    with torch.no_grad():
        ref = t5(ids)[0]
    assert e1.shape == (1, 16, tiny.TINY_T5["d_model"]) and torch.allclose(e1, ref, atol=1e-6)
    again = T5PromptEncoder(base / "text_encoder", base / "tokenizer", "h1", "cpu", max_length=16)
    assert torch.equal(again("a hand grasps a red mug"), e1) and again.misses == 0 and again._enc is None
    other = T5PromptEncoder(base / "text_encoder", base / "tokenizer", "h2", "cpu", max_length=16)
    other("a hand grasps a red mug")
    assert other.misses == 1  # another encoder hash is another cache entry


def test_official_protocol_refuses_one_shared_prompt_unless_asked(tmp_path, base):
    from pam_bench.datasets.synthetic import SyntheticHOI

    ck = tiny.write_tiny_checkpoint(tmp_path / "PAM", mode="i2v")  # folder-wide prompt_embeds.safetensors only
    ds = SyntheticHOI(n_clips=1, frames=9, height=32, width=48)
    sample = ds.load(ds.split().ids[0])
    g = PAMGenerator(checkpoint=ck, steps=1)
    assert g.identity()["prompts"]["per_clip"] is True
    with pytest.raises(OptionError, match=f"pam option prompts: clip {sample.id} has no caption.*shared_prompt=true"):
        g.generate(sample, seed=0)
    caps = tmp_path / "captions.jsonl"  # a caption file without this clip: the file is named
    caps.write_text('{"video_path": "other/clip/video.mp4", "response": "a hand grasps a mug"}\n')
    with pytest.raises(InputError, match=f"captions.jsonl: has no caption for clip {sample.id}: .*shared_prompt"):
        PAMGenerator(checkpoint=ck, steps=1, prompts=caps, base=base).generate(sample, seed=0)
    ok = PAMGenerator(checkpoint=ck, steps=1, shared_prompt=True)
    ident = ok.identity()
    assert ident["prompts"]["per_clip"] is False and ident["variant"] == "one shared prompt"
    v = ok.generate(sample, seed=0)
    assert v.frames.shape == sample.video.frames.shape and v.fps == 15.0
    assert PAMGenerator(checkpoint=ck, protocol="pam-bench").identity()["variant"] == \
        "protocol=pam-bench, one shared prompt"
    from pam_bench.report.leaderboard import method_label

    assert "one shared prompt" in method_label({"method": ident})


# --- protocol=official: what goes into the unused slots --------------------------------------------------

def _official_reference(motion, first, conds, tracking_frame, shape, seed):
    """The official order of draws, written out: I2V prepare_latents (image latent, noise), then
    prepare_latents per slot image (tracking, normal = gray, depth, seg, hand), each with a discarded draw."""
    vae, sf = motion.vae, motion.vae.config.scaling_factor
    gen = torch.Generator().manual_seed(seed)

    def enc(img_m11):  # [3, H, W] in [-1, 1]
        lat = vae.encode(img_m11[None, :, None]).latent_dist.sample(generator=gen) * sf
        return lat.permute(0, 2, 1, 3, 4)

    def unit(x):
        return torch.from_numpy(x).permute(2, 0, 1).float() / 127.5 - 1

    image = enc(unit(first))
    noise = torch.randn(shape, generator=gen)
    firsts = {}
    for slot, img in (("tracking_maps", unit(tracking_frame)), ("normal_maps", torch.zeros(3, *first.shape[:2])),
                      ("depth_maps", unit(conds["depth"][0])), ("seg_masks", unit(conds["seg"][0])),
                      ("hand_keypoints", unit(conds["hand"][0]))):
        firsts[slot] = enc(img)
        torch.randn(shape, generator=gen)
    return image, noise, firsts


def test_official_protocol_puts_first_frame_latents_in_the_unused_slots():
    model = tiny.tiny_transformer(0)
    from diffusers import CogVideoXDPMScheduler

    motion = s3.MotionPipeline(model, tiny.tiny_cogvideox_vae(0), CogVideoXDPMScheduler(**tiny.COGVIDEOX_SCHEDULER))
    rng = np.random.default_rng(0)
    T, H, W = tiny.TINY_FRAMES, tiny.TINY_HEIGHT, tiny.TINY_WIDTH
    first = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    conds = {n: rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8) for n in ("depth", "seg", "hand")}
    tracking = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    shape = (1, 3, 4, H // 8, W // 8)
    gen, cond_gen = torch.Generator().manual_seed(42), torch.Generator().manual_seed(43)
    with torch.no_grad():
        latents, image, slots = motion.official_inputs(first, conds, ("depth", "hand"), tracking, shape, gen, cond_gen)
        ref_image, ref_noise, ref_first = _official_reference(motion, first, conds, tracking, shape, 42)
    C = 4
    assert torch.equal(image[:, :1], ref_image) and not image[:, 1:].any()
    assert torch.equal(latents, ref_noise * motion.scheduler.init_noise_sigma)
    for slot in s3.CONDITION_SLOTS:
        x = slots[slot]
        assert x.shape == (1, 3, 2 * C, H // 8, W // 8)
        assert torch.equal(x[:, :1, C:], ref_first[slot]), slot  # the first frame's VAE latent ...
        assert not x[:, 1:, C:].any()  # ... zero padded
        if slot in ("depth_maps", "hand_keypoints"):
            assert x[:, :, :C].abs().sum() > 0  # a used condition's video latent
        else:
            assert not x[:, :, :C].any(), slot  # tracking, normal and the unused seg: zero video latents
    assert ref_first["normal_maps"].abs().sum() > 0  # a gray image still has a latent
    # the earlier protocol zeroes everything in an unused slot
    pb = motion.condition_inputs(conds, ("depth", "hand"), 3, shape, torch.Generator().manual_seed(0))
    assert not pb["tracking_maps"].any() and not pb["normal_maps"].any() and not pb["seg_masks"].any()


# --- Stage II: the official schedule ------------------------------------------------------------------

def test_stage2_sigmas_equal_the_official_schedule_at_480x640():
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler

    from pam.stage2_appearance import AppearancePipeline
    from pam.stage2_official import stage2_size

    sched = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                            base_image_seq_len=256, max_image_seq_len=4096)
    app = AppearancePipeline(None, AutoencoderKL(**tiny.TINY_FLUX_VAE), sched, None, None)
    H, W, steps = 480, 640, 28
    # XLabs get_schedule(28, (W//8)*(H//8)//256), written out from the published formula
    L = (W // 8) * (H // 8) // 256
    mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (L - 256)
    assert L == 18 and abs(mu - 0.4597) < 1e-4
    ref = [math.exp(mu) / (math.exp(mu) + (1 / t - 1)) for t in np.linspace(1, 0, steps + 1)[:-1]]
    got = (app.timesteps(H, W, steps, "official") / 1000).double().numpy()
    assert np.allclose(got, ref, atol=1e-6, rtol=0)
    assert np.allclose(sched.sigmas.double().numpy(), [*ref, 0.0], atol=1e-6)
    old = (app.timesteps(H, W, steps, "pam-bench") / 1000).double().numpy()
    assert np.abs(old - ref).max() > 0.04  # the earlier protocol used the packed length (mu 0.66)
    assert stage2_size((480, 720)) == (480, 640)


def test_dexycb_caption_column_reaches_the_sample_and_the_generator(tmp_path):
    from pam_bench.datasets.dexycb import SERIALS, SUBJECTS, DexYCB

    from .fixtures_dexycb import make_dexycb_clip

    subj, seq, ser = SUBJECTS[0], "20200709_141754", SERIALS[5]
    make_dexycb_clip(tmp_path / "dexycb", subj, seq, ser, n_frames=49, jpeg_quality=50)
    line = {"video_path": f"../data/dexycb_videos/{subj}/{seq}/{ser}/video.mp4", "response": "a hand lifts a mug"}
    (tmp_path / "dexycb_prompt.jsonl").write_text(json.dumps(line) + "\n")  # data/ beside data/dexycb
    ds = DexYCB(root=tmp_path / "dexycb")
    assert ds.caption_file == tmp_path / "dexycb_prompt.jsonl"
    s = ds.load(f"{subj}/{seq}/{ser}")
    assert s.meta["caption"] == "a hand lifts a mug"
    assert PAMGenerator()._caption(s) == "a hand lifts a mug"
    with pytest.raises(InputError, match="-d captions"):
        DexYCB(root=tmp_path / "dexycb", captions=tmp_path / "nope.jsonl")


@pytest.mark.slow
def test_bin_weights_refuse_every_pickle_gadget(tmp_path):
    """convert_ckpt.py's pytorch_model*.bin and controlnet.bin are read with torch.load(weights_only=True)."""
    from pam.stage2_appearance import read_state_dict

    from .test_safe_pickle import _torch_zip, gadget_corpus

    marker = tmp_path / "MARKER"
    corpus = sorted(gadget_corpus(marker).items())
    for name, body in corpus[::4]:  # every 4th gadget (the full corpus runs in test_safe_pickle's readers)
        f = tmp_path / f"{name.replace('/', '_')}.bin"
        f.write_bytes(_torch_zip(body))
        for read in (s3.read_bin, read_state_dict):
            with pytest.raises(InputError) as e:
                read(f)
            assert str(f) in str(e.value) and "\n" not in str(e.value)
        assert not marker.exists(), name


@pytest.mark.slow
def test_stage2_takes_the_samples_normal_map_masked_else_the_estimate(tmp_path, monkeypatch):
    from pam import stage2_appearance as s2
    from pam.pipeline import PAMPipeline
    from pam_bench.datasets.synthetic import SyntheticHOI

    ck = tiny.write_tiny_checkpoint(tmp_path / "PAM", mode="full")
    pipe = PAMPipeline(ck, mode="full", protocol="official", shared_prompt=True)
    ds = SyntheticHOI(n_clips=1, frames=9, height=32, width=48)
    smp = ds.load(ds.split().ids[0])
    conds = {n: smp.conditions[n].frames for n in ("depth", "seg", "hand")}
    seen = []
    real = s2.AppearancePipeline.__call__

    def spy(self, depth, normal, *a, **kw):
        seen.append((depth.copy(), normal.copy(), kw.get("protocol")))
        return real(self, depth, normal, *a, **kw)

    monkeypatch.setattr(s2.AppearancePipeline, "__call__", spy)
    pipe.first_frame(conds, seed=0)
    d, n, proto = seen[-1]
    assert proto == "official" and np.array_equal(n, s2.normals_from_depth_condition(d))  # the fallback
    normal = np.random.default_rng(0).integers(1, 256, (9, 32, 48, 3), dtype=np.uint8)
    ff = pipe.first_frame({**conds, "normal": normal}, seed=0)
    d, n, _ = seen[-1]
    bg = d.max(-1) <= 16
    assert bg.any() and (~bg).any()
    assert (n[bg] == 0).all() and np.array_equal(n[~bg], normal[0][~bg])  # -1 off the foreground
    assert ff.shape == (32, 48, 3) and ff.dtype == np.uint8


def test_sim_protocol_uses_the_tracking_video_and_a_gray_normal_video():
    """testing/evaluation_sim.py: tracking.mp4 and a gray normal video are VAE-encoded into their slots."""
    from diffusers import CogVideoXDPMScheduler

    motion = s3.MotionPipeline(tiny.tiny_transformer(0), tiny.tiny_cogvideox_vae(0),
                               CogVideoXDPMScheduler(**tiny.COGVIDEOX_SCHEDULER))
    rng = np.random.default_rng(1)
    T, H, W = tiny.TINY_FRAMES, tiny.TINY_HEIGHT, tiny.TINY_WIDTH
    first = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    conds = {n: rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8) for n in ("depth", "seg", "hand", "tracking")}
    shape = (1, 3, 4, H // 8, W // 8)
    with torch.no_grad():
        _, _, slots = motion.official_inputs(first, conds, ("depth", "seg", "hand"), conds["tracking"][0], shape,
                                             torch.Generator().manual_seed(42), torch.Generator().manual_seed(43),
                                             sim=True)
        g = torch.Generator().manual_seed(43)  # condition videos: tracking, the gray normal video, then the rest
        vae, sf = motion.vae, motion.vae.config.scaling_factor

        def enc(x):
            return (vae.encode(x).latent_dist.sample(generator=g) * sf).permute(0, 2, 1, 3, 4)

        tr = enc(torch.from_numpy(conds["tracking"]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1)
        gray = enc(torch.zeros(1, 3, T, H, W))
        _, _, ref_first = _official_reference(motion, first, conds, conds["tracking"][0], shape, 42)
    C = 4
    assert torch.equal(slots["tracking_maps"][:, :, :C], tr) and torch.equal(slots["normal_maps"][:, :, :C], gray)
    assert gray.abs().sum() > 0
    for slot in ("tracking_maps", "normal_maps"):
        assert torch.equal(slots[slot][:, :1, C:], ref_first[slot])


def test_sim_protocol_options(tmp_path):
    from pam.prompts import SIM_PROMPT

    with pytest.raises(ValueError, match="mode=full"):
        PAMGenerator(mode="i2v", protocol="sim")
    g = PAMGenerator(mode="full", protocol="sim")
    assert g.prompt_text == SIM_PROMPT and g.seed_policy == "official" and g.vae_tiling
    assert g._caption(type("S", (), {"id": "x", "meta": {"caption": "ignored"}})()) is None
    assert any("reuses it for every clip" in d for d in g._deviations())


@pytest.mark.parametrize("text, where", [
    ('{"video_path": "s/c/0", "response": "a hand"}\nnot json\n', ":2: not a JSON line"),
    ("[1, 2]\n", ":1: expected"),
    ('{"video_path": 3, "response": null}\n', ":1: expected"),
])
def test_malformed_caption_jsonl_is_one_line_naming_the_file_and_line(tmp_path, text, where):
    from pam.prompts import read_jsonl
    from pam_bench.errors import InputError

    f = tmp_path / "captions.jsonl"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        read_jsonl(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and where in msg and "\n" not in msg
