"""`resnet18`: the seeds' frame baseline — a torchvision ResNet classifying one face.

Emotion-FAN's `baseline_ck_plus.py` / `baseline_afew.py`: ResNet-18, 224 px, inputs in [0, 1]
(`Resize(224)`, `RandomHorizontalFlip()`, `ToTensor()`, no Normalize), one label per frame.
Kept: the architecture and the input range. Changed: AdamW instead of SGD, the trunk is
selectable (`backbone=`: resnet18, resnet34, resnet50), and `stem="small"` gives it the CIFAR
ResNets' 3×3 stride-1 stem without max-pool, for 48-px faces (CK+48, FER2013), and
`standardize=True` brings each face to zero mean and unit variance first, so a subject filmed
darker is not another distribution; `width` scales the trunk's channels (0.5: FER2013 on
a CPU). `expression=True` also reads the face's MediaPipe
blendshape scores and head pose (`fer_models.inputs.EXPRESSION` values, zeros for a face without
them) and classifies the trunk's features and those values together (late fusion).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_models.inputs import EXPRESSION
from fer_models.models.backbone import create_backbone
from fer_models.models.base import Batch, FERModel


class ResNetClassifier(FERModel):
    """Backbone → dropout → linear classifier."""

    def __init__(self, num_classes: int, backbone: str = "resnet18", dropout: float = 0.5,
                 stem: str = "imagenet", standardize: bool = False,
                 expression: bool = False, width: float = 1.0) -> None:
        super().__init__()
        self.standardize, self.expression = standardize, expression
        self.backbone, dim = create_backbone(backbone, stem, width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim + (EXPRESSION if expression else 0), num_classes)

    @classmethod
    def needs_expression(cls, options: dict[str, Any]) -> bool:
        return bool(options.get("expression"))

    def forward(self, batch: Batch) -> Batch:
        x = self.prepare(batch["image"])
        if self.standardize:  # each face to zero mean, unit variance: lighting and skin tone
            x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).add(1e-6)
        features = self.dropout(self.backbone(x))
        if self.expression:
            has = batch["has_expression"].to(features.dtype)[:, None]
            features = torch.cat([features, batch["expression"].to(features.dtype) * has], 1)
        return {"logits": self.head(features)}
