"""Trainers behind one interface, and the embedded trainer (the offline default).

A trainer takes the training crops of one mixture and the evaluation crops, trains with a seed, and
returns predicted joints (camera-frame or root-relative metres: the evaluation aligns them) and, when it
predicts a mesh, 778 vertices. Trainers are listed in :data:`TRAINERS` (name -> "module:Class").

The embedded trainer is a small torchvision regressor from random initialisation (no pretrained
weights, nothing downloaded): ``resnet18`` (default) or ``tiny`` (4 conv layers, for tests) on the
``S x S`` crops, predicting the 21 joints relative to SimpleHand's root (joint 9, middle MCP),
standardised per coordinate by the training mixture's mean and std (the last layer starts at the mean
pose: zero bias, weights x0.01), with an L1 loss. Like SimpleHand it trains for a fixed number of minibatches drawn with
replacement (so every mixture gets the same optimisation budget whatever its size), AdamW
(lr ``lr``, weight decay 1e-2; biases and norms without decay) and gradient clipping at norm 1.
No augmentation. Deterministic for a seed on CPU (seeded init and sampling); on CUDA it uses bf16
autocast. It is a stand-in for SimpleHand's HandNet (fastvit_ma36, 224 px, 200 x 256 x 256 images),
far smaller and shorter: its numbers show the pipeline and the direction of effects, not the paper's.
"""
from __future__ import annotations

import importlib
import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import PamBenchError
from ..store import atomic_write_bytes, atomic_write_json
from .frames import ROOT_INDEX, FrameSet

TRAINERS: dict[str, str] = {
    "embedded": "pam_bench.downstream.trainer:EmbeddedTrainer",
    "simplehand": "pam_bench.downstream.simplehand:SimpleHandTrainer",
}

ARCHS = ("resnet18", "tiny")
STD_FLOOR_M = 1e-3  # floor of the per-coordinate target std (the root joint's is 0)


def get_trainer(name: str, device: str = "cpu", **options) -> "Trainer":
    try:
        target = TRAINERS[name]
    except KeyError:
        raise PamBenchError(f"unknown trainer '{name}'; known: {', '.join(TRAINERS)}") from None
    mod, _, attr = target.partition(":")
    return getattr(importlib.import_module(mod), attr)(device=device, **options)


class Trainer(ABC):
    name: ClassVar[str]
    #: the crop side the trainer's network takes (the study's default ``crop_size``)
    input_size: ClassVar[int] = 224
    #: Training steps per run, when the trainer knows them (progress bars); ``on_step`` is called after each.
    steps: int | None = None
    on_step: Callable[[int], Any] | None = None

    def check_ready(self) -> None:
        """Raise MissingResource when something the trainer needs is not here (cheap)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that changes the trained model (recorded; part of every run's cache key)."""

    @abstractmethod
    def run(self, train: FrameSet, evalset: FrameSet, seed: int, workdir: Path) -> dict[str, np.ndarray | None]:
        """Train on ``train`` and predict ``evalset``: {"xyz": [N,21,3] m, "verts": [N,778,3] m or None,
        "seed_effective": whether the seed changed the trained model, "seed_note": why (or why not)}."""


def _tiny_net(out: int):
    import torch.nn as nn

    layers, c = [], 3
    for width in (24, 48, 96, 160):
        layers += [nn.Conv2d(c, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out))


def build_net(arch: str):
    if arch == "resnet18":
        from torchvision.models import resnet18

        return resnet18(weights=None, num_classes=63)
    if arch == "tiny":
        return _tiny_net(63)
    raise PamBenchError(f"embedded trainer: unknown arch {arch!r}; known: {', '.join(ARCHS)}")


def _init_head(net) -> None:
    """Start at the mixture's mean pose: the last linear layer gets zero bias and small weights."""
    import torch.nn as nn

    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    last.weight.data.mul_(0.01)
    last.bias.data.zero_()


def _to_input(images: np.ndarray, device):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5).div_(0.25)


def root_relative(xyz: np.ndarray) -> np.ndarray:
    return xyz - xyz[:, ROOT_INDEX:ROOT_INDEX + 1]


