"""The PAM checkpoint folder (``--checkpoint PAM_DIR``): its layout, validation and hashing.

Cheap to import (no torch, no diffusers): ``pam.generator`` uses it in ``check_ready``/``identity``.

Layout (``write_tiny_checkpoint`` in tests/tiny_pam.py writes exactly this, only smaller)::

    PAM_DIR/
      transformer/config.json                       Stage III: PAM's motion transformer (CogVideoX-5B-I2V + condition
      transformer/diffusion_pytorch_model.safetensors   branch); ``_class_name: CogVideoXTransformer3DModelTracking``
                                                    as the official save writes it; sharded checkpoints use
                                                    diffusion_pytorch_model.safetensors.index.json + its shards
      vae/config.json, vae/diffusion_pytorch_model.safetensors      CogVideoX-5B-I2V's AutoencoderKLCogVideoX
      scheduler/scheduler_config.json               CogVideoX-5B-I2V's scheduler config (run as CogVideoXDPMScheduler,
                                                    timestep_spacing="trailing")
      prompt_embeds.safetensors                     T5 embeddings: prompt_embeds [1, 226, 4096] and
                                                    negative_prompt_embeds [1, 226, 4096]
      prompt_embeds/<video_id>.safetensors          optional per-video prompts (PAM captions every clip)
      flux/                                         only for mode="full" (Stage II):
        transformer/ (config.json + weights)        FLUX.1-dev FluxTransformer2DModel (diffusers folder)
        vae/ (config.json + weights)                FLUX.1-dev AutoencoderKL
        scheduler/scheduler_config.json             FLUX.1-dev FlowMatchEulerDiscreteScheduler
        controlnet.safetensors | controlnet.bin     PAM's double ControlNet, official XLabs key layout
                                                    (controlnet1.* / controlnet2.*; .bin read with weights_only)
        prompt_embeds.safetensors                   prompt_embeds [1, L, 4096] (T5) + pooled_prompt_embeds [1, 768]

None of these files is pinned: their sha256 is computed (and cached by path, size and mtime) and recorded
in the generator identity.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pam_bench.errors import InputError, MissingResource

_COGVIDEOX = ("THUDM/CogVideoX-5b-I2V (Hugging Face): copy its {sub}/ folder to {dest}")
_FLUX = ("black-forest-labs/FLUX.1-dev in diffusers format (Hugging Face, gated licence): copy its {sub}/ "
         "folder to {dest}")


@dataclass(frozen=True)
class Part:
    """One required entry: a file, or a diffusers model folder (config.json + weights)."""

    rel: str
    kind: str  # "model" | "file" | "any-of"
    how: str
    alternatives: tuple[str, ...] = ()


def layout(mode: str) -> list[Part]:
    """The required entries for ``mode`` ('i2v' or 'full')."""
    if mode not in ("i2v", "full"):
        raise ValueError(f"mode must be 'i2v' or 'full', got {mode!r}")
    parts = [
        Part("transformer", "model",
             "PAM's released Stage III motion checkpoint (github.com/GasaiYU/PAM -> huggingface.co/GasaiYU/PAM; "
             "a DeepSpeed checkpoint is first converted with the repo's convert_ckpt.py): the folder with "
             "config.json + diffusion_pytorch_model*.safetensors goes to {dest}"),
        Part("vae", "model", _COGVIDEOX.format(sub="vae", dest="{dest}")),
        Part("scheduler/scheduler_config.json", "file", _COGVIDEOX.format(sub="scheduler", dest="{dest}")),
        Part("prompt_embeds.safetensors", "file",
             "precomputed T5 prompt embeddings (keys prompt_embeds, negative_prompt_embeds, each [1,226,4096]); "
             "write them once with pam.checkpoint.write_prompt_embeds(...) from CogVideoX-5b-I2V's "
             "text_encoder/ and tokenizer/ to {dest}"),
    ]
    if mode == "full":
        parts += [
            Part("flux/transformer", "model", _FLUX.format(sub="transformer", dest="{dest}")),
            Part("flux/vae", "model", _FLUX.format(sub="vae", dest="{dest}")),
            Part("flux/scheduler/scheduler_config.json", "file", _FLUX.format(sub="scheduler", dest="{dest}")),
            Part("flux/controlnet.safetensors", "any-of",
                 "PAM's Stage II double ControlNet (controlnet.bin as appearance_gen/double_controlnet.py saves "
                 "it; huggingface.co/GasaiYU/PAM appearance_gen) copied to {dest} (or .bin alongside)",
                 alternatives=("flux/controlnet.safetensors", "flux/controlnet.bin")),
            Part("flux/prompt_embeds.safetensors", "file",
                 "precomputed FLUX prompt embeddings (keys prompt_embeds [1,L,4096] from T5-XXL, "
                 "pooled_prompt_embeds [1,768] from CLIP-L) written to {dest}"),
        ]
    return parts


def _model_files(folder: Path) -> list[Path]:
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, OSError) as e:
            raise InputError(index, f"not a safetensors index ({e})") from None
        return [folder / "config.json", index, *(folder / n for n in names)]
    return [folder / "config.json", folder / "diffusion_pytorch_model.safetensors"]


def required_files(root: Path, mode: str) -> list[Path]:
    """Every file ``mode`` reads, in a stable order (raises MissingResource for the first missing one)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingResource(f"PAM checkpoint folder {root}",
                              "create it with the layout in docs/pam_gpu.md (transformer/, vae/, scheduler/, "
                              "prompt_embeds.safetensors[, flux/]); tests/tiny_pam.py (write_tiny_checkpoint) writes a "
                              "tiny random one for tests")
    files: list[Path] = []
    for part in layout(mode):
        dest = root / part.rel
        if part.kind == "model":
            for f in _model_files(dest):
                _require(f, part.how.format(dest=dest), mode)
                files.append(f)
        elif part.kind == "any-of":
            found = [root / a for a in part.alternatives if (root / a).is_file()]
            if not found:
                _require(dest, part.how.format(dest=dest), mode)
            files.append(found[0])
        else:
            _require(dest, part.how.format(dest=dest), mode)
            files.append(dest)
    return files


