"""`dfr`: Diversified FER (Heidari & Iosifidis 2022): a diversity loss on ESR or MA-Net.

From negarhdr/Diversified-Facial-Expression-Recognition (`model/diversified_esr.py`,
`model/diversified_manet.py`, `esr_affectnet.py`, `manet_rafdb.py`; `BranchDiversity`,
`FeatDiversity`), kept:
- the similarity of M feature sets f_1 … f_M: K_ij = mean over the batch of
  exp(−γ ‖f_i − f_j‖²), γ = 10, and the diversity term from det(K) (the seeds' `det_div`);
- `base="esr"`: ESR (`esr`) with CBAM after every conv block of the base and the branches
  (`diversified_esr.py`); two terms over the N branches, from the last CBAM of each: the spatial
  gates (B, h, w; 6 × 6 at 96 px) and the channel gates (B, 512); none while the ensemble has
  one branch; ESR's training as `esr` does it (one run, or `grow` branch by branch);
- `base="manet"`: MA-Net (`manet`); three terms: over the P = 4 patches of the local branch, their
  `layer4` maps averaged over channels (B, h, w) and over space (B, 512), and over the two
  branches' pooled features (B, 512);
- loss = the base's CE (ESR: the sum over branches; MA-Net: β · CE_local + (1 − β) · CE_global)
  + w · the sum of the terms, w = 1: the seeds add each `det_div` unweighted (`loss += div_sp`,
  `loss += div_ch` in esr_*.py; three `loss += … .det_div` in manet_*.py).
Changed: the term is 1 − det(K), K with the kernel's own ones on its diagonal, instead of −det
of the seeds' K with zeros there (`if i != j`): for two sets both are k12², but with the
seeds' zero diagonal det(K) of three branches is +2·k12·k13·k23, so −det rewarded alike
branches for odd counts; with the ones, det(K) ∈ [0, 1] is the volume the sets span (1 = all
unlike, 0 = two alike), and the constant 1 only makes the term read as a loss ≥ 0. Vectorised
instead of the seeds' double loop; computed in float32 outside autocast. `diversity_weight` and
`gamma` are options. The rest is `esr`'s and `manet`'s (their docstrings).

`DFR` is what the registry makes: `DFR(num_classes, base=…)` returns a `DiversifiedESR` or a
`DiversifiedMANet`, each the base model itself (a subclass) plus the term, so the weights keep
the base's names: `--pretrained` and the step hooks work as for `esr` and `manet`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from fer_models.inputs import InputError
from fer_models.models.base import Batch, FERModel
from fer_models.models.esr import BRANCHES, ESR
from fer_models.models.manet import MANet
from fer_models.models.options import BASES

#: the options only one base takes, with their defaults (a DFR of the other base: an error)
ESR_OPTIONS = {"branches": BRANCHES, "grow": False, "grow_lr_scale": 0.1, "ensemble": "vote"}
MANET_OPTIONS = {"backbone": "resnet18", "beta": 0.6, "grid": 2}


def kernel_diversity(features: torch.Tensor, gamma: float) -> torch.Tensor:
    """1 − det(K) of M feature sets (B, M, D): K_ij = mean_b exp(−γ ‖f_bi − f_bj‖²).

    0 when the sets are far apart (K = I), 1 when two of them coincide (K singular).
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().flatten(2)
        distance = (f[:, :, None] - f[:, None]).square().sum(-1)  # (B, M, M), 0 on the diagonal
        kernel = torch.exp(-gamma * distance).mean(0)
        return 1.0 - torch.linalg.det(kernel)


