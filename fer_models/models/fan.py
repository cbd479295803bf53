"""`fan`: Emotion-FAN's frame attention network (Meng et al., ICIP 2019) over a clip.

From `code/networks.py` (`ResNet_AT`) of Open-Debin/Emotion-FAN, kept as it is:
- a ResNet-18 feature f_i (512) per frame;
- self-attention α_i = sigmoid(fc(dropout(f_i))) and the clip feature
  v' = Σ α_i f_i / Σ α_i;
- with relation attention (`at_type="relation"`, the seed's `self_relation-attention`),
  β_i = sigmoid(fc(dropout([f_i, v']))) and the clip feature
  v = Σ α_i β_i [f_i, v'] / Σ α_i β_i (1024);
- dropout 0.5 before the self-attention classifier, 0.6 before the relation one; inputs in [0, 1]
  (the seed's `ToTensor()` without Normalize).
Changed: the seed trains on exactly 3 frames per clip and evaluates every frame of a clip
through an index matrix; here a clip is a padded (B, T) batch with a `valid` mask, so one
forward serves both and any number of frames (the loader gives 3 random frames when training,
all frames when testing). The trunk is selectable (`backbone=`).
"""

from __future__ import annotations

import torch
from torch import nn

from fer_models.models import AT_TYPES
from fer_models.models.backbone import create_backbone
from fer_models.models.base import Batch, FERModel


class FrameAttentionNetwork(FERModel):
    """Per-frame features, attention weights over the clip, weighted pooling, classifier.

    Outputs: `logits` (B, C); `weights` (B, T), the attention over each clip's valid frames
    (α normalised, or α·β normalised with relation attention; padding frames get 0), summing
    to 1; `alpha` (and `beta`) as the seed computes them.
    """

    clip = True

    def __init__(self, num_classes: int, at_type: str = "relation", backbone: str = "resnet18",
                 dropout: float = 0.5, dropout_relation: float = 0.6) -> None:
        super().__init__()
        if at_type not in AT_TYPES:
            raise ValueError(f"at_type must be one of {AT_TYPES}, not {at_type!r}")
        self.at_type = at_type
        self.backbone, dim = create_backbone(backbone)
        self.dropout = nn.Dropout(dropout)
        self.alpha = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())
        if at_type == "relation":
            self.beta = nn.Sequential(nn.Linear(2 * dim, 1), nn.Sigmoid())
            self.dropout_relation = nn.Dropout(dropout_relation)
        self.head = nn.Linear(dim if at_type == "self" else 2 * dim, num_classes)

    def forward(self, batch: Batch) -> Batch:
        image = batch["image"]
        b, t = image.shape[:2]
        valid = batch.get("valid")
        valid = torch.ones(b, t, device=image.device) if valid is None else valid.float()
        feats = self.backbone(self.prepare(image.flatten(0, 1))).view(b, t, -1).float()
        alpha = self.alpha(self.dropout(feats)).squeeze(-1).float() * valid
        clip = (alpha.unsqueeze(-1) * feats).sum(1) / alpha.sum(1, keepdim=True)
        if self.at_type == "self":
            weights = alpha / alpha.sum(1, keepdim=True)
            return {"logits": self.head(self.dropout(clip)), "weights": weights, "alpha": alpha}
        pairs = torch.cat([feats, clip.unsqueeze(1).expand_as(feats)], dim=-1)
        beta = self.beta(self.dropout(pairs)).squeeze(-1).float()
        both = alpha * beta
        weights = both / both.sum(1, keepdim=True)
        pooled = (weights.unsqueeze(-1) * pairs).sum(1)
        return {"logits": self.head(self.dropout_relation(pooled)), "weights": weights,
                "alpha": alpha, "beta": beta}