def _require(f: Path, how: str, mode: str) -> None:
    if not f.is_file():
        raise MissingResource(f"PAM checkpoint file {f} (mode {mode})", how + " (size/sha256 not pinned: "
                              "the sha256 is recorded in the run identity)")
    if f.stat().st_size == 0:
        raise InputError(f, "empty file")


def controlnet_file(root: Path) -> Path:
    for a in ("flux/controlnet.safetensors", "flux/controlnet.bin"):
        if (Path(root) / a).is_file():
            return Path(root) / a
    raise MissingResource(f"{Path(root) / 'flux/controlnet.safetensors'}", layout("full")[-2].how.format(
        dest=Path(root) / "flux/controlnet.safetensors"))


# --- hashing with a (path, size, mtime) cache ---------------------------------------------------------

def _cache_path() -> Path:
    from pam_bench.weights import home

    return home() / "hash_cache.json"


def cached_sha256(path: Path) -> str:
    """sha256 of a file, cached by (absolute path, size, mtime_ns) so multi-GB files are hashed once."""
    from pam_bench.weights import sha256_file

    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = _cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = sha256_file(p)
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{p}|")}
    cache[key] = digest
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache dir only costs re-hashing
    return digest


def checkpoint_hashes(root: Path, mode: str) -> dict[str, str]:
    """{relative path: sha256} of every file ``mode`` reads."""
    root = Path(root)
    files = required_files(root, mode)
    per_video = root / "prompt_embeds"
    if per_video.is_dir():
        files += sorted(per_video.glob("*.safetensors"))
    return {str(f.relative_to(root)): cached_sha256(f) for f in files}


# --- prompt embeddings ----------------------------------------------------------------------------------

#: The negative prompt of PAM's evaluation script (testing/evaluation_comb_dexycb.py).
NEGATIVE_PROMPT = ("The video is not of a high quality, it has a low resolution. Watermark present in each frame. "
                   "The background is solid. Strange body and strange trajectory. Distortion.")


def write_prompt_embeds(text_encoder_dir, tokenizer_dir, prompt: str, out_path,
                        negative_prompt: str = NEGATIVE_PROMPT, max_length: int = 226, device: str = "cpu"):
    """Encode a prompt once with CogVideoX's T5 (local folders only) and save ``prompt_embeds.safetensors``.

    Mirrors CogVideoX's ``_get_t5_prompt_embeds``: pad to ``max_length``, truncate, last hidden state.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import T5EncoderModel, T5Tokenizer

    tok = T5Tokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    enc = T5EncoderModel.from_pretrained(str(text_encoder_dir), local_files_only=True).to(device).eval()

    def embed(text: str):
        ids = tok([text], padding="max_length", max_length=max_length, truncation=True,
                  add_special_tokens=True, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            return enc(ids)[0].float().cpu().contiguous()

    save_file({"prompt_embeds": embed(prompt), "negative_prompt_embeds": embed(negative_prompt)}, str(out_path))
    return Path(out_path)
