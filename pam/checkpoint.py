"""Where PAM's parts come from (``--checkpoint`` + ``-o base=``): resolution, validation and hashing.

Cheap to import (no torch, no diffusers): ``pam.generator`` uses it in ``check_ready``/``identity``.

``--checkpoint`` takes PAM's Stage III motion transformer as the user holds it (facts from GasaiYU/PAM):

- **A. the training save hook** (``training/cogvideox_image_to_video_comb_sft.py``): ``checkpoint-N/`` holding
  ``transformer/`` with ``config.json`` (``_class_name: CogVideoXTransformer3DModelTracking`` and
  ``num_tracking_blocks``) and diffusers safetensors (one file, or shards + an index);
- **B. ``convert_ckpt.py`` output** (what the official README tells users to make from a DeepSpeed checkpoint):
  a folder with THUDM's *plain* ``CogVideoXTransformer3DModel`` config.json (no ``num_tracking_blocks``) and
  ``diffusion_pytorch_model-XXXXX-of-YYYYY.safetensors`` shards + ``diffusion_pytorch_model.safetensors.index.json``
  (``pytorch_model*.bin`` + ``pytorch_model.bin.index.json`` without ``--safe_serialization``); the trained
  branch is fp32, the frozen weights bf16. The branch is recognised from the weight names
  (``transformer_blocks_copy.N.*``, ``combine_linears.N.*``, ``initial_combine_linear.*``), and the number of
  copied blocks is counted from them;
- a folder holding one of these as ``transformer/`` (a release or pipeline folder, or ``checkpoint-N/``).

A raw DeepSpeed/accelerate folder (``latest``, ``global_step*/``, ``*_model_states.pt``) without
``transformer/`` is refused with a one-line error naming ``convert_ckpt.py``.

The CogVideoX-5B-I2V parts (``vae/``, ``scheduler/``, ``text_encoder/``, ``tokenizer/``) are taken from the
checkpoint folder when it holds them, else from a local snapshot of THUDM/CogVideoX-5b-I2V given with
``-o base=DIR``. ``text_encoder/`` + ``tokenizer/`` are read only to encode prompt text (``pam.prompts``).
``mode=full`` also needs ``flux/`` (next to ``transformer/`` or ``-o flux=DIR``)::

    flux/transformer/, flux/vae/, flux/scheduler/scheduler_config.json   FLUX.1-dev (diffusers layout)
    flux/controlnet.safetensors | flux/controlnet.bin                    PAM's double ControlNet (XLabs keys)
    flux/prompt_embeds.safetensors                                       prompt_embeds + pooled_prompt_embeds
    flux/prompt_embeds/<clip id>.safetensors                             the same, per clip (used first)

Precomputed CogVideoX prompt embeddings stay accepted: ``prompt_embeds.safetensors`` (shared) and
``prompt_embeds/<clip id>.safetensors`` (per clip; ids may contain ``/``) next to ``transformer/``.

No file is pinned: each file's sha256 is computed (cached by path, size and mtime) and recorded in the
generator identity.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pam_bench.errors import InputError, MissingResource
from pam_bench.options import choice
from pam_bench.weights import cached_sha256

BRANCH_PREFIXES = ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")
_COPY = re.compile(r"^transformer_blocks_copy\.(\d+)\.")
_LIN = re.compile(r"^combine_linears\.(\d+)\.")
SAFE_INDEX, SAFE_SINGLE = "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors"
BIN_INDEX, BIN_SINGLE = "pytorch_model.bin.index.json", "pytorch_model.bin"
BASE_PARTS = ("vae", "scheduler", "text_encoder", "tokenizer")
CONVERT_HOW = ("this is a raw DeepSpeed/accelerate training checkpoint; convert it first with PAM's "
               "convert_ckpt.py (python convert_ckpt.py CHECKPOINT_DIR OUT_DIR --safe_serialization) and pass "
               "OUT_DIR, or pass the checkpoint's transformer/ folder written by the training save hook")
BASE_HOW = ("a local snapshot of THUDM/CogVideoX-5b-I2V (huggingface-cli download THUDM/CogVideoX-5b-I2V "
            "--local-dir DIR on a machine with network), passed as -o base=DIR")
_FLUX = "black-forest-labs/FLUX.1-dev in diffusers format (gated licence): copy its {sub}/ folder to {dest}"


# --- the transformer folder ------------------------------------------------------------------------------

def weight_files(directory: Path) -> list[Path]:
    """The weight files of a model folder: safetensors (single or index + shards), else torch .bin."""
    d = Path(directory)
    for index, single in ((SAFE_INDEX, SAFE_SINGLE), (BIN_INDEX, BIN_SINGLE)):
        if (d / index).is_file():
            return [d / n for n in sorted(set(_weight_map(d / index).values()))]
        if (d / single).is_file():
            return [d / single]
    return []


def _weight_map(index: Path) -> dict[str, str]:
    try:
        wm = json.loads(index.read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(index, f"not a weights index ({e})") from None
    if not isinstance(wm, dict):
        raise InputError(index, "weight_map is not a mapping")
    return wm


def _safetensors_keys(f: Path) -> list[str]:
    """Tensor names from a safetensors header (8-byte little-endian length + JSON), without torch."""
    try:
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 1 << 30:
                raise InputError(f, f"not a readable safetensors file (header length {n})")
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as e:
        raise InputError(f, f"not a readable safetensors file ({e})") from None
    return [k for k in header if k != "__metadata__"]


def weight_keys(directory: Path) -> list[str]:
    """Every tensor name of a model folder (from the index, or the safetensors header; a lone .bin is read
    with ``torch.load(weights_only=True)``)."""
    d = Path(directory)
    for index in (SAFE_INDEX, BIN_INDEX):
        if (d / index).is_file():
            return sorted(_weight_map(d / index))
    files = weight_files(d)
    if not files:
        return []
    if files[0].suffix == ".safetensors":
        return sorted(_safetensors_keys(files[0]))
    return sorted(read_bin(files[0]))


def read_bin(f: Path) -> dict:
    """A torch-pickled state dict (convert_ckpt.py without --safe_serialization), read with weights_only."""
    import torch

    try:
        sd = torch.load(str(f), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several error types for bad pickles
        raise InputError(f, f"cannot read weights ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(f, "not a flat state dict of tensors")
    return sd


def read_tensors(f: Path, bad: str = "cannot read weights") -> dict:
    """The tensors of a user's file: safetensors, else a torch pickle (:func:`read_bin`); one InputError naming
    the file when it cannot be read (``bad`` opens its message)."""
    f = Path(f)
    if not f.is_file():
        raise InputError(f, "no such file")
    if f.suffix != ".safetensors":
        return read_bin(f)
    from safetensors.torch import load_file

    try:
        return load_file(str(f))
    except Exception as e:  # safetensors raises its own error types
        raise InputError(f, f"{bad} ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None


@dataclass(frozen=True)
class Branch:
    """What the weights say about PAM's condition branch."""

    blocks: int          # copied blocks (0: no branch)
    combine_linears: int
    initial: bool

    @property
    def present(self) -> bool:
        return bool(self.blocks or self.combine_linears or self.initial)


