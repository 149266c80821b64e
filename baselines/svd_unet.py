"""SVD's spatio-temporal UNet driven with ControlNet residuals (InterDyn's forward).

Facts (rickakkerman/InterDyn: unet_spatio_temporal_condition_controlnet.py): the UNet adds the residuals
INSIDE its down loop: after each down block every skip feature so far gets its residual added again, so the
residual of block b is added (n_blocks - b) times (conv_in's n times). Released weights were trained with
that forward: ``residual_mode='interdyn'`` (default) reproduces it, ``'standard'`` adds each residual once
(diffusers ControlNet convention). :func:`down_pass` is the down-block loop shared with the ControlNet copy
(:mod:`baselines.svd_controlnet`).

Imports torch lazily; works on any diffusers ``UNetSpatioTemporalConditionModel``.
"""
from __future__ import annotations


def down_pass(blocks, x, emb, ehs, ind, after_block=None):
    """The spatio-temporal down blocks of SVD's UNet (and its ControlNet copy): returns the hidden state and
    the tuple of skip residuals; ``after_block(res)`` may rewrite the residuals after each block."""
    res = (x,)
    for blk in blocks:
        if getattr(blk, "has_cross_attention", False):
            x, r = blk(hidden_states=x, temb=emb, encoder_hidden_states=ehs, image_only_indicator=ind)
        else:
            x, r = blk(hidden_states=x, temb=emb, image_only_indicator=ind)
        res += r
        if after_block is not None:
            res = after_block(res)
    return x, res


def unet_with_residuals(unet, sample, timestep, encoder_hidden_states, added_time_ids, down_res, mid_res,
                        residual_mode: str = "interdyn"):
    """The SVD UNet forward with ControlNet residuals (InterDyn's UNetSpatioTemporalConditionControlNetModel)."""
    import torch

    b, f = sample.shape[:2]
    t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
    t = t.reshape(-1)[:1].to(sample.device).expand(b)
    emb = unet.time_embedding(unet.time_proj(t).to(sample.dtype))
    add = unet.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
    emb = (emb + unet.add_embedding(add)).repeat_interleave(f, dim=0)
    ehs = encoder_hidden_states.repeat_interleave(f, dim=0)
    x = unet.conv_in(sample.flatten(0, 1))
    ind = torch.zeros(b, f, dtype=x.dtype, device=x.device)

    def readd(res):  # InterDyn re-adds the residuals after every down block, as in the released code
        return tuple(a + d for a, d in zip(res, down_res)) + res[len(down_res):]

    x, res = down_pass(unet.down_blocks, x, emb, ehs, ind, readd if residual_mode == "interdyn" else None)
    if residual_mode == "standard":
        res = tuple(a + d for a, d in zip(res, down_res))
    x = unet.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=ehs, image_only_indicator=ind) + mid_res
    for blk in unet.up_blocks:
        r, res = res[-len(blk.resnets):], res[:-len(blk.resnets)]
        if getattr(blk, "has_cross_attention", False):
            x = blk(hidden_states=x, temb=emb, res_hidden_states_tuple=r, encoder_hidden_states=ehs,
                    image_only_indicator=ind)
        else:
            x = blk(hidden_states=x, temb=emb, res_hidden_states_tuple=r, image_only_indicator=ind)
    x = unet.conv_out(unet.conv_act(unet.conv_norm_out(x)))
    return x.reshape(b, f, *x.shape[1:])
