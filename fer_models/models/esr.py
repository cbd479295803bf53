"""`esr`: Ensembles with Shared Representations (Siqueira, Magg, Wermter, AAAI 2020).

From siqueira-hc/Efficient-Facial-Feature-Learning-with-Wide-Ensemble-based-Convolutional-Neural-
Networks (`model/ml/esr_9.py`, `main_affectnet_discrete.py`, as copied by Diversified FER's
`model/diversified_esr.py` and `esr_affectnet.py`), kept:
- the shared base: conv 5×5 (64) and three conv 3×3 (128), each + BN + ReLU, 2×2 max-pool after
  the second and the fourth; N convolutional branches on it: conv 3×3 128, 256 (+ pool), 256,
  512 (padded), each + BN + ReLU, global average pool, a linear layer to the classes. The names
  of ESR's files (`conv1`, `bn1`, …), the base under `backbone.`, so `--pretrained` takes ESR's
  `Net-Base-Shared_Representations.pt`; 96-px colour faces in [0, 1] (no Normalize);
- the loss: the sum of the branches' cross-entropies;
- the ensemble's decision: a majority vote of the branches' argmax (`ensemble="vote"`);
- the training branch by branch (`grow=True`): run `esr-1` trains the base with one branch; run
  `esr-n` takes the base and the n − 1 branches of `esr-(n-1)` (the same fold's last.pt),
  adds a new, randomly initialised branch (ESR's `add_branch()`), trains the new branch at the
  learning rate and the base and the trained branches at a tenth of it (ESR: 0.1 and 0.01), on
  the sum of every branch's CE; 50 epochs for the first branch, 20 for each later one
  (`defaults_for`);
- each branch's accuracy beside the ensemble's (loss parts `acc_branch<i>`).
Changed:
- AdamW (lr 1e-3) and the loop's cosine schedule instead of SGD (lr 0.1, momentum 0.9) and
  StepLR (10 epochs, ×0.5); the fold's whole training part instead of a class-balanced
  AffectNet subsample (≤ 5000 per class) drawn anew for each branch;
- without `grow` (the default, as the loop trains one run) the N branches train together from
  the start, all at the learning rate;
- a step starts from the previous step's last epoch (its last.pt), not from the epoch of best
  validation accuracy that ESR reloads (`reload(best_ensemble)`);
- a tied vote goes to the tied class of highest mean probability (ESR: torch.max's pick), and
  `logits` are the log vote shares (see `combine`), so their softmax is a distribution;
- the dataset's classes instead of AffectNet's 8, no arousal/valence head;
- options: `ensemble="mean"` (the mean of the softmaxes) beside the vote; `cbam=True` puts
  Diversified FER's CBAM after every conv block (the architecture `dfr` trains).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from timm.layers.cbam import CbamModule
from torch import nn

from fer_models.inputs import InputError
from fer_models.models.base import Batch, FERModel
from fer_models.models.options import ENSEMBLES

BRANCHES = 9  # ESR-9
GROW_EPOCHS = 20  # ESR's epochs for each branch after the first (main_affectnet_discrete.py)
#: the smallest face side the layers take: 54 px leave the last branch conv a 1×1 map
MIN_SIZE = 54
#: (in, out, kernel, padding, max-pool after) of each conv block, ESR's
BASE = ((3, 64, 5, 0, False), (64, 128, 3, 0, True), (128, 128, 3, 0, False),
        (128, 128, 3, 0, True))
BRANCH = ((128, 128, 3, 0, False), (128, 256, 3, 0, True), (256, 256, 3, 0, False),
          (256, 512, 3, 1, False))


class CBAM(CbamModule):
    """timm's CBAM (channel gate from avg- and max-pooled MLP, 7×7 spatial gate), returning its
    gates too: Diversified FER's diversity compares them across branches."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, rd_ratio=1 / 16, mlp_bias=True)  # the seed's Linear has bias

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) → (gated x, channel gate (B, C), spatial gate (B, H, W))."""
        c = self.channel
        mlp = [c.fc2(c.act(c.fc1(pooled))) for pooled in
               (x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True))]
        channel = c.gate(mlp[0] + mlp[1])
        x = x * channel
        s = self.spatial
        spatial = s.gate(s.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        return x * spatial, channel.flatten(1), spatial[:, 0]


class ConvStack(nn.Module):
    """Conv + BN + ReLU blocks (max-pool where ESR has one), CBAM after each if asked; returns
    the features and the last CBAM's gates (None without CBAM)."""

    def __init__(self, blocks: tuple[tuple[int, int, int, int, bool], ...], cbam: bool) -> None:
        super().__init__()
        self.pooled = [pool for *_, pool in blocks]
        self.cbam = cbam
        for i, (cin, cout, kernel, padding, _) in enumerate(blocks, 1):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, kernel, 1, padding))
            setattr(self, f"bn{i}", nn.BatchNorm2d(cout))
            if cbam:
                setattr(self, f"cbam{i}", CBAM(cout))
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                torch.Tensor | None]:
        channel = spatial = None
        for i, pool in enumerate(self.pooled, 1):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if pool:
                x = self.pool(x)
            if self.cbam:
                x, channel, spatial = getattr(self, f"cbam{i}")(x)
        return x, channel, spatial


