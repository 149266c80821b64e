"""``ControlNetSDV``: InterDyn's SVD ControlNet as a diffusers model, and the loader of its folder.

Facts (rickakkerman/InterDyn: interdyn/controlnet_sdv.py; itself from CiaraStrawberry/svd-temporal-controlnet):
``ControlNetSDVModel`` is a copy of the SVD UNet's conv_in, time/add embeddings, down blocks and mid block;
a conditioning embedding (conv_in 3->16, then pairs conv3x3 / conv3x3 stride 2 through
``conditioning_embedding_out_channels`` (16,32,96,256), SiLU, zero conv_out to block_out_channels[0]) added
after conv_in; one zero 1x1 conv per skip feature (``controlnet_down_blocks``) and ``controlnet_mid_block``.
``ControlNetSDV`` has the same module names and config keys, so InterDyn's ``controlnet/`` folder
(config.json + diffusion_pytorch_model.safetensors) loads into it unchanged. ``svd-multi`` uses one
conditioning embedding per condition (``conditions`` in the config), summed after conv_in.

The class is built on first access (diffusers is heavy and must not load at CLI start-up).
"""
from __future__ import annotations

from pathlib import Path

from pam_bench.errors import ArgumentError, InputError, MissingResource

from .svd_unet import down_pass

INTERDYN_HOW = ("InterDyn's released controlnet (huggingface rickakkerman/InterDyn, folder controlnet/ with "
                "config.json + diffusion_pytorch_model.safetensors, non-commercial licence); "
                "pass --checkpoint DIR (the folder holding controlnet/) or place it at $PAM_BENCH_HOME/models/interdyn")



