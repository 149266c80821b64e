"""Stage III: PAM's condition branch on CogVideoX (tiny random configs, CPU, seconds)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusers import CogVideoXDPMScheduler, CogVideoXTransformer3DModel  # noqa: E402

from tests import tiny_pam as tiny  # noqa: E402
from pam import stage3_motion as s3  # noqa: E402
from pam_bench.errors import InputError  # noqa: E402


def _inputs(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    cfg = tiny.TINY_COGVIDEOX_TRANSFORMER
    shape = (batch, 3, cfg["in_channels"], cfg["sample_height"], cfg["sample_width"])
    x = torch.randn(shape, generator=g)
    enc = torch.randn(batch, cfg["max_text_seq_length"], cfg["text_embed_dim"], generator=g)
    conds = {s: torch.randn(shape, generator=g) for s in s3.CONDITION_SLOTS}
    return x, enc, torch.tensor([500] * batch), conds


def _base_and_pam(seed=0):
    torch.manual_seed(seed)
    base = CogVideoXTransformer3DModel(**tiny.TINY_COGVIDEOX_TRANSFORMER).eval()
    pam = s3.PAMCogVideoXTransformer3DModel(num_tracking_blocks=1, **tiny.TINY_COGVIDEOX_TRANSFORMER).eval()
    missing, unexpected = pam.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected
    assert all(k.startswith(("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear."))
               for k in missing)
    return base, pam


def _randomise_branch(model, seed=1, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in [*model.combine_linears, model.initial_combine_linear]:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * scale)


def test_zero_initialised_branch_equals_base_model():
    base, pam = _base_and_pam()
    # freshly built: the branch linears are zero
    for lin in [*pam.combine_linears, pam.initial_combine_linear]:
        assert not lin.weight.any() and not lin.bias.any()
    x, enc, t, conds = _inputs()
    with torch.no_grad():
        ref = base(x, enc, t, return_dict=False)[0]
        out = pam(x, enc, t, return_dict=False, **conds)[0]
    assert out.shape == ref.shape == (2, 3, 4, 4, 6)
    assert torch.equal(out, ref)


def test_branch_architecture_matches_pam():
    pam = s3.PAMCogVideoXTransformer3DModel(num_tracking_blocks=2, **tiny.TINY_COGVIDEOX_TRANSFORMER)
    inner = 2 * 16
    assert len(pam.transformer_blocks_copy) == 2 and len(pam.combine_linears) == 2
    assert pam.initial_combine_linear.in_features == 5 * inner and pam.initial_combine_linear.out_features == inner
    assert all(lin.in_features == lin.out_features == inner for lin in pam.combine_linears)
    trainable = {id(p) for p in pam.trainable_parameters()}
    n_branch = sum(p.numel() for n, p in pam.named_parameters() if n.startswith(
        ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")))
    assert sum(p.numel() for p in pam.parameters() if id(p) in trainable) == n_branch
    with pytest.raises(ValueError):
        s3.PAMCogVideoXTransformer3DModel(num_tracking_blocks=3, **tiny.TINY_COGVIDEOX_TRANSFORMER)


def test_conditions_enter_through_the_branch_and_none_means_zeros():
    _, pam = _base_and_pam()
    _randomise_branch(pam)
    x, enc, t, conds = _inputs()
    with torch.no_grad():
        out = pam(x, enc, t, return_dict=False, **conds)[0]
        changed = pam(x, enc, t, return_dict=False, **{**conds, "depth_maps": conds["depth_maps"] + 1})[0]
        none = pam(x, enc, t, return_dict=False, **{**conds, "seg_masks": None})[0]
        zeros = pam(x, enc, t, return_dict=False, **{**conds, "seg_masks": torch.zeros_like(x)})[0]
    assert not torch.allclose(out, changed)
    assert torch.equal(none, zeros)


def test_save_load_round_trip_is_bit_identical_and_keeps_the_official_class_name(tmp_path):
    model = tiny.tiny_transformer(3)
    _randomise_branch(model)
    s3.save_transformer(model, tmp_path / "tr")
    cfg = json.loads((tmp_path / "tr" / "config.json").read_text())
    assert cfg["_class_name"] == "CogVideoXTransformer3DModelTracking" and cfg["num_tracking_blocks"] == 1
    loaded, info = s3.load_transformer(tmp_path / "tr")
    assert info["init"] == "checkpoint"
    a, b = model.state_dict(), loaded.state_dict()
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    x, enc, t, conds = _inputs(batch=1)
    with torch.no_grad():
        assert torch.equal(model(x, enc, t, return_dict=False, **conds)[0],
                           loaded(x, enc, t, return_dict=False, **conds)[0])


def test_plain_cogvideox_checkpoint_is_refused_unless_initialised_from_base(tmp_path):
    torch.manual_seed(0)
    base = CogVideoXTransformer3DModel(**tiny.TINY_COGVIDEOX_TRANSFORMER).eval()
    base.save_pretrained(tmp_path / "base", safe_serialization=True)
    with pytest.raises(InputError, match="without PAM's condition"):
        s3.load_transformer(tmp_path / "base")
    pam, info = s3.load_transformer(tmp_path / "base", init_from_base=True, num_tracking_blocks=1)
    assert info["init"] == "copies-from-base"
    assert torch.equal(pam.transformer_blocks_copy[0].attn1.to_q.weight, base.transformer_blocks[0].attn1.to_q.weight)
    x, enc, t, conds = _inputs(batch=1)
    with torch.no_grad():
        assert torch.equal(pam(x, enc, t, return_dict=False, **conds)[0], base(x, enc, t, return_dict=False)[0])


def test_corrupt_and_mismatched_weights_name_the_file(tmp_path):
    model = tiny.tiny_transformer(0)
    d = s3.save_transformer(model, tmp_path / "tr")
    (d / s3.WEIGHTS_NAME).write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="safetensors"):
        s3.load_transformer(d)
    s3.save_transformer(model, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_tracking_blocks"] = 2
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="num_tracking_blocks=2 but the weights hold 1"):
        s3.load_transformer(d)
    cfg["num_tracking_blocks"] = 1
    cfg["num_layers"] = 3  # the weights hold 2 main blocks
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="missing"):
        s3.load_transformer(d)


def test_training_condition_dropout_zeroes_exactly_the_dropped_cues():
    g = torch.Generator().manual_seed(0)
    lat = {s: torch.randn(1, 3, 8, 4, 6, generator=g) + 1 for s in ("depth_maps", "seg_masks", "hand_keypoints")}
    out, keep = s3.apply_condition_dropout(lat, torch.Generator().manual_seed(5))
    for s in lat:
        assert torch.equal(out[s], lat[s]) if keep[s] else not out[s].any()
    # keep rate: binomial(n, 0.8) within 4 sigma
    gen = torch.Generator().manual_seed(1)
    n = 3000
    kept = sum(sum(s3.condition_keep_mask(["a", "b"], gen).values()) for _ in range(n // 2))
    assert abs(kept - 0.8 * n) < 4 * np.sqrt(n * 0.8 * 0.2)


@pytest.fixture(scope="module")
def motion():
    model = tiny.tiny_transformer(0)
    _randomise_branch(model, scale=0.2)
    sched = CogVideoXDPMScheduler(**tiny.COGVIDEOX_SCHEDULER)
    return s3.MotionPipeline(model, tiny.tiny_cogvideox_vae(0), sched)


def _clip(seed):
    rng = np.random.default_rng(seed)
    T, H, W = tiny.TINY_FRAMES, tiny.TINY_HEIGHT, tiny.TINY_WIDTH
    first = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    conds = {n: rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8) for n in ("depth", "seg", "hand")}
    return first, conds


def test_pipeline_condition_subset_zeroes_unselected_slots(motion):
    first, conds = _clip(0)
    g = torch.Generator().manual_seed(0)
    inp = motion.condition_inputs(conds, ("depth", "hand"), 3, (1, 3, 4, 4, 6), g)
    assert list(inp) == list(s3.CONDITION_SLOTS)
    for slot in ("tracking_maps", "normal_maps", "seg_masks"):
        assert inp[slot].shape == (1, 3, 8, 4, 6) and not inp[slot].any()
    for slot in ("depth_maps", "hand_keypoints"):
        assert inp[slot][:, :, :4].any()  # the video latent
        assert inp[slot][:, :1, 4:].any() and not inp[slot][:, 1:, 4:].any()  # first-frame latent, zero padded


def test_pipeline_runs_end_to_end_and_only_selected_conditions_matter(motion):
    first, conds = _clip(1)
    pe = torch.randn(1, tiny.TINY_TEXT_LEN, 32, generator=torch.Generator().manual_seed(0))
    video = motion(first, conds, ("depth", "seg", "hand"), pe, -pe, seed=3, steps=2)  # 2 steps, CFG 6
    assert video.shape == (tiny.TINY_FRAMES, tiny.TINY_HEIGHT, tiny.TINY_WIDTH, 3) and video.dtype == np.uint8

    def run(c, sel, seed=3):  # one step without CFG is enough to see what reaches the latents
        return motion(first, c, sel, pe, None, seed=seed, steps=1, guidance=1.0, output="latent")

    ref = run(conds, ("depth", "hand"))
    other_seg = {**conds, "seg": 255 - conds["seg"]}
    assert torch.equal(ref, run(other_seg, ("depth", "hand")))  # deterministic, and an unselected cue is ignored
    assert not torch.equal(ref, run(conds, ("depth", "hand"), seed=4))
    other_depth = {**conds, "depth": 255 - conds["depth"]}
    assert not torch.equal(ref, run(other_depth, ("depth", "hand")))
    assert not torch.equal(ref, run(conds, ("depth", "seg", "hand")))


def test_pipeline_rejects_wrong_sizes(motion):
    first, conds = _clip(2)
    pe = torch.zeros(1, tiny.TINY_TEXT_LEN, 32)
    with pytest.raises(ValueError, match="first frame"):
        motion(first[:16], conds, ("depth",), pe, None, seed=0, steps=1)
    with pytest.raises(ValueError, match="condition depth"):
        motion(first, {**conds, "depth": conds["depth"][:5]}, ("depth",), pe, None, seed=0, steps=1)
