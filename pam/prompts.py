"""Per-clip prompts for Stage III: PAM's caption files, matched to clip ids, and a cached T5 encoder.

Caption files (facts from GasaiYU/PAM):

- the jsonl ``training/gen_prompt.py`` writes (``dexycb_prompt.jsonl``): one JSON object per line,
  ``{"video_path": ".../<subject>/<seq>/<serial>/video.mp4", "response": "<caption>"}``;
- the prepared dataset's caption column (``--caption_column``, read by ``training/dataset.py``): a text file
  with one caption per non-empty line, parallel to the video list (``--video_column``,
  ``val_videos.txt`` from ``gen_s0_split_filelist.py``), which is then also needed to name the clips.

A caption belongs to clip id ``a/b/c`` when the folders of its video path end with ``a/b/c`` (the file name,
e.g. ``video.mp4``, is dropped). Two different captions for one clip are an error naming the file and lines.

Encoding: CogVideoX's ``_get_t5_prompt_embeds`` (pad to 226 tokens, truncate, last hidden state) with the
base's ``tokenizer/`` + ``text_encoder/`` on the run's device and dtype, loaded only on a cache miss. The
embeddings are cached in ``$PAM_BENCH_HOME/prompt_cache/`` keyed by sha256 of (encoder hash, device type
and dtype, max length, text).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from pam_bench.errors import InputError, MissingResource

#: The negative prompt of PAM's evaluation script (testing/evaluation_comb_dexycb.py).
NEGATIVE_PROMPT = ("The video is not of a high quality, it has a low resolution. Watermark present in each frame. "
                   "The background is solid. Strange body and strange trajectory. Distortion.")
#: The fixed prompt of PAM's sim-to-real script (testing/evaluation_sim.py).
SIM_PROMPT = "A man is in a lab trying to grasp something."
MAX_LENGTH = 226


def read_jsonl(path: Path) -> list[tuple[str, str, int]]:
    """(video_path, caption, line number) for every line of a gen_prompt.py jsonl."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read caption file ({e})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{i}", f"not a JSON line ({e})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("video_path"), str) \
                or not isinstance(rec.get("response"), str):
            raise InputError(f"{path}:{i}", 'expected {"video_path": str, "response": str} (gen_prompt.py format)')
        out.append((rec["video_path"], rec["response"].strip(), i))
    return out