def _build_controlnet_class():
    """Define ControlNetSDV lazily (diffusers is heavy and must not load at CLI start-up)."""
    import torch
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps
    from diffusers.models.modeling_utils import ModelMixin
    from diffusers.models.unets.unet_3d_blocks import UNetMidBlockSpatioTemporal, get_down_block
    from torch import nn

    def zero(m):
        for p in m.parameters():
            nn.init.zeros_(p)
        return m

    class CondEmbedding(nn.Module):
        """InterDyn's ControlNetConditioningEmbeddingSVD (same parameter names)."""

        def __init__(self, out_channels: int, in_channels: int, channels: tuple[int, ...]):
            super().__init__()
            self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
            self.blocks = nn.ModuleList()
            for a, b in zip(channels[:-1], channels[1:]):
                self.blocks.append(nn.Conv2d(a, a, 3, padding=1))
                self.blocks.append(nn.Conv2d(a, b, 3, padding=1, stride=2))
            self.conv_out = zero(nn.Conv2d(channels[-1], out_channels, 3, padding=1))

        def forward(self, x):  # [B, F, C, H, W]
            x = x.flatten(0, 1)
            x = torch.nn.functional.silu(self.conv_in(x))
            for blk in self.blocks:
                x = torch.nn.functional.silu(blk(x))
            return self.conv_out(x)

    class ControlNetSDV(ModelMixin, ConfigMixin):
        """ControlNet for the SVD UNet, key- and config-compatible with InterDyn's ControlNetSDVModel.

        ``conditions``: one conditioning embedding per condition video, summed (our extension for svd-multi);
        the first keeps InterDyn's name ``controlnet_cond_embedding``, the others are ``extra_cond_embeddings.i``.
        """

        @register_to_config
        def __init__(self, sample_size=None, in_channels: int = 8, out_channels: int = 4,
                     down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
                     up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
                     block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim: int = 256,
                     projection_class_embeddings_input_dim: int = 768, layers_per_block=2,
                     cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=(5, 10, 10, 20),
                     num_frames: int = 25, conditioning_channels: int = 3,
                     conditioning_embedding_out_channels=(16, 32, 96, 256), conditions=("hand",)):
            super().__init__()
            n = len(down_block_types)
            heads = (num_attention_heads,) * n if isinstance(num_attention_heads, int) else num_attention_heads
            cross = (cross_attention_dim,) * n if isinstance(cross_attention_dim, int) else cross_attention_dim
            layers = [layers_per_block] * n if isinstance(layers_per_block, int) else layers_per_block
            tlayers = ([transformer_layers_per_block] * n if isinstance(transformer_layers_per_block, int)
                       else transformer_layers_per_block)
            c0 = block_out_channels[0]
            temb = c0 * 4
            self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
            self.time_proj = Timesteps(c0, True, downscale_freq_shift=0)
            self.time_embedding = TimestepEmbedding(c0, temb)
            self.add_time_proj = Timesteps(addition_time_embed_dim, True, downscale_freq_shift=0)
            self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, temb)
            ch = tuple(conditioning_embedding_out_channels)
            self.controlnet_cond_embedding = CondEmbedding(c0, conditioning_channels, ch)
            self.extra_cond_embeddings = nn.ModuleList(
                CondEmbedding(c0, conditioning_channels, ch) for _ in range(len(conditions) - 1))
            self.down_blocks = nn.ModuleList()
            self.controlnet_down_blocks = nn.ModuleList([zero(nn.Conv2d(c0, c0, 1))])
            out_ch = c0
            for i, kind in enumerate(down_block_types):
                in_ch, out_ch = out_ch, block_out_channels[i]
                last = i == n - 1
                self.down_blocks.append(get_down_block(
                    kind, num_layers=layers[i], transformer_layers_per_block=tlayers[i], in_channels=in_ch,
                    out_channels=out_ch, temb_channels=temb, add_downsample=not last, resnet_eps=1e-5,
                    cross_attention_dim=cross[i], num_attention_heads=heads[i], resnet_act_fn="silu"))
                for _ in range(layers[i] + (0 if last else 1)):
                    self.controlnet_down_blocks.append(zero(nn.Conv2d(out_ch, out_ch, 1)))
            self.controlnet_mid_block = zero(nn.Conv2d(block_out_channels[-1], block_out_channels[-1], 1))
            self.mid_block = UNetMidBlockSpatioTemporal(
                block_out_channels[-1], temb_channels=temb, transformer_layers_per_block=tlayers[-1],
                cross_attention_dim=cross[-1], num_attention_heads=heads[-1])

        @classmethod
        def from_unet(cls, unet, conditions=("hand",), conditioning_embedding_out_channels=(16, 32, 96, 256)):
            c = unet.config
            net = cls(in_channels=c.in_channels, down_block_types=c.down_block_types,
                      block_out_channels=c.block_out_channels, addition_time_embed_dim=c.addition_time_embed_dim,
                      transformer_layers_per_block=c.transformer_layers_per_block,
                      cross_attention_dim=c.cross_attention_dim, num_attention_heads=c.num_attention_heads,
                      num_frames=c.num_frames, sample_size=c.sample_size, layers_per_block=c.layers_per_block,
                      projection_class_embeddings_input_dim=c.projection_class_embeddings_input_dim,
                      conditioning_embedding_out_channels=tuple(conditioning_embedding_out_channels),
                      conditions=tuple(conditions))
            for name in ("conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block"):
                getattr(net, name).load_state_dict(getattr(unet, name).state_dict())
            return net

        def embed(self, sample, timestep, added_time_ids):
            b, f = sample.shape[:2]
            t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
            t = t.reshape(-1)[:1].to(sample.device).expand(b)
            emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
            add = self.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
            return (emb + self.add_embedding(add)).repeat_interleave(f, dim=0)

        def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, controlnet_cond,
                    conditioning_scale: float = 1.0):
            """``controlnet_cond``: list of [B, F, 3, H, W] videos, one per condition (in config order)."""
            b, f = sample.shape[:2]
            emb = self.embed(sample, timestep, added_time_ids)
            ehs = encoder_hidden_states.repeat_interleave(f, dim=0)
            x = self.conv_in(sample.flatten(0, 1))
            embeds = [self.controlnet_cond_embedding, *self.extra_cond_embeddings]
            if len(controlnet_cond) != len(embeds):
                raise ArgumentError(f"expected {len(embeds)} condition videos, got {len(controlnet_cond)}")
            for e, c in zip(embeds, controlnet_cond):
                x = x + e(c)
            ind = torch.zeros(b, f, dtype=x.dtype, device=x.device)
            x, res = down_pass(self.down_blocks, x, emb, ehs, ind)
            x = self.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=ehs, image_only_indicator=ind)
            down = [blk(r) * conditioning_scale for r, blk in zip(res, self.controlnet_down_blocks)]
            return down, self.controlnet_mid_block(x) * conditioning_scale

    return ControlNetSDV


_CLASS = None


def __getattr__(name: str):
    """``baselines.svd_controlnet.ControlNetSDV`` is built on first access (keeps diffusers out of plain imports)."""
    global _CLASS
    if name == "ControlNetSDV":
        if _CLASS is None:
            _CLASS = _build_controlnet_class()
        return _CLASS
    raise AttributeError(name)


def load_controlnet(root: Path):
    """An InterDyn-layout controlnet folder (``root/controlnet`` or ``root`` itself) -> ControlNetSDV."""
    import json

    from safetensors.torch import load_file

    d = root / "controlnet" if (root / "controlnet").is_dir() else root
    cfg_f, w_f = d / "config.json", d / "diffusion_pytorch_model.safetensors"
    for f in (cfg_f, w_f):
        if not f.is_file():
            raise MissingResource(f"controlnet file {f.name} (looked in {d})", INTERDYN_HOW)
    cfg = {k: v for k, v in json.loads(cfg_f.read_text()).items() if not k.startswith("_")}
    cls = __getattr__("ControlNetSDV")
    import inspect

    known = set(inspect.signature(cls.__init__).parameters)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise InputError(cfg_f, f"unknown ControlNetSDV config keys {unknown}")
    net = cls(**cfg)
    sd = load_file(str(w_f))
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise InputError(w_f, f"does not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net, w_f