def branch_of(keys) -> Branch:
    copies = {int(m.group(1)) for k in keys if (m := _COPY.match(k))}
    lins = {int(m.group(1)) for k in keys if (m := _LIN.match(k))}
    return Branch(len(copies), len(lins), any(k.startswith("initial_combine_linear.") for k in keys))


def check_branch(directory: Path, cfg: dict, keys) -> Branch:
    """The branch the weights hold, checked against itself and against config.json."""
    d, b = Path(directory), branch_of(keys)
    if b.present and not (b.blocks == b.combine_linears and b.initial and b.blocks > 0):
        raise InputError(d, f"incomplete PAM branch in the weights: {b.blocks} transformer_blocks_copy, "
                            f"{b.combine_linears} combine_linears, initial_combine_linear "
                            f"{'present' if b.initial else 'missing'}")
    n_cfg = cfg.get("num_tracking_blocks")
    if n_cfg is not None and b.present and int(n_cfg) != b.blocks:
        raise InputError(d / "config.json", f"num_tracking_blocks={n_cfg} but the weights hold {b.blocks} copied "
                                            "block(s) (transformer_blocks_copy.N)")
    if n_cfg is not None and not b.present:
        raise InputError(d, f"config.json says num_tracking_blocks={n_cfg} but the weights hold no PAM branch "
                            "(no transformer_blocks_copy.*)")
    return b


