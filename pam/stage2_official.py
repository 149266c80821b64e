"""Stage II conventions of PAM's ``appearance_gen`` (XLabs x-flux code), as facts; no torch.

- Schedule: ``get_schedule(28, (W//8)*(H//8)//256)`` (``xflux_pipeline.py``): 29 times ``linspace(1, 0, 29)``
  shifted by ``exp(mu) / (exp(mu) + (1/t - 1))`` with ``mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (L - 256)``,
  where ``L`` is the latent AREA over 256 (an XLabs quirk; the packed token count would be 4x larger).
  At 480x640, L = 18 and mu = 0.4597. pam-bench's earlier protocol used diffusers' packed length (mu 0.6598).
- Resolution: 480x640 (``double_infer.py``), then stretched to 480x720 for Stage III (``evaluation_sim.py``
  hands the PIL image to the pipeline, whose VaeImageProcessor resizes it with Lanczos).
- Output: ``(127.5 * (x + 1)).byte()``: truncation, not rounding.
- Seeds: 42 + j for j < 3, one of the three picked by hand (``double_infer.py``). A hand pick cannot be
  reproduced: pam-bench runs the clip seed once (42 under the official seed policy, PAM's j = 0 candidate),
  or, given the picks (``-o stage2_picks=FILE``, :mod:`pam.stage2_picks`), seed + j per clip.
"""
from __future__ import annotations

STEPS, GUIDANCE = 28, 4.0
BASE_SHIFT, MAX_SHIFT, BASE_LEN, MAX_LEN = 0.5, 1.15, 256, 4096
OFFICIAL_SIZE = (480, 640)
STAGE3_SIZE = (480, 720)
OFFICIAL_SEED = 42
NORMALS = ("the sample's 'normal' video when it has one (set to -1 where the depth condition is black, as PAM "
           "masks its normals); else estimated from the depth condition (fallback: no dataset here has normals)")


def official_mu(height: int, width: int) -> float:
    """mu of XLabs' get_schedule called with (W//8)*(H//8)//256."""
    length = (width // 8) * (height // 8) // 256
    m = (MAX_SHIFT - BASE_SHIFT) / (MAX_LEN - BASE_LEN)
    return BASE_SHIFT + m * (length - BASE_LEN)


def stage2_size(stage3_size: tuple[int, int], multiple: int = 16) -> tuple[int, int]:
    """Stage II generation size: Stage III's height, width scaled by 640/720 (480x720 -> 480x640), rounded to
    the Flux multiple (tiny models: the nearest multiple of ``multiple``)."""
    h, w = stage3_size
    w2 = max(multiple, round(w * OFFICIAL_SIZE[1] / STAGE3_SIZE[1] / multiple) * multiple)
    return h, w2


def identity(protocol: str, per_clip_prompts: bool = False) -> dict:
    """Stage II's conventions for the run identity (the texts of runs without per-clip prompts are unchanged,
    so their identities are too)."""
    per_clip = "flux/prompt_embeds/<clip id>.safetensors, else flux/prompt_embeds.safetensors (shared)"
    if protocol in ("official", "sim"):
        return {"stage": "II (FLUX.1-dev + PAM double ControlNet)", "steps": STEPS, "guidance": GUIDANCE,
                "schedule": "get_schedule(28, (W//8)*(H//8)//256) (appearance_gen xflux_pipeline.py)",
                "size": "480x640 (Stage III size x 640/720), then stretched to Stage III's with PIL Lanczos "
                        "(diffusers' VaeImageProcessor in evaluation_sim.py)",
                "uint8": "truncation (.byte())", "normals": NORMALS,
                "prompt": per_clip if per_clip_prompts else
                "flux/prompt_embeds.safetensors (one shared FLUX prompt; PAM used per-frame captions)",
                "seeds": "the clip seed, one candidate (PAM: 42+j, j<3, one picked by hand; not reproducible)"}
    return {"stage": "II (FLUX.1-dev + PAM double ControlNet)", "steps": STEPS, "guidance": GUIDANCE,
            "schedule": "diffusers calculate_shift on the packed token count", "size": "Stage III's",
            "uint8": "rounding", "normals": NORMALS,
            "prompt": per_clip if per_clip_prompts else "flux/prompt_embeds.safetensors (shared)",
            "seeds": "the clip seed"}