class Branch(ConvStack):
    """One convolutional branch of the ensemble: four conv blocks, global pool, classifier."""

    def __init__(self, num_classes: int, cbam: bool) -> None:
        super().__init__(BRANCH, cbam)
        self.fc = nn.Linear(BRANCH[-1][1], num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                torch.Tensor | None]:
        """Shared features → (class scores, last channel gate, last spatial gate)."""
        x, channel, spatial = super().forward(x)
        return self.fc(x.mean((2, 3))), channel, spatial


def combine(branch_logits: torch.Tensor, ensemble: str) -> torch.Tensor:
    """The ensemble's log-probabilities (B, C) from the branches' scores (B, N, C).

    `vote`: log((votes + mean probability) / (N + 1)): each branch's argmax is one vote; the
    mean probability (< 1 in all) only breaks ties, and the shares sum to one. `mean`: the log
    of the mean of the branches' softmaxes.
    """
    probs = branch_logits.float().softmax(-1)
    if ensemble == "mean":
        return probs.mean(1).clamp_min(1e-12).log()
    n, classes = branch_logits.shape[1:]
    votes = F.one_hot(branch_logits.argmax(-1), classes).sum(1).float()
    return ((votes + probs.mean(1)) / (n + 1)).log()


class ESR(FERModel):
    """Shared base → N branches → vote.

    Outputs: `logits` (B, C) the ensemble's (see `combine`), `branch_logits` (B, N, C); with
    `cbam`, the last CBAM's gates of every branch: `channel_attention` (B, N, 512) and
    `spatial_attention` (B, N, h, w).
    """

    defaults: ClassVar[dict[str, Any]] = {"size": 96, "lr": 1e-3, "epochs": 50,
                                          "batch_size": 32}
    previous_required = True  # a grown branch without the ensemble it joins is no ESR

    def __init__(self, num_classes: int, branches: int = BRANCHES, grow: bool = False,
                 grow_lr_scale: float = 0.1, ensemble: str = "vote", cbam: bool = False) -> None:
        super().__init__()
        if branches < 1:
            raise InputError(f"esr needs at least one branch, not {branches}")
        if ensemble not in ENSEMBLES:
            raise InputError(f"esr ensemble is {' or '.join(ENSEMBLES)}, not {ensemble!r}")
        self.grow, self.grow_lr_scale, self.ensemble = grow, grow_lr_scale, ensemble
        self.backbone = ConvStack(BASE, cbam)  # ESR's "base": the shared representations
        self.branches = nn.ModuleList(Branch(num_classes, cbam) for _ in range(branches))

    def forward(self, batch: Batch) -> Batch:
        x = self.prepare(batch["image"])
        if min(x.shape[-2:]) < MIN_SIZE:
            raise InputError(f"esr needs faces of at least {MIN_SIZE} px (--size), not "
                             f"{tuple(x.shape[-2:])}")
        shared, _, _ = self.backbone(x)
        outs = [branch(shared) for branch in self.branches]
        branch_logits = torch.stack([scores for scores, _, _ in outs], 1).float()
        out = {"logits": combine(branch_logits, self.ensemble), "branch_logits": branch_logits}
        if self.backbone.cbam:
            out["channel_attention"] = torch.stack([c for _, c, _ in outs], 1).float()
            out["spatial_attention"] = torch.stack([s for _, _, s in outs], 1).float()
        return out

    def branch_ce(self, out: Batch, batch: Batch) -> torch.Tensor:
        """Each branch's mean cross-entropy over the batch, (N,), on the class or on the vote
        distribution (`target`: FER+'s soft labels)."""
        scores = out["branch_logits"].float()
        b, n, c = scores.shape
        per = F.cross_entropy(scores.reshape(b * n, c),
                              self.target(batch).repeat_interleave(n, dim=0), reduction="none")
        return per.view(b, n).mean(0)

    def loss(self, out: Batch, batch: Batch) -> Batch:
        """The sum of the branches' CE (ESR's), and each branch's accuracy on the batch (the
        loop averages the parts over the epoch: train_/test_acc_branch<i> in the history)."""
        ce = self.branch_ce(out, batch).sum()
        return {"loss": ce, "ce": ce, **self.branch_accuracy(out, batch)}

    @staticmethod
    def branch_accuracy(out: Batch, batch: Batch) -> Batch:
        hits = out["branch_logits"].argmax(-1) == batch["label"][:, None]
        return {f"acc_branch{i + 1}": hit for i, hit in enumerate(hits.float().mean(0))}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Growing: the new branch at lr; the base and the trained branches at lr × scale."""
        if not self.grow or len(self.branches) == 1:
            return [{"params": list(self.parameters()), "lr": lr}]
        new = list(self.branches[-1].parameters())
        ids = {id(p) for p in new}
        trained = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": new, "lr": lr},
                {"params": trained, "lr": lr * self.grow_lr_scale}]

    @classmethod
    def defaults_for(cls, options: dict[str, Any]) -> dict[str, Any]:
        """`defaults`; growing, ESR's 20 epochs for every branch after the first (50)."""
        if options.get("grow") and options.get("branches", BRANCHES) > 1:
            return {**cls.defaults, "epochs": GROW_EPOCHS}
        return dict(cls.defaults)

    @classmethod
    def run_name(cls, name: str, options: dict[str, Any]) -> str:
        """Growing: one run per ensemble size, `esr-1` … `esr-9` (ESR-9 is `esr-9`)."""
        if options.get("grow"):
            return f"{name}-{options.get('branches', BRANCHES)}"
        return name

    @classmethod
    def previous_step(cls, name: str, options: dict[str, Any]) -> tuple[str, str] | None:
        n = options.get("branches", BRANCHES)
        if not options.get("grow") or n == 1:
            return None
        return f"{name}-{n - 1}", f"fer-train --model {name} --grow --branches {n - 1}"

    def load_previous(self, state: dict[str, torch.Tensor]) -> str:
        """The base and the n − 1 branches of the ensemble one branch smaller; the new (last)
        branch keeps its random initialisation, as ESR's `add_branch()`."""
        n = len(self.branches) - 1
        theirs = {int(k.split(".")[1]) for k in state if k.startswith("branches.")}
        if theirs != set(range(n)):
            raise RuntimeError(f"it has {len(theirs)} branches, not {n}")
        take = {k: v for k, v in state.items()
                if k.startswith("backbone.") or k.startswith("branches.")}
        own = {k for k in self.state_dict()
               if k.startswith("backbone.") or int(k.split(".")[1]) < n}
        if set(take) != own:
            raise RuntimeError(f"tensors differ: {sorted(set(take) ^ own)[:3]}")
        self.load_state_dict(take, strict=False)
        return f"the shared base and {n} trained branch(es) ({len(take)} tensors)"