def read_config(directory: Path) -> dict:
    f = Path(directory) / "config.json"
    if not f.is_file():
        raise MissingResource(f"{f}", "a diffusers model folder needs config.json")
    try:
        cfg = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f, f"not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise InputError(f, "not a JSON object")
    return cfg


def is_deepspeed_folder(p: Path) -> bool:
    p = Path(p)
    return ((p / "latest").is_file() or (p / "zero_to_fp32.py").is_file() or any(p.glob("global_step*"))
            or any(p.glob("*/*_model_states.pt")) or any(p.glob("*/*optim_states.pt")))


def _is_model_folder(p: Path) -> bool:
    return (p / "config.json").is_file() and bool(weight_files(p))


def find_transformer(checkpoint: Path) -> Path:
    """The Stage III transformer folder of ``--checkpoint`` (itself, or its ``transformer/``)."""
    c = Path(checkpoint)
    if not c.is_dir():
        raise MissingResource(f"PAM checkpoint folder {c}", "pass --checkpoint with PAM's transformer folder "
                              "(convert_ckpt.py output or the training checkpoint's transformer/) or a folder "
                              "holding it as transformer/ (docs/pam_gpu.md)")
    for cand in (c, c / "transformer"):
        if _is_model_folder(cand):
            return cand
    if is_deepspeed_folder(c):
        raise InputError(c, CONVERT_HOW)
    t = c / "transformer"
    if t.is_dir():
        what = "config.json" if not (t / "config.json").is_file() else \
            "diffusion_pytorch_model*.safetensors (or an index file with its shards)"
        raise MissingResource(f"PAM checkpoint file {t / what}", "PAM's motion transformer folder needs "
                              "config.json and its weights (convert_ckpt.py output or the save hook's transformer/)")
    raise MissingResource(f"PAM motion transformer in {c}", "expected config.json + diffusion_pytorch_model*"
                          ".safetensors there or in its transformer/ (PAM's release, convert_ckpt.py output, or a "
                          "training checkpoint-N/)")


def transformer_files(tdir: Path) -> list[Path]:
    files = weight_files(tdir)
    idx = [tdir / n for n in (SAFE_INDEX, BIN_INDEX) if (tdir / n).is_file()]
    for f in files:
        if not f.is_file():
            raise MissingResource(f"PAM checkpoint file {f}", "a shard listed in the index is missing "
                                  "(copy every diffusion_pytorch_model-*.safetensors shard)")
    return [tdir / "config.json", *idx, *files]


# --- the whole set of parts -------------------------------------------------------------------------------

@dataclass
class Parts:
    """Every folder a run reads, resolved once (``resolve``)."""

    transformer: Path
    home: Path                          # the folder holding transformer/ (or the transformer folder itself)
    vae: Path
    scheduler: Path
    text_encoder: Path | None = None
    tokenizer: Path | None = None
    flux: Path | None = None
    shared_embeds: Path | None = None    # precomputed prompt_embeds.safetensors
    clip_embeds: Path | None = None      # precomputed prompt_embeds/<clip id>.safetensors folder
    layout: str = ""
    branch_blocks: int = 0               # copied blocks, counted from the weight names


def _pick(sub: str, places: list[Path]) -> Path | None:
    for p in places:
        if p is not None and (p / sub).is_dir():
            return p / sub
    return None