class EmbeddedTrainer(Trainer):
    """See the module docstring. Options: arch, steps, batch_size, lr, weight_decay."""

    name = "embedded"
    input_size = 64  # the CPU stand-in's crops; SimpleHand's own input is 224 (--crop-size 224 to match)

    def __init__(self, device: str = "cpu", arch: str = "resnet18", steps: int = 150, batch_size: int = 16,
                 lr: float = 1e-3, weight_decay: float = 1e-2, **options):
        if options:
            raise PamBenchError(f"embedded trainer: unknown option(s) {sorted(options)}; known: arch, steps, "
                                "batch_size, lr, weight_decay")
        if arch not in ARCHS:
            raise PamBenchError(f"embedded trainer: unknown arch {arch!r}; known: {', '.join(ARCHS)}")
        self.device = device
        self.arch, self.steps, self.batch_size = arch, int(steps), int(batch_size)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        if self.steps < 1 or self.batch_size < 1:
            raise PamBenchError("embedded trainer: steps and batch_size must be >= 1")

    def identity(self) -> dict[str, Any]:
        import torch

        return {"trainer": self.name, "arch": self.arch, "pretrained": False, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
                "target": f"21 joints relative to joint {ROOT_INDEX}, standardised per coordinate by the "
                          "mixture's mean and std; head starts at the mean pose; L1",
                "sampling": "minibatches with replacement", "augmentation": "none",
                "torch": torch.__version__}

    def _optimizer(self, net):
        import torch

        decay, no_decay = [], []
        for n, p in net.named_parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        return torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=self.lr, weight_decay=self.weight_decay)

    def fit(self, train: FrameSet, seed: int):
        """Train a fresh network; returns (net, per-step losses)."""
        import torch

        if len(train) == 0:
            raise PamBenchError("embedded trainer: the training mixture has no frames")
        dev = torch.device(self.device)
        torch.manual_seed(int(seed))
        net = build_net(self.arch)
        _init_head(net)
        net = net.to(dev)
        opt = self._optimizer(net)
        gen = torch.Generator().manual_seed(int(seed))
        rel = root_relative(train.xyz.astype(np.float64)).reshape(len(train), 63)
        net.target_mean = rel.mean(axis=0)
        net.target_std = np.maximum(rel.std(axis=0), STD_FLOOR_M)
        target = torch.from_numpy(((rel - net.target_mean) / net.target_std).astype(np.float32))
        use_bf16 = dev.type == "cuda"
        losses = []
        net.train()
        for _ in range(self.steps):
            idx = torch.randint(0, len(train), (self.batch_size,), generator=gen).numpy()
            x = _to_input(train.images[idx], dev)
            y = target[idx].to(dev)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = net(x)
            loss = torch.nn.functional.l1_loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if self.on_step is not None:
                self.on_step(1)
        return net, losses

    def predict(self, net, frames: FrameSet, batch: int = 128) -> np.ndarray:
        import torch

        dev = next(net.parameters()).device
        net.eval()
        out = []
        with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            for i in range(0, len(frames), batch):
                out.append(net(_to_input(frames.images[i:i + batch], dev)).float().cpu().numpy())
        pred = np.concatenate(out).astype(np.float64) * net.target_std + net.target_mean
        return pred.reshape(-1, 21, 3)

    def run(self, train: FrameSet, evalset: FrameSet, seed: int, workdir: Path) -> dict[str, np.ndarray | None]:
        from safetensors.torch import save

        t0 = time.time()
        net, losses = self.fit(train, seed)
        t_train = time.time() - t0
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        atomic_write_bytes(Path(workdir) / "model.safetensors",
                           save(state, metadata={"identity": json.dumps(self.identity(), sort_keys=True)}))
        pred = self.predict(net, evalset)
        atomic_write_json(Path(workdir) / "train_log.json",
                          {"seed": int(seed), "n_train_images": len(train), "train_seconds": round(t_train, 2),
                           "loss_first": losses[0], "loss_last": losses[-1],
                           "loss_every_10": losses[::10]})
        return {"xyz": pred, "verts": None, "seed_effective": True,
                "seed_note": "the seed sets the initialisation and the minibatch sampling"}
