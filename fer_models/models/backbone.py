"""Image backbones by name (torchvision ResNets without their classifier) and local weights.

Every model here puts its trunk under `.backbone`, so one loader serves them all: a state dict
from a local file — torchvision's own (`resnet18-f37072fd.pth`), Emotion-FAN's
(`{'state_dict': {'module.conv1.weight': …}}`) or one of fer-train's checkpoints (`{'model': …}`)
— or `imagenet`, torchvision's weights *if they already sit in its local cache*. Nothing is ever
downloaded: a missing file is an error that says where it was looked for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from fer_models.models import BACKBONE_NAMES
from fer_models.models.options import STEMS
from fer_prep.registry import Registry

#: name → constructor of a torchvision classifier whose `fc` is replaced by the identity
BACKBONES: Registry[Callable[[], nn.Module]] = Registry("backbone")
for _name in BACKBONE_NAMES:
    BACKBONES.add(_name, getattr(tvm, _name))

IMAGENET = "imagenet"  # --pretrained value: torchvision's weights from its local cache


def create_backbone(name: str, stem: str = "imagenet", width: float = 1.0
                    ) -> tuple[nn.Module, int]:
    """A trunk mapping (B, 3, H, W) to (B, D) features, and D.

    `stem="small"`: a 3×3 stride-1 first conv and no max-pool (the CIFAR ResNets' stem, which
    small-face FER models use), so a 48-px face keeps 6×6 cells at the last stage instead of 2×2;
    an ImageNet conv1 does not fit it and is skipped by `load_pretrained`. `width`: every
    stage's channels times this (0.5: a quarter of the compute, what a 2-core CPU trains on
    FER2013's 28,709 faces within the hour), built by timm's ResNet, whose layers carry
    torchvision's names.
    """
    net = BACKBONES.get(name)() if width == 1 else _narrow(name, width)
    if stem not in STEMS:
        raise ValueError(f"stem {stem!r}: choose one of {', '.join(STEMS)}")
    if stem == "small":
        net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def _narrow(name: str, width: float) -> nn.Module:
    """torchvision's `name` with each stage's channels × `width` (the stem keeps 64)."""
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    if not 0 < width <= 4:
        raise ValueError(f"width {width}: give a channel factor above 0, at most 4")
    block, layers = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet34": (BasicBlock, [3, 4, 6, 3]),
                     "resnet50": (Bottleneck, [3, 4, 6, 3])}.get(name, (None, None))
    if block is None:
        raise ValueError(f"width: the {name} trunk has one width; resnet18, resnet34 and "
                         "resnet50 take another")
    channels = tuple(max(8, round(c * width)) for c in (64, 128, 256, 512))
    return ResNet(block, layers, channels=channels)


def imagenet_path(backbone: str) -> Path:
    """Where torchvision keeps `backbone`'s ImageNet weights once downloaded (we never do)."""
    if backbone not in BACKBONE_NAMES:
        raise FileNotFoundError(f"`imagenet` is torchvision's weights of "
                                f"{', '.join(BACKBONE_NAMES)}, not of {backbone}; give a local "
                                "weights file")
    url = tvm.get_model_weights(backbone).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def read_state_dict(source: str | Path, backbone: str) -> tuple[dict[str, torch.Tensor], Path]:
    """The tensors of a weights file (or of `imagenet` from torchvision's cache) and its path."""
    path = imagenet_path(backbone) if str(source) == IMAGENET else Path(source).expanduser()
    if not path.is_file():
        where = f"torchvision's cache has no {backbone} weights at {path}" \
            if str(source) == IMAGENET else f"{path}: no such weights file"
        raise FileNotFoundError(f"{where}; fer-train never downloads weights (train without "
                                "--pretrained, or give a local file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types; the message names the file
        raise ValueError(f"{path}: not a PyTorch weights file ({exc})") from None
    for key in ("model", "state_dict", "model_state_dict"):  # fer-train; Emotion-FAN; MAFER
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}, path


def load_pretrained(model: nn.Module, source: str | Path, backbone: str) -> dict[str, int | str]:
    """Copy every tensor of `source` whose name (as is, or under `backbone.`) and shape match.

    A classifier head of another class count is skipped, as Emotion-FAN's loader skips `fc`.
    Returns what was loaded; a file matching nothing is an error, not a silent no-op.
    """
    state, path = read_state_dict(source, backbone)
    remap = getattr(model, "map_pretrained", None)  # a model whose seed's weights use other names
    if callable(remap):
        state = remap(state)
    own = model.state_dict()
    take = {}
    for key, value in state.items():
        for name in (key, f"backbone.{key}"):
            if name in own and own[name].shape == value.shape:
                take[name] = value
                break
    if not take:
        raise ValueError(f"{path}: none of its {len(state)} tensors fits this model "
                         f"(expected names like {next(iter(own))!r})")
    model.load_state_dict(take, strict=False)
    return {"path": str(path), "loaded": len(take), "skipped": len(state) - len(take)}