def resolve(checkpoint, base=None, mode: str = "i2v", need_text: bool = False, flux=None) -> Parts:
    """Resolve and check every part ``mode`` needs; one error lists every missing base part."""
    choice("pam", "mode", mode, ("i2v", "full"))
    tdir = find_transformer(Path(checkpoint))
    home = tdir.parent if tdir.name == "transformer" else tdir
    base_p = Path(base).expanduser() if base else None
    if base_p is not None and not base_p.is_dir():
        raise MissingResource(f"CogVideoX-5B-I2V base folder {base_p} (-o base)", BASE_HOW)
    places = [home, base_p]
    found = {sub: _pick(sub, places) for sub in BASE_PARTS}
    need = ["vae", "scheduler"] + (["text_encoder", "tokenizer"] if need_text else [])
    missing = [f"{s}/" for s in need if found[s] is None]
    checks = {"vae": ["config.json"], "scheduler": ["scheduler_config.json"], "text_encoder": ["config.json"],
              "tokenizer": []}
    for s in need:
        if found[s] is not None:
            missing += [f"{s}/{f}" for f in checks[s] if not (found[s] / f).is_file()]
            if s in ("vae", "text_encoder") and not _any_weights(found[s]):
                missing.append(f"{s}/ weights (*.safetensors)")
    if missing:
        where = f"{base_p}" if base_p is not None else f"{home} (and no -o base=DIR given)"
        raise MissingResource(f"CogVideoX-5B-I2V part(s) {', '.join(missing)} in {where}", BASE_HOW)
    parts = Parts(tdir, home, found["vae"], found["scheduler"], found["text_encoder"], found["tokenizer"])
    cfg = read_config(tdir)
    b = check_branch(tdir, cfg, weight_keys(tdir))
    if not b.present:
        raise InputError(tdir, f"_class_name {cfg.get('_class_name')!r} holds no PAM condition branch "
                               "(no transformer_blocks_copy.* weights): not a PAM motion transformer; pass PAM's "
                               "trained checkpoint, not the CogVideoX base")
    parts.branch_blocks = b.blocks
    parts.layout = ("save-hook (CogVideoXTransformer3DModelTracking)" if "num_tracking_blocks" in cfg
                    else "convert_ckpt (plain CogVideoX config; branch from weight names)")
    transformer_files(tdir)
    if (home / "prompt_embeds.safetensors").is_file():
        parts.shared_embeds = home / "prompt_embeds.safetensors"
    if (home / "prompt_embeds").is_dir():
        parts.clip_embeds = home / "prompt_embeds"
    if mode == "full":
        parts.flux = Path(flux).expanduser() if flux else home / "flux"
        flux_files(parts.flux)
    return parts


def _any_weights(d: Path) -> bool:
    return any(d.glob("*.safetensors")) or any(d.glob("*.bin"))


def flux_files(f: Path) -> list[Path]:
    """The Stage II files (mode ``full``), each checked; raises MissingResource naming the first missing one."""
    out = []
    for sub in ("transformer", "vae"):
        d = f / sub
        files = weight_files(d) if d.is_dir() else []
        lost = [x for x in [d / "config.json", *(files or [d / SAFE_SINGLE])] if not x.is_file()]
        if lost:
            raise MissingResource(f"Stage II file {lost[0]} (mode full)", _FLUX.format(sub=sub, dest=d))
        out += [d / "config.json", *files]
    s = f / "scheduler" / "scheduler_config.json"
    if not s.is_file():
        raise MissingResource(f"Stage II file {s} (mode full)", _FLUX.format(sub="scheduler", dest=s.parent))
    out += [s, controlnet_file(f)]
    pe, per_clip = f / "prompt_embeds.safetensors", f / "prompt_embeds"
    if not pe.is_file() and not per_clip.is_dir():
        raise MissingResource(f"Stage II file {pe} (mode full)", "precomputed FLUX prompt embeddings (keys "
                              "prompt_embeds [1,L,4096] from T5-XXL, pooled_prompt_embeds [1,768] from CLIP-L), "
                              "shared, or per clip as flux/prompt_embeds/<clip id>.safetensors")
    shared = [pe] if pe.is_file() else []
    return out + shared + (sorted(per_clip.rglob("*.safetensors")) if per_clip.is_dir() else [])


