"""`landmark-aux`: a classifier with a 68-point landmark regression head beside it.

From RainbowRui/Landmark-Driven-Facial-Expression-Recognition (`models/resnet.py`,
`expression_recognition.py`), kept: a ResNet-18 feature → dropout 0.5 → three heads: the class
scores, an SCN importance weight sigmoid(fc) that scales them (Wang et al. 2020), and 136 values:
the offset of each of the 68 points from the training part's mean shape (the mean of every shape
and its mirror image). Loss = CE + rank regularisation (the top 70 % of weights should exceed the
rest by margin 0.5) + w · L1 of the landmarks, the L1 counted only over samples that have
landmarks (the seed's `have_landmark`) and averaged over those; inputs normalised to [−1, 1].
Changed: landmarks are in the chip's normalised coordinates ([0, 1] across the face) instead of
48-px FER2013 pixels (hence w = 10 by default, not 1); colour chips at the input size instead of
48-px grey; the landmark head starts near zero (at the mean shape) instead of Kaiming's init,
whose first predictions fall outside the face; SCN's relabelling after epoch 1800 is left out;
the trunk is torchvision's (`backbone=`), not the seed's CIFAR-style 3×3-stem ResNet.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fer_models.data import MIRROR68
from fer_models.inputs import N_POINTS
from fer_models.models.backbone import create_backbone
from fer_models.models.base import Batch, FERModel


class LandmarkAux(FERModel):
    """Backbone → (weighted class scores, 68 landmarks).

    Outputs: `logits` (B, C) = attention × scores, `attention` (B,), `landmarks` (B, 68, 2).
    """

    needs_landmarks = True
    norm: ClassVar[tuple[float, float]] = (0.5, 0.5)

    def __init__(self, num_classes: int, backbone: str = "resnet18", dropout: float = 0.5,
                 landmark_weight: float = 10.0, rank_ratio: float = 0.7,
                 rank_margin: float = 0.5) -> None:
        super().__init__()
        self.landmark_weight = landmark_weight
        self.rank_ratio, self.rank_margin = rank_ratio, rank_margin
        self.backbone, dim = create_backbone(backbone)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)
        self.attention = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())
        self.landmark_head = nn.Linear(dim, N_POINTS * 2)
        nn.init.kaiming_normal_(self.head.weight)  # the seed's init
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.landmark_head.weight, std=1e-3)  # start at the mean shape
        nn.init.zeros_(self.landmark_head.bias)
        self.register_buffer("mean_shape", torch.full((N_POINTS, 2), 0.5))

    def init_from_data(self, landmarks: torch.Tensor | None) -> None:
        """The mean shape of the training part and its mirror image (the seed's)."""
        if landmarks is None or len(landmarks) == 0:
            return
        mirrored = landmarks[:, MIRROR68].clone()
        mirrored[..., 0] = 1.0 - mirrored[..., 0]
        self.mean_shape.copy_(torch.cat([landmarks, mirrored]).float().mean(0))

    def forward(self, batch: Batch) -> Batch:
        features = self.dropout(self.backbone(self.prepare(batch["image"])))
        attention = self.attention(features).squeeze(-1).float()
        offsets = self.landmark_head(features).float().view(-1, N_POINTS, 2)
        return {"logits": attention.unsqueeze(-1) * self.head(features).float(),
                "attention": attention, "landmarks": self.mean_shape + offsets}

    def loss(self, out: Batch, batch: Batch) -> Batch:
        ce = F.cross_entropy(out["logits"], batch["label"])
        has = batch["has_landmarks"].bool()
        pred = out["landmarks"]
        # a sample without landmarks is its own target: no error, no gradient, whatever it holds
        target = torch.where(has[:, None, None], batch["landmarks"].float(), pred.detach())
        landmark = (pred - target).abs().mean((1, 2)).sum() / has.sum().clamp(min=1)
        rank = self.rank_loss(out["attention"])
        total = ce + rank + self.landmark_weight * landmark
        return {"loss": total, "ce": ce, "landmark": landmark, "rank": rank}

    def rank_loss(self, attention: torch.Tensor) -> torch.Tensor:
        """SCN's rank regularisation: max(0, margin − (mean of the top − mean of the rest))."""
        n = attention.numel()
        top = int(n * self.rank_ratio)
        if top < 1 or top >= n:
            return attention.new_zeros(())
        ranked = attention.sort(descending=True).values
        return F.relu(self.rank_margin - (ranked[:top].mean() - ranked[top:].mean()))
