"""`manet`: MA-Net (Zhao, Liu & Wang, TIP 2021), global multi-scale and local attention features.

From zengqunzhao/MA-Net (`model/manet.py`, `model/attention.py`, `main.py`) as the Diversified
FER seed (negarhdr/Diversified-Facial-Expression-Recognition: `model/diversified_manet.py`,
`model/cbam.py`, `manet_rafdb.py`) trains it. Kept:
- a ResNet-18 trunk up to `layer2` (stride 8: 28 × 28 × 128 at 224 px), where the network forks;
- the local branch: the map cut into 2 × 2 patches (the seed's `patch_11 … patch_22`, row by
  row), each through its own `layer3` (stride 2) and `layer4` (stride 1) of BasicBlocks with
  CBAM after the second BN (the seed's `AttentionBlock`: channel gate from the avg- and max-pooled
  map through a shared MLP, reduction 16, then a 7 × 7 spatial gate over the channel max and
  mean), average-pooled over the four patches together, `fc_1`;
- the global branch: `layer3` and `layer4` (both stride 2) of the seed's `MulScaleBlock`s (the
  conv1 output split into four 1/4-width groups, two hierarchical residual paths of 3 × 3 convs
  over them, summed), average-pooled, `fc_2`;
- scores β · local + (1 − β) · global and loss β · CE(local) + (1 − β) · CE(global), β = 0.6
  (the seeds' `--beta`); ImageNet mean / std (the Diversified seed's `manet_rafdb.py`);
  the seed's init (Kaiming fan-out convolutions, BN 1 / 0) and its parameter names, so
  MA-Net's `Pretrained_on_MSCeleb.pth.tar` loads through `--pretrained` (all but the
  12666-identity `fc_1` / `fc_2`; the trunk's tensors under `backbone.`, as torchvision's
  resnet18 file fills the trunk alone).
Changed: the trunk is torchvision's (`backbone=` resnet18 or resnet34; the branches take the
trunk's `layer3` / `layer4` block counts); `MulScaleBlock`'s second path runs from the last group
to the first as in MA-Net's own code (the Diversified copy runs both paths first to last, which
the MS-Celeb weights were not trained with); the patch grid is an option (`grid`, P = grid²;
2 is the seed's) and follows the map's size instead of the seed's fixed 0:14 / 14:28 slices, so
any side whose `layer2` map divides into the grid works (a multiple of 8 · grid: 224, 112, 96,
64, 48; 32 the least for grid 2, its patch maps 1 × 1 after `layer3`); AdamW + cosine (the
loop's) instead of SGD (momentum 0.9, weight decay 1e-4) + StepLR(15, 0.1), with the seed's
100 epochs and batch 128 as defaults but lr 1e-3, not its 0.01: that is an SGD rate, and under
AdamW it blew the eval-mode loss up to 2e5 in a 12-step check (1e-3: 0.61); the seeds' crops,
rotations and random erasing are the loop's augmentation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1, conv3x3

from fer_models.inputs import InputError
from fer_models.models.backbone import BACKBONES
from fer_models.models.base import Batch, FERModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ChannelGate(nn.Module):
    """CBAM's channel attention: sigmoid(MLP(avg pool) + MLP(max pool)) per channel."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # index 0 holds no weights: `mlp.1` / `mlp.3`, the seed's names
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction),
                                 nn.ReLU(), nn.Linear(channels // reduction, channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.sigmoid(self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3))))
        return x * weights[:, :, None, None], weights


class SpatialGate(nn.Module):
    """CBAM's spatial attention: sigmoid(BN(conv7×7([channel max, channel mean])))."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.spatial = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False),
            bn=nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)))  # the seed's BasicConv

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        weights = torch.sigmoid(self.spatial(pooled))
        return x * weights, weights[:, 0]


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al. 2018), as MA-Net's `attention.py`."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # CapWords attribute names: the seed's state-dict keys (`cbam.ChannelGate.mlp.1.weight`)
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gated map, the channel weights (B, C) and the spatial weights (B, h, w)."""
        x, channel = self.ChannelGate(x)
        x, spatial = self.SpatialGate(x)
        return x, channel, spatial


class AttentionBlock(BasicBlock):
    """torchvision's BasicBlock with CBAM on the residual path after the second BN."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__(inplanes, planes, stride, downsample)
        self.cbam = CBAM(planes, 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output, channel weights, spatial weights): the weights are outputs of the model, so
        a branch runs its blocks one by one instead of as a Sequential."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out, channel, spatial = self.cbam(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity), channel, spatial


class MulScaleBlock(nn.Module):
    """MA-Net's multi-scale block: conv-BN-ReLU, four 1/4-width groups, two hierarchical paths
    (groups 1 → 4 and 4 → 1, each 3 × 3 conv taking the previous output plus its group), their
    sum, the residual."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.width = planes // 4
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        for path in (1, 2):
            for group in range(1, 5):
                setattr(self, f"conv{path}_2_{group}", conv3x3(self.width, self.width))
                setattr(self, f"bn{path}_2_{group}", nn.BatchNorm2d(self.width))
        self.downsample = downsample

    def _path(self, path: int, groups: list[torch.Tensor], order: list[int]) -> torch.Tensor:
        outs: dict[int, torch.Tensor] = {}
        previous: torch.Tensor | None = None
        for g in order:
            x = groups[g] if previous is None else self.relu(previous) + groups[g]
            previous = outs[g] = getattr(self, f"bn{path}_2_{g + 1}")(
                getattr(self, f"conv{path}_2_{g + 1}")(x))
        return torch.cat([outs[g] for g in range(4)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        groups = list(torch.split(out, self.width, 1))
        out = self._path(1, groups, [0, 1, 2, 3]) + self._path(2, groups, [3, 2, 1, 0])
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def make_stage(block: type[nn.Module], inplanes: int, planes: int, blocks: int,
               stride: int) -> nn.Sequential:
    """The seed's `_make_layer`: a 1 × 1 conv + BN shortcut where shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    return nn.Sequential(block(inplanes, planes, stride, downsample),
                         *(block(planes, planes) for _ in range(1, blocks)))


class MANet(FERModel):
    """Trunk → (P patches, each through its attention layers) and (multi-scale layers) → scores.

    Outputs (stable keys: `dfr` builds on them), D = 512, P = grid² (4), row by row from the
    top left; (h, w) the patch maps' side after `layer4` (7 × 7 at 224 px):
    - `logits` (B, C): β · `local_logits` + (1 − β) · `global_logits`, the seed's `output`;
    - `local_logits`, `global_logits` (B, C): `fc_1` and `fc_2`;
    - `local_maps` (B, P, D, h, w): each patch's `layer4` map (the seed's `local_feat_b1`,
      batch first);
    - `local_features` (B, P, D): each patch's map average-pooled;
    - `global_features` (B, D): the multi-scale branch, pooled (what `fc_2` sees);
    - `branch_features` (B, 2, D): the local branch pooled over all patches (what `fc_1`
      sees) and `global_features` (the seed's `global_feat_b12`, batch first);
    - `channel_attention` (B, P, D), `spatial_attention` (B, P, h, w): the sigmoid weights in
      (0, 1) of each patch's last CBAM.
    """

    defaults: ClassVar[dict[str, Any]] = {"size": 224, "lr": 1e-3, "epochs": 100,
                                          "batch_size": 128}

    def __init__(self, num_classes: int, backbone: str = "resnet18", beta: float = 0.6,
                 grid: int = 2) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise InputError(f"manet: beta {beta} is not a weight in [0, 1]")
        if grid < 1:
            raise InputError(f"manet: grid {grid} must be at least 1 (patches per side)")
        self.beta, self.grid = beta, grid
        net = BACKBONES.get(backbone)()
        if not isinstance(net.layer1[0], BasicBlock):
            raise InputError(f"manet: {backbone} is built of bottleneck blocks; MA-Net's branches "
                             "are BasicBlock stages (use resnet18 or resnet34)")
        # the trunk keeps torchvision's names under `backbone.`, as every model here
        self.backbone = nn.Sequential(OrderedDict(
            (name, getattr(net, name))
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2")))
        width = net.layer2[-1].bn2.num_features  # 128
        n3, n4 = len(net.layer3), len(net.layer4)
        for p in range(1, grid * grid + 1):  # the seed's names: layer3_1_p1 … layer4_1_p4
            setattr(self, f"layer3_1_p{p}", make_stage(AttentionBlock, width, 256, n3, 2))
            setattr(self, f"layer4_1_p{p}", make_stage(AttentionBlock, 256, 512, n4, 1))
        self.layer3_2 = make_stage(MulScaleBlock, width, 256, n3, 2)
        self.layer4_2 = make_stage(MulScaleBlock, 256, 512, n4, 2)
        self.fc_1 = nn.Linear(512, num_classes)
        self.fc_2 = nn.Linear(512, num_classes)
        for name, module in self.named_modules():
            if name.startswith("backbone"):
                continue  # torchvision initialised its own layers the same way
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @property
    def patches(self) -> int:
        """P, the local branch's patch count."""
        return self.grid * self.grid

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """0…255 → ImageNet-normalised, as the seed's `Normalize(mean, std)` after ToTensor."""
        x = (image.float() / 255.0 - self.mean) / self.std
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's map cut into grid × grid equal patches, row by row from the top left."""
        h, w = x.shape[-2:]
        g = self.grid
        if h % g or w % g or h < g or w < g:
            raise InputError(f"manet: the trunk's {h}×{w} map does not cut into {g}×{g} equal "
                             f"patches; use an input side that is a multiple of {8 * g}")
        ph, pw = h // g, w // g
        return [x[:, :, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw]
                for r in range(g) for c in range(g)]

    def local_branch(self, p: int, x: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patch p (0-based) through its attention layers: its map and its last CBAM's weights."""
        channel = spatial = x  # replaced by the first block
        for stage in (getattr(self, f"layer3_1_p{p + 1}"), getattr(self, f"layer4_1_p{p + 1}")):
            for block in stage:
                x, channel, spatial = block(x)
        return x, channel, spatial

    def forward(self, batch: Batch) -> Batch:
        x = self.backbone(self.prepare(batch["image"]))
        local = [self.local_branch(p, patch) for p, patch in enumerate(self.split(x))]
        local_maps = torch.stack([m for m, _, _ in local], 1)
        local_features = local_maps.mean((-2, -1))
        # the seed pools the patches' maps put back together: with equal patches, the mean
        local_pooled = local_features.mean(1)
        global_features = self.layer4_2(self.layer3_2(x)).mean((-2, -1))
        local_logits = self.fc_1(local_pooled).float()
        global_logits = self.fc_2(global_features).float()
        return {
            "logits": self.beta * local_logits + (1 - self.beta) * global_logits,
            "local_logits": local_logits, "global_logits": global_logits,
            "local_maps": local_maps, "local_features": local_features,
            "global_features": global_features,
            "branch_features": torch.stack([local_pooled, global_features], 1),
            "channel_attention": torch.stack([c for _, c, _ in local], 1),
            "spatial_attention": torch.stack([s for _, _, s in local], 1),
        }

    def loss(self, out: Batch, batch: Batch) -> Batch:
        """β · CE(local) + (1 − β) · CE(global), the seed's; `ce` is that sum."""
        target = self.target(batch)
        ce_local = F.cross_entropy(out["local_logits"], target)
        ce_global = F.cross_entropy(out["global_logits"], target)
        ce = self.beta * ce_local + (1 - self.beta) * ce_global
        return {"loss": ce, "ce": ce, "ce_local": ce_local, "ce_global": ce_global}