class DFR(FERModel):
    """The registered `dfr`: its options, its run names, and the base it builds.

    Outputs: the base's (`esr`'s or `manet`'s). Loss parts: the base's, `diversity` (the sum of
    the terms) and each term (`div_spatial`, `div_channel`; MA-Net also `div_branch`).
    """

    defaults: ClassVar[dict[str, Any]] = ESR.defaults  # base=manet: see `defaults_for`
    #: the base's name, and the options of the other base with their defaults (the subclasses')
    base_name: ClassVar[str] = ""
    foreign: ClassVar[dict[str, Any]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> DFR:
        if cls is DFR:  # the registry's call: the base decides the class
            base = kwargs.get("base", args[1] if len(args) > 1 else "esr")
            if base not in BASES:
                raise InputError(f"dfr base is {' or '.join(BASES)}, not {base!r}")
            cls = DiversifiedESR if base == "esr" else DiversifiedMANet
        return super().__new__(cls)

    def __init__(self, num_classes: int, base: str = "esr", diversity_weight: float = 1.0,
                 gamma: float = 10.0, branches: int = BRANCHES, grow: bool = False,
                 grow_lr_scale: float = 0.1, ensemble: str = "vote", backbone: str = "resnet18",
                 beta: float = 0.6, grid: int = 2) -> None:
        """The base model (`base`, read by `__new__`) with its own options; the options of the
        other base must stay at their defaults."""
        given = {"branches": branches, "grow": grow, "grow_lr_scale": grow_lr_scale,
                 "ensemble": ensemble, "backbone": backbone, "beta": beta, "grid": grid}
        changed = sorted(k for k, v in self.foreign.items() if given[k] != v)
        if changed:
            raise InputError(f"dfr base={self.base_name} takes no option {', '.join(changed)} "
                             "(options of the other base)")
        if diversity_weight < 0 or gamma <= 0:
            raise InputError(f"dfr needs diversity_weight ≥ 0 and gamma > 0, not "
                             f"{diversity_weight} and {gamma}")
        self.build(num_classes, **{k: v for k, v in given.items() if k not in self.foreign})
        self.diversity_weight, self.gamma = diversity_weight, gamma

    def build(self, num_classes: int, **options: Any) -> None:
        """Initialise the base model in place."""
        raise NotImplementedError

    def diversity_terms(self, out: Batch) -> dict[str, torch.Tensor]:
        """The diversity terms of this base's outputs, by name."""
        raise NotImplementedError

    def loss(self, out: Batch, batch: Batch) -> Batch:
        """The base's loss parts; `loss` = its CE + w · (sum of the diversity terms)."""
        parts = super().loss(out, batch)
        terms = self.diversity_terms(out)
        diversity = torch.stack(list(terms.values())).sum() if terms else parts["ce"] * 0
        return {**parts, "loss": parts["ce"] + self.diversity_weight * diversity,
                "diversity": diversity, **terms}

    @classmethod
    def defaults_for(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The base's defaults (MA-Net's 224 px for base=manet; ESR's growing epochs)."""
        if options.get("base", "esr") == "manet":
            return dict(MANet.defaults)
        return ESR.defaults_for(options)

    @classmethod
    def run_name(cls, name: str, options: dict[str, Any]) -> str:
        if options.get("base", "esr") == "esr":
            return ESR.run_name(name, options)
        return name

    @classmethod
    def previous_step(cls, name: str, options: dict[str, Any]) -> tuple[str, str] | None:
        if options.get("base", "esr") == "esr":
            return ESR.previous_step(name, options)
        return None


class DiversifiedESR(DFR, ESR):
    """ESR with CBAM; diversity of the branches' last spatial and channel gates."""

    base_name = "esr"
    foreign: ClassVar[dict[str, Any]] = MANET_OPTIONS

    def build(self, num_classes: int, **options: Any) -> None:
        ESR.__init__(self, num_classes, cbam=True, **options)

    def diversity_terms(self, out: Batch) -> dict[str, torch.Tensor]:
        if out["branch_logits"].shape[1] < 2:
            return {}  # the seed: no diversity while the ensemble has one branch
        return {"div_spatial": kernel_diversity(out["spatial_attention"], self.gamma),
                "div_channel": kernel_diversity(out["channel_attention"], self.gamma)}


class DiversifiedMANet(DFR, MANet):
    """MA-Net; diversity of its local patches (spatial, channel) and of its two branches."""

    base_name = "manet"
    foreign: ClassVar[dict[str, Any]] = ESR_OPTIONS

    def build(self, num_classes: int, **options: Any) -> None:
        MANet.__init__(self, num_classes, **options)

    def diversity_terms(self, out: Batch) -> dict[str, torch.Tensor]:
        maps = out["local_maps"]  # (B, P, D, h, w)
        terms = {"div_branch": kernel_diversity(out["branch_features"], self.gamma)}
        if maps.shape[1] > 1:  # grid 1: one patch, nothing to diversify
            terms = {"div_spatial": kernel_diversity(maps.mean(2), self.gamma),
                     "div_channel": kernel_diversity(out["local_features"], self.gamma),
                     **terms}
        return terms
