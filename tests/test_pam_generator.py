"""PAMGenerator: checkpoint layout and errors, identity, generate, and the harness end to end (tiny)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pam import checkpoint as ckpt
from pam.generator import PAMGenerator
from pam_bench.errors import InputError, MissingResource
from pam_bench.weights import sha256_file

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tests.tiny_pam import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("pam") / "PAM_DIR", mode="full")


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))  # the hash cache goes here


def test_import_is_cheap_and_registry_entry():
    code = "import sys, pam.generator; print(any(m.startswith(('diffusers', 'torch')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
    from pam_bench.registry import REGISTRY

    e = REGISTRY.get("method", "pam")
    assert e.target == "pam.generator:PAMGenerator" and e.load() is PAMGenerator
    assert PAMGenerator.needs == ("first_frame", "conditions")


def _all_files(parts, text=False):
    return sorted(f for fs in ckpt.files_of(parts, text).values() for f in fs)


def test_tiny_checkpoint_is_a_release_folder_and_every_file_is_read(tiny_dir):
    files = {p for p in tiny_dir.rglob("*") if p.is_file()}
    full = ckpt.resolve(tiny_dir, mode="full")
    assert set(_all_files(full)) == files
    assert full.transformer == tiny_dir / "transformer" and full.vae == tiny_dir / "vae"
    i2v = ckpt.resolve(tiny_dir, mode="i2v")
    assert set(_all_files(i2v)) == {f for f in files if "flux" not in f.relative_to(tiny_dir).parts}


def test_every_missing_file_is_named(tiny_dir, tmp_path):
    with pytest.raises(MissingResource, match="--checkpoint"):
        PAMGenerator().check_ready()
    with pytest.raises(MissingResource, match="PAM checkpoint folder"):
        PAMGenerator(checkpoint=tmp_path / "nowhere").check_ready()
    for f in _all_files(ckpt.resolve(tiny_dir, mode="full")):
        rel = f.relative_to(tiny_dir)
        if rel.name == "prompt_embeds.safetensors" and len(rel.parts) == 1:
            continue  # the shared precomputed prompt is optional (a prompt can be text)
        copy = tmp_path / f"c_{str(rel).replace('/', '_')}"
        shutil.copytree(tiny_dir, copy)
        (copy / rel).unlink()
        with pytest.raises((MissingResource, InputError)) as e:
            PAMGenerator(checkpoint=copy, mode="full").check_ready()
        msg = str(e.value)
        want = {"vae": "vae/", "scheduler": "scheduler/"}.get(rel.parts[0], str(rel.parent if rel.parts[0] ==
                                                                              "transformer" else rel))
        if rel.parts[0] == "transformer" and rel.name != "config.json":
            want = "transformer"
        if rel.parts[:2] == ("flux", "controlnet.safetensors"):
            want = "controlnet"
        assert want in msg, msg
        hint = {"vae": "CogVideoX-5b-I2V", "scheduler": "CogVideoX-5b-I2V"}.get(rel.parts[0])
        if rel.parts[0] == "flux" and rel.parts[1] in ("transformer", "vae", "scheduler"):
            hint = "FLUX.1-dev"
        if hint:
            assert hint in msg, msg
        if rel.parts[0] != "flux":  # i2v mode needs it too
            with pytest.raises((MissingResource, InputError)):
                PAMGenerator(checkpoint=copy, mode="i2v").check_ready()
        else:
            PAMGenerator(checkpoint=copy, mode="i2v").check_ready()  # i2v does not read flux/
        shutil.rmtree(copy)


def test_bad_options_and_plain_transformer(tiny_dir, tmp_path):
    from diffusers import CogVideoXTransformer3DModel

    from tests import tiny_pam as tiny

    with pytest.raises(ValueError, match="mode"):
        PAMGenerator(mode="t2v")
    with pytest.raises(ValueError, match="conditions"):
        PAMGenerator(conditions="depth,normal")
    with pytest.raises(ValueError, match="unknown option"):
        PAMGenerator(temperature=1)
    with pytest.raises(ValueError, match="protocol"):
        PAMGenerator(protocol="paper")
    with pytest.raises(ValueError, match="seed_policy"):
        PAMGenerator(seed_policy="random")
    copy = tmp_path / "plain"
    shutil.copytree(tiny_dir, copy)
    shutil.rmtree(copy / "transformer")
    CogVideoXTransformer3DModel(**tiny.TINY_COGVIDEOX_TRANSFORMER).save_pretrained(copy / "transformer")
    with pytest.raises(InputError, match="not a PAM motion transformer"):
        PAMGenerator(checkpoint=copy).check_ready()


def test_identity_hashes_files_once(tiny_dir, monkeypatch):
    g = PAMGenerator(checkpoint=tiny_dir, mode="i2v", conditions="hand,depth", steps=3)
    ident = g.identity()
    assert ident["conditions"] == ["depth", "hand"] and ident["steps"] == 3 and ident["mode"] == "i2v"
    assert ident["dtype"] == "fp32" and ident["guidance"] == 6.0  # auto on CPU
    assert ident["protocol"] == "official" and ident["vae_tiling_slicing"] is True and ident["fps"] == 15.0
    assert ident["seed_policy"]["policy"] == "official" and ident["seed_policy"]["seed"] == 42
    hashes = ident["checkpoint_sha256"]
    assert hashes["transformer"]["diffusion_pytorch_model.safetensors"] == \
        sha256_file(tiny_dir / "transformer/diffusion_pytorch_model.safetensors")
    assert "flux" not in hashes

    def boom(_):
        raise AssertionError("re-hashed a cached file")

    monkeypatch.setattr("pam_bench.weights.sha256_file", boom)
    assert PAMGenerator(checkpoint=tiny_dir, mode="i2v").identity()["checkpoint_sha256"] == hashes


@pytest.fixture(scope="module")
def sample():
    from pam_bench.datasets.synthetic import SyntheticHOI

    ds = SyntheticHOI(n_clips=1, frames=7, height=48, width=80)
    return ds.load(ds.split().ids[0])


def test_generate_returns_the_sample_shape_and_is_seeded(tiny_dir, sample):
    g = PAMGenerator(checkpoint=tiny_dir, mode="i2v", steps=1, protocol="pam-bench")
    a = g.generate(sample, seed=11)
    assert a.frames.shape == sample.video.frames.shape and a.fps == sample.video.fps
    assert np.array_equal(a.frames, g.generate(sample, seed=11).frames)
    assert not np.array_equal(a.frames, g.generate(sample, seed=12).frames)  # per-clip seeds
    off = PAMGenerator(checkpoint=tiny_dir, mode="i2v", steps=1, shared_prompt=True)
    off._pipe = g.pipeline()  # same weights; the official protocol ignores the clip seed (42 for every clip)
    off._pipe.protocol, off._pipe.shared_prompt = "official", True
    b = off.generate(sample, seed=11)
    assert np.array_equal(b.frames, off.generate(sample, seed=12).frames) and b.fps == 15.0
    no_hand = type(sample)(id=sample.id, video=sample.video, conditions={"depth": sample.conditions["depth"]})
    with pytest.raises(InputError, match="hand"):
        g.generate(no_hand, seed=0)


def test_harness_end_to_end(tiny_dir, tmp_path):
    from pam_bench.run.loop import evaluate

    out = tmp_path / "run"
    res = evaluate(method="pam", dataset="synthetic", metrics=("ssim", "psnr"), out=out, progress=False,
                   method_options={"checkpoint": str(tiny_dir), "steps": 1, "mode": "full",
                                   "conditions": "depth,hand"},
                   dataset_options={"n_clips": 1, "frames": 9, "height": 48, "width": 64})
    assert res["n_evaluated"] == 1
    for m in ("ssim", "psnr"):
        assert res["metrics"][m]["value"] is not None and np.isfinite(res["metrics"][m]["value"])
    videos = list((out / "videos").glob("*.mp4"))
    assert len(videos) == 1
    from pam_bench.video import read_video

    v = read_video(videos[0])
    assert v.frames.shape == (9, 48, 64, 3)
    run = json.loads((out / "run.json").read_text())
    assert "checkpoint_sha256" in json.dumps(run)


def test_three_stages_from_a_pose_sequence(tiny_dir):
    """Stage I (built-in generator, rendered) -> Stage II (first frame) -> Stage III (video)."""
    from pam import stage1_pose as s1
    from pam.pipeline import PAMPipeline

    pipe = PAMPipeline(tiny_dir, mode="full")
    assert pipe.size == (32, 48) and pipe.num_frames == 9
    seq = s1.builtin_sequence(9)
    video, conds, sim = pipe.from_pose(seq, seed=0, steps=1)
    assert video.shape == (9, 32, 48, 3) and video.dtype == np.uint8
    assert set(conds) == {"depth", "seg", "hand"} and sim.frames.shape == (9, 32, 48, 3)
    assert (conds["seg"].frames.max(-1) > 0).any()


def test_per_clip_embeddings_are_part_of_the_identity(tiny_dir, tmp_path):
    copy = tmp_path / "ck"
    shutil.copytree(tiny_dir, copy)
    base = PAMGenerator(checkpoint=copy, mode="i2v").identity()["checkpoint_sha256"]
    assert "prompt_embeds_per_clip" not in base
    (copy / "prompt_embeds" / "s-01" / "seq").mkdir(parents=True)  # clip ids contain '/'
    shutil.copy(copy / "prompt_embeds.safetensors", copy / "prompt_embeds" / "s-01" / "seq" / "836.safetensors")
    h = PAMGenerator(checkpoint=copy, mode="i2v").identity()["checkpoint_sha256"]
    assert h["prompt_embeds_per_clip"] == {"s-01/seq/836.safetensors": sha256_file(copy / "prompt_embeds.safetensors")}


def _spy_stage2(monkeypatch):
    from pam.pipeline import PAMPipeline

    seen = []
    real = PAMPipeline.first_frame

    def spy(self, conditions, seed, normals=None, sample_id=None):
        seen.append((seed, sample_id))
        return real(self, conditions, seed, normals, sample_id=sample_id)

    monkeypatch.setattr(PAMPipeline, "first_frame", spy)
    return seen


def test_hand_picked_stage2_candidates_come_from_the_picks_file(tiny_dir, sample, tmp_path, monkeypatch):
    """-o stage2_picks: Stage II of a clip runs its seed + j (PAM: 42 + j, picked by hand), Stage III keeps the
    clip's seed; the file is hashed into the identity; a clip it lacks, or a bad pick, names the file."""
    from pam_bench.errors import OptionError

    picks = tmp_path / "picks.json"
    picks.write_text(json.dumps({sample.id: 2, "other/clip": 0}))
    seen = _spy_stage2(monkeypatch)
    g = PAMGenerator(checkpoint=tiny_dir, mode="full", steps=1, protocol="official", shared_prompt=True,
                     stage2_picks=picks)
    v = g.generate(sample, seed=5)
    assert seen[-1] == (42 + 2, sample.id)  # the official seed policy: 42 for every clip, + the pick
    plain = PAMGenerator(checkpoint=tiny_dir, mode="full", steps=1, protocol="official", shared_prompt=True)
    plain._pipe = g.pipeline()
    assert not np.array_equal(plain.generate(sample, seed=5).frames, v.frames) and seen[-1] == (42, sample.id)
    ident = g.identity()["first_frame"]["seeds"]["picks"]
    assert ident["sha256"] == sha256_file(picks) and ident["clips"] == 2
    assert "picks" not in json.dumps(plain.identity()["first_frame"]["seeds"])
    picks.write_text(json.dumps({"other/clip": 1}))
    with pytest.raises(InputError, match=f"picks.json: has no pick for clip {sample.id}"):
        PAMGenerator(checkpoint=tiny_dir, mode="full", steps=1, shared_prompt=True,
                     stage2_picks=picks).generate(sample, seed=5)
    for bad, why in (("[1, 2]", "non-empty JSON object"), ('{"a": 30}', "0..29"), ('{"a": true}', "0..29"),
                     ('{"a": 1.5}', "0..29"), ("{", "is not JSON")):
        picks.write_text(bad)
        with pytest.raises(InputError, match=f"picks.json.*{why}"):
            PAMGenerator(checkpoint=tiny_dir, mode="full", stage2_picks=picks)
    with pytest.raises(InputError, match="no such Stage II picks file"):
        PAMGenerator(checkpoint=tiny_dir, mode="full", stage2_picks=tmp_path / "none.json")
    with pytest.raises(OptionError, match="pam option stage2_picks: only mode=full"):
        PAMGenerator(checkpoint=tiny_dir, mode="i2v", stage2_picks=picks)