def read_caption_column(captions: Path, videos: Path) -> list[tuple[str, str, int]]:
    """The prepared dataset's caption column paired line by line with its video list."""
    def lines(p):
        try:
            return [ln.strip() for ln in Path(p).read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(p, f"cannot read ({e})") from None

    caps, vids = lines(captions), lines(videos)
    if len(caps) != len(vids):
        raise InputError(captions, f"{len(caps)} captions but {len(vids)} videos in {videos} (line-parallel files)")
    return [(v, c, i) for i, (v, c) in enumerate(zip(vids, caps), 1)]


class CaptionTable:
    """Clip id -> caption, from one caption file (jsonl, or caption column + video list)."""

    def __init__(self, path, videos=None):
        self.path = Path(path).expanduser()
        self.videos = Path(videos).expanduser() if videos else None
        if not self.path.is_file():
            raise InputError(self.path, "no such caption file (-o prompts)")
        if self.path.suffix == ".jsonl":
            self.rows = read_jsonl(self.path)
        elif self.videos is None:
            raise InputError(self.path, "a caption column (one caption per line) needs its video list: "
                                        "-o prompt_videos=VAL_VIDEOS.txt")
        else:
            self.rows = read_caption_column(self.path, self.videos)
        if not self.rows:
            raise InputError(self.path, "holds no captions")
        self._by_depth: dict[int, dict[tuple, tuple[str, int]]] = {}

    @property
    def files(self) -> list[Path]:
        return [self.path] + ([self.videos] if self.videos else [])

    def _index(self, k: int) -> dict[tuple, tuple[str, int]]:
        if k not in self._by_depth:
            idx: dict[tuple, tuple[str, int]] = {}
            for video, cap, line in self.rows:
                parts = [p for p in video.replace("\\", "/").split("/") if p not in ("", ".")]
                if parts and "." in parts[-1]:
                    parts = parts[:-1]  # the file name (video.mp4)
                key = tuple(parts[-k:])
                if len(key) == k:
                    prev = idx.get(key)
                    if prev is not None and prev[0] != cap:
                        raise InputError(f"{self.path}:{line}", f"a second, different caption for clip "
                                                                f"{'/'.join(key)} (first at line {prev[1]})")
                    idx.setdefault(key, (cap, line))
            self._by_depth[k] = idx
        return self._by_depth[k]

    def lookup(self, clip_id: str) -> str | None:
        parts = tuple(p for p in str(clip_id).split("/") if p)
        hit = self._index(len(parts)).get(parts)
        return None if hit is None else hit[0]


# --- T5 encoding with a disk cache -------------------------------------------------------------------------

def cache_dir() -> Path:
    from pam_bench.weights import home

    return home() / "prompt_cache"


def cache_key(encoder_hash: str, dtype: str, text: str, max_length: int = MAX_LENGTH) -> str:
    import hashlib

    blob = json.dumps([encoder_hash, dtype, int(max_length), text], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class T5PromptEncoder:
    """Text -> [1, 226, D] T5 embeddings (CogVideoX convention), cached on disk; T5 loads on the first miss."""

    def __init__(self, text_encoder_dir, tokenizer_dir, encoder_hash: str, device="cpu", dtype=None,
                 max_length: int = MAX_LENGTH):
        self.text_encoder_dir, self.tokenizer_dir = Path(text_encoder_dir), Path(tokenizer_dir)
        self.encoder_hash, self.device, self.dtype, self.max_length = encoder_hash, device, dtype, max_length
        self._tok = self._enc = None
        self.misses = 0

    def _load(self):
        import torch
        from transformers import T5EncoderModel, T5Tokenizer

        try:
            self._tok = T5Tokenizer.from_pretrained(str(self.tokenizer_dir), local_files_only=True)
        except (OSError, ValueError) as e:
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise InputError(self.tokenizer_dir, f"not a T5 tokenizer folder ({why})") from None
        try:
            enc = T5EncoderModel.from_pretrained(str(self.text_encoder_dir), local_files_only=True,
                                                 torch_dtype=self.dtype or torch.float32)
        except (OSError, ValueError) as e:
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise InputError(self.text_encoder_dir, f"not a T5 encoder folder ({why})") from None
        self._enc = enc.to(self.device).eval()

    def __call__(self, text: str):
        import torch
        from safetensors.torch import load_file, save_file

        dname = f"{torch.device(self.device).type}:{str(self.dtype or torch.float32).replace('torch.', '')}"
        f = cache_dir() / f"{cache_key(self.encoder_hash, dname, text, self.max_length)}.safetensors"
        if f.is_file():
            try:
                return load_file(str(f))["prompt_embeds"]
            except Exception:  # a torn cache entry is recomputed
                pass
        if self._enc is None:
            self._load()
        ids = self._tok([text], padding="max_length", max_length=self.max_length, truncation=True,
                        add_special_tokens=True, return_tensors="pt").input_ids.to(self.device)
        with torch.no_grad():
            emb = self._enc(ids)[0].cpu().contiguous()
        self.misses += 1
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.{os.getpid()}.part")
        save_file({"prompt_embeds": emb}, str(tmp), metadata={"text": text[:2000]})
        os.replace(tmp, f)
        return emb


def write_prompt_embeds(text_encoder_dir, tokenizer_dir, prompt: str, out_path,
                        negative_prompt: str = NEGATIVE_PROMPT, max_length: int = MAX_LENGTH, device: str = "cpu"):
    """Precompute ``prompt_embeds.safetensors`` (prompt_embeds + negative_prompt_embeds) once, e.g. to run
    on a machine without the T5 weights. Local folders only."""
    from safetensors.torch import save_file

    for d in (text_encoder_dir, tokenizer_dir):
        if not Path(d).is_dir():
            raise MissingResource(f"{d}", "CogVideoX-5b-I2V's text_encoder/ and tokenizer/ folders")
    enc = T5PromptEncoder(text_encoder_dir, tokenizer_dir, "uncached", device, max_length=max_length)
    enc._load()
    import torch

    def embed(text):
        ids = enc._tok([text], padding="max_length", max_length=max_length, truncation=True,
                       add_special_tokens=True, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            return enc._enc(ids)[0].float().cpu().contiguous()

    save_file({"prompt_embeds": embed(prompt), "negative_prompt_embeds": embed(negative_prompt)}, str(out_path))
    return Path(out_path)
