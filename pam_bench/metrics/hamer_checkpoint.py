"""The official HaMeR ``hamer.ckpt``, loaded as downloaded, with an exact allow-list and no code run.

Facts (geopavlakos/hamer): ``hamer_ckpts/checkpoints/hamer.ckpt`` is a PyTorch Lightning checkpoint written by
``Trainer`` with ``ModelCheckpoint``; the official code reads it with ``HAMER.load_from_checkpoint(path,
strict=False, cfg=model_cfg)`` (hamer/models/__init__.py ``load_hamer``), i.e. the config comes from
``model_config.yaml`` next to it. ``HAMER.__init__`` calls ``save_hyperparameters(logger=False,
ignore=['init_renderer'])``, so Lightning stores ``hyper_parameters = {'cfg': <yacs.config.CfgNode>}``,
and that object is why ``torch.load(weights_only=True)`` refuses the file.

A Lightning checkpoint dict holds ``epoch``, ``global_step``, ``pytorch-lightning_version``, ``state_dict``,
``loops``, ``callbacks`` (keyed by each callback's state-key string), ``optimizer_states``, ``lr_schedulers``,
``hparams_name`` and ``hyper_parameters`` (plus precision-plugin state under its class-name string): plain
containers, numbers, strings and tensors, except the CfgNode. So the allow-list is exactly torch's own
``weights_only`` names (tensors, storages, dtypes, ``torch.Size``, ``OrderedDict``) plus
``('yacs.config', 'CfgNode')``, which becomes :class:`pam_bench.safe_pickle.StateDict` (its items kept as a
plain dict, its instance state kept aside, nothing of yacs imported or run). Any other global (a pickled
Lightning or user class, a ``__reduce__`` gadget naming ``os``/``builtins``/...) is refused: one
:class:`~pam_bench.errors.InputError` line naming the file and the refused name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import safe_pickle as SP
from ..errors import InputError

#: the pairs a HaMeR Lightning checkpoint may name besides torch's weights_only list
CHECKPOINT_EXTRA = {("yacs.config", "CfgNode"): SP.StateDict}
#: Lightning's top-level checkpoint keys (recorded; the state_dict is the one the model needs)
LIGHTNING_KEYS = ("epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks",
                  "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters")


def allow_list() -> dict[tuple[str, str], Any]:
    return {**SP.torch_tensors(), **CHECKPOINT_EXTRA}


def load_hamer_checkpoint(path) -> tuple[dict, dict[str, Any]]:
    """(state_dict of tensors, info) from ``hamer.ckpt``; info: how it was read, Lightning version,
    epoch, global step, whether the yacs config was present."""
    import torch

    path = Path(path)
    obj, weights_only = SP.torch_checkpoint(path, allow_list(), what="an official HaMeR Lightning checkpoint")
    how = ("torch.load(weights_only=True)" if weights_only
           else "exact allow-list: torch weights_only names + yacs.config.CfgNode (as plain dict)")
    if not isinstance(obj, dict):
        raise InputError(path, "is not a checkpoint dict")
    sd = obj.get("state_dict", obj)
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(path, "has no 'state_dict' of tensors")
    hp = obj.get("hyper_parameters")
    info = {"read_with": how, "lightning_version": obj.get("pytorch-lightning_version"),
            "epoch": obj.get("epoch"), "global_step": obj.get("global_step"),
            "has_yacs_cfg": isinstance(hp, dict) and isinstance(hp.get("cfg"), dict)}
    return sd, info