def test_per_clip_flux_prompts_are_used_first_and_hashed(tiny_dir, sample, tmp_path, monkeypatch):
    """flux/prompt_embeds/<clip id>.safetensors is the clip's Stage II prompt (else the shared one); its hash
    is in the identity; a clip id cannot reach outside the folder."""
    import torch
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "ck"
    shutil.copytree(tiny_dir, copy)
    shared = load_file(str(copy / "flux" / "prompt_embeds.safetensors"))
    mine = copy / "flux" / "prompt_embeds" / f"{sample.id}.safetensors"
    mine.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.randn(v.shape, generator=torch.Generator().manual_seed(7)) for k, v in shared.items()},
              str(mine))
    g = PAMGenerator(checkpoint=copy, mode="full", steps=1, protocol="pam-bench")
    pipe = g.pipeline()
    pe, _ = pipe.flux_prompt(sample.id)
    assert torch.equal(pe, load_file(str(mine))["prompt_embeds"])
    assert torch.equal(pipe.flux_prompt("another/clip")[0], shared["prompt_embeds"])
    outside = copy / "flux" / "evil.safetensors"
    shutil.copy(mine, outside)
    assert torch.equal(pipe.flux_prompt("../evil")[0], shared["prompt_embeds"])  # not read from outside
    ident = g.identity()
    assert "prompt_embeds/" in ident["first_frame"]["prompt"]
    rel = str(mine.relative_to(copy / "flux"))
    assert ident["checkpoint_sha256"]["flux"][rel] == sha256_file(mine)
    outside.unlink()
    (copy / "flux" / "prompt_embeds.safetensors").unlink()  # per-clip only: a clip without a file names the folder
    g2 = PAMGenerator(checkpoint=copy, mode="full", steps=1, protocol="pam-bench")
    with pytest.raises(InputError, match="prompt_embeds: has no another/clip.safetensors"):
        g2.pipeline().flux_prompt("another/clip")


def test_a_damaged_prompt_embedding_file_is_one_error_naming_it(tiny_dir, sample, tmp_path):
    """A truncated or non-safetensors per-clip prompt file (Stage III or FLUX) is an InputError naming it."""
    copy = tmp_path / "ck"
    shutil.copytree(tiny_dir, copy)
    bad_flux = copy / "flux" / "prompt_embeds" / f"{sample.id}.safetensors"
    bad_flux.parent.mkdir(parents=True, exist_ok=True)
    bad_flux.write_bytes((copy / "flux" / "prompt_embeds.safetensors").read_bytes()[:40])  # truncated
    bad_cog = copy / "prompt_embeds" / f"{sample.id}.safetensors"
    bad_cog.parent.mkdir(parents=True, exist_ok=True)
    bad_cog.write_bytes(b"\x00" * 8 + b"not a header")
    pipe = PAMGenerator(checkpoint=copy, mode="full", steps=1, protocol="pam-bench").pipeline()
    for read, f in ((lambda: pipe.flux_prompt(sample.id), bad_flux), (lambda: pipe.prompt(sample.id), bad_cog)):
        with pytest.raises(InputError, match="not a readable prompt embedding file") as e:
            read()
        assert str(f) in str(e.value) and "\n" not in str(e.value)