def flux_per_clip_prompts(flux_dir: Path | None) -> bool:
    """Whether a flux/ folder holds per-clip prompt embeddings (``flux/prompt_embeds/``)."""
    return flux_dir is not None and (Path(flux_dir) / "prompt_embeds").is_dir()


def flux_prompt_file(flux_dir: Path, clip_id: str | None) -> Path:
    """The FLUX prompt file of a clip: ``flux/prompt_embeds/<clip id>.safetensors`` (clip ids may contain '/'),
    else the shared ``flux/prompt_embeds.safetensors``; neither is an InputError naming where it looked."""
    per_clip, shared = flux_dir / "prompt_embeds", flux_dir / "prompt_embeds.safetensors"
    if clip_id and flux_per_clip_prompts(flux_dir):
        f = per_clip / f"{clip_id}.safetensors"
        if f.resolve().is_relative_to(per_clip.resolve()) and f.is_file():
            return f
    if shared.is_file():
        return shared
    raise InputError(per_clip, f"has no {clip_id}.safetensors for this clip, and there is no shared {shared.name}")


def controlnet_file(flux_dir: Path) -> Path:
    for a in ("controlnet.safetensors", "controlnet.bin"):
        if (Path(flux_dir) / a).is_file():
            return Path(flux_dir) / a
    raise MissingResource(f"Stage II file {Path(flux_dir) / 'controlnet.safetensors'} (or controlnet.bin)",
                          "PAM's Stage II double ControlNet (controlnet.bin as appearance_gen/double_controlnet.py "
                          "saves it; huggingface.co/GasaiYU/PAM appearance_gen)")


def files_of(parts: Parts, text: bool = True) -> dict[str, list[Path]]:
    """{part name: files a run may read}. The T5 encoder and tokenizer count whenever they are present (a
    dataset's captions can need them at any clip); ``text=False`` leaves them out."""
    out = {"transformer": transformer_files(parts.transformer),
           "vae": [parts.vae / "config.json", *sorted(_weights_in(parts.vae))],
           "scheduler": [parts.scheduler / "scheduler_config.json"]}
    if text and parts.text_encoder is not None and parts.tokenizer is not None:
        out["text_encoder"] = sorted(p for p in parts.text_encoder.rglob("*") if p.is_file())
        out["tokenizer"] = sorted(p for p in parts.tokenizer.rglob("*") if p.is_file())
    if parts.shared_embeds is not None:
        out["prompt_embeds"] = [parts.shared_embeds]
    if parts.clip_embeds is not None:  # recursive: clip ids contain '/'
        out["prompt_embeds_per_clip"] = sorted(parts.clip_embeds.rglob("*.safetensors"))
    if parts.flux is not None:
        out["flux"] = flux_files(parts.flux)
    return out


def _weights_in(d: Path) -> list[Path]:
    files = weight_files(d)
    return files if files else [p for p in d.iterdir() if p.suffix in (".safetensors", ".bin")]


def hashes(parts: Parts, text: bool = True) -> dict[str, dict[str, str]]:
    """{part: {file name relative to its part folder: sha256}}."""
    roots = {"transformer": parts.transformer, "vae": parts.vae, "scheduler": parts.scheduler,
             "text_encoder": parts.text_encoder, "tokenizer": parts.tokenizer, "prompt_embeds": parts.home,
             "prompt_embeds_per_clip": parts.clip_embeds, "flux": parts.flux}
    return {k: {str(f.relative_to(roots[k])): cached_sha256(f) for f in fs} for k, fs in files_of(parts, text).items()}


def encoder_hash(parts: Parts) -> str:
    """One sha256 over the T5 encoder's and tokenizer's file hashes (the prompt-cache key)."""
    import hashlib

    h = hashes(parts, text=True)
    blob = json.dumps({k: h[k] for k in ("text_encoder", "tokenizer")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def checkpoint_hashes(parts: Parts) -> dict[str, dict[str, str]]:
    """The ``checkpoint_sha256`` of the generator identity (see :func:`hashes`)."""
    return hashes(parts)
