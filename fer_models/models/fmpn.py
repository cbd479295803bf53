"""`fmpn`: FMPN-FER's facial motion prior network (Chen et al., WACV 2020).

From donydchen/FMPN-FER `model/model_utils.py` and `model/res_cls.py`, kept as they are:
- the mask generator (`ResFaceGenNet`, Johnson-style): 7×7 conv (ngf 64) → two 4×4 stride-2
  convs → 4 residual blocks (PReLU) → two 4×4 transposed convs → 7×7 conv to one channel →
  sigmoid, on the grey face in [0, 1]; trained against the fold's pseudo mask of the sample's
  class by MSE;
- the fusion net: conv3×3 + BN + ReLU on the colour face and on the mask-weighted grey face
  (mask × grey), summed, one residual block, conv3×3 → sigmoid: a 3-channel image for the
  classifier;
- the loss λ_cls · CE + λ · MSE with λ_cls = 1, λ = 0.1, and the generator at a tenth of the
  learning rate (the seed's `res_lr` 1e-5 beside `lr` 1e-4); inputs in [0, 1] (no Normalize).
- stage 1 trains the generator alone (MSE); stage 2 trains all three, the generator starting
  from stage 1's weights of the same fold when they exist (the seed's `load_ckpt(['resface'])`).
Changed: the classifier is a torchvision ResNet-18 by default instead of Inception-v3 at
299 px (`backbone=` selects resnet18/34/50), and the generator's mask is resampled to the masks'
size (`mask_size`, from the masks stage) for the MSE instead of resampling the target mask up
to the image, so the target is the masks stage's file as written.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_models.models.backbone import create_backbone
from fer_models.models.base import Batch, FERModel, TwoSteps

#: FMPN's class order: mask `<fold>/<index>.png` is for FMPN_CLASSES[index] (CK+ code − 1)
FMPN_CLASSES = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
#: ITU-R 601-2 luma, as PIL's convert('L') the seed uses
LUMA = (0.299, 0.587, 0.114)


class ResidualBlock(nn.Module):
    """Two 3×3 conv + BN + PReLU, added to the input (the seed's ResnetBlock, zero padding)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.PReLU(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.PReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MaskGenerator(nn.Module):
    """Grey face (B, 1, H, W) in [0, 1] → facial motion mask (B, 1, H, W) in [0, 1]."""

    def __init__(self, ngf: int = 64, n_blocks: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, ngf, 7, padding=3, bias=False),
                                   nn.BatchNorm2d(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, stride=2, padding=1,
                                          bias=False),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
        self.features = nn.Sequential(*layers)
        self.top = nn.Sequential(nn.Conv2d(ngf, 1, 7, padding=3, bias=False), nn.Sigmoid())

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        mask = self.top(self.features(grey))
        if mask.shape[-2:] != grey.shape[-2:]:  # sides not a multiple of 4
            mask = F.interpolate(mask, size=grey.shape[-2:], mode="bilinear", align_corners=False)
        return mask


class FusionNet(nn.Module):
    """Colour face + mask-weighted grey face → the classifier's 3-channel input in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(3), nn.ReLU(True))
        self.focus = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(3), nn.ReLU(True))
        self.out = nn.Sequential(ResidualBlock(3), nn.Conv2d(3, 3, 3, padding=1, bias=False),
                                 nn.Sigmoid())

    def forward(self, image: torch.Tensor, focus: torch.Tensor) -> torch.Tensor:
        return self.out(self.colour(image) + self.focus(focus))


class FMPN(TwoSteps, FERModel):
    """Mask generator + fusion + classifier; `stage` 1 = the generator alone.

    Outputs: `mask` (B, 1, mask_size, mask_size) in [0, 1]; in stage 2 also `logits` and
    `focus` (the mask-weighted grey face at the input size).
    """

    needs_masks = True
    STEP = "stage"
    defaults: ClassVar[dict[str, Any]] = {"size": 224, "lr": 1e-4, "epochs": 30,
                                          "batch_size": 32}

    def __init__(self, num_classes: int, stage: int = 2, mask_size: int = 224,
                 backbone: str = "resnet18", ngf: int = 64, n_blocks: int = 4,
                 lambda_mask: float = 0.1, lambda_cls: float = 1.0,
                 generator_lr_scale: float = 0.1) -> None:
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"FMPN stage is 1 (generator) or 2 (joint), not {stage}")
        self.stage, self.mask_size = stage, mask_size
        self.lambda_mask, self.lambda_cls = lambda_mask, lambda_cls
        self.generator_lr_scale = generator_lr_scale
        self.generator = MaskGenerator(ngf, n_blocks)
        if stage == 2:
            self.fusion = FusionNet()
            self.backbone, dim = create_backbone(backbone)
            self.head = nn.Linear(dim, num_classes)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, batch: Batch) -> Batch:
        image = self.prepare(batch["image"])
        grey = (image * self.luma).sum(1, keepdim=True)
        full = self.generator(grey).float()
        mask = full
        if full.shape[-1] != self.mask_size:
            mask = F.interpolate(full, size=(self.mask_size, self.mask_size), mode="bilinear",
                                 align_corners=False, antialias=True).clamp(0, 1)
        out = {"mask": mask}
        if self.stage == 2:
            focus = full * grey
            features = self.backbone(self.fusion(image, focus))
            out.update(logits=self.head(features), focus=focus)
        return out

    def loss(self, out: Batch, batch: Batch) -> Batch:
        """MSE against the class's pseudo mask (over samples whose class has one in this fold),
        plus CE in stage 2."""
        target = batch["mask"].float() / 255.0
        per_sample = (out["mask"].float() - target).square().mean((1, 2, 3))
        has = batch["has_mask"].float()
        mse = (per_sample * has).sum() / has.sum().clamp(min=1.0)
        if self.stage == 1:
            return {"loss": mse, "mse": mse}
        ce = F.cross_entropy(out["logits"].float(), batch["label"])
        return {"loss": self.lambda_cls * ce + self.lambda_mask * mse, "ce": ce, "mse": mse}

    def load_previous(self, state: dict[str, torch.Tensor]) -> str:
        """Stage 1's generator (the seed's `load_ckpt(['resface'])`)."""
        generator = {n: t for n, t in state.items() if n.startswith("generator.")}
        self.load_state_dict(generator, strict=False)
        return f"{len(generator)} generator tensors"

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        generator = list(self.generator.parameters())
        ids = {id(p) for p in generator}
        rest = [p for p in self.parameters() if id(p) not in ids]
        if self.stage == 1:
            return [{"params": generator, "lr": lr}]
        return [{"params": rest, "lr": lr},
                {"params": generator, "lr": lr * self.generator_lr_scale}]
