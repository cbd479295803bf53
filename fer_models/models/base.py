"""What the training loop needs of a model, in one small base class.

A model takes the batch as the loader gives it (a dict: `image` as uint8, `label`, and what the
model asked for — `valid` frames of a clip, `landmarks`, `mask`) and returns a dict of outputs
with `logits` when it classifies. It normalises its own input, as its seed did, so the
normalisation lives with the model (timm's pretrained config, in spirit), and it names its own
loss. Defaults (input size, learning rate, epochs, batch size) live with the class; explicit
arguments win.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

Batch = dict[str, torch.Tensor]


class FERModel(nn.Module):
    """Base of every registered model: normalisation, default loss, defaults."""

    #: clips (B, T, 3, H, W) + `valid` (B, T) instead of frames (B, 3, H, W)
    clip: ClassVar[bool] = False
    #: needs the pseudo motion masks (`mask`: uint8 (B, 1, m, m), `has_mask`: (B,))
    needs_masks: ClassVar[bool] = False
    #: needs chip-space landmarks (`landmarks`: (B, 68, 2) in [0, 1], `has_landmarks`: (B,))
    needs_landmarks: ClassVar[bool] = False
    @classmethod
    def needs_expression(cls, options: dict[str, Any]) -> bool:
        """Whether the model with these options reads the face's blendshapes and head pose
        (`expression`: (B, EXPRESSION), `has_expression`: (B,); see fer_models.inputs)."""
        return False

    #: (shift, scale): input = (x / 255 − shift) / scale; (0, 1) = the seeds' plain ToTensor()
    norm: ClassVar[tuple[float, float]] = (0.0, 1.0)
    defaults: ClassVar[dict[str, Any]] = {"size": 224, "lr": 1e-3, "epochs": 30, "batch_size": 32}

    def __init__(self) -> None:
        super().__init__()
        self.channels_last = False  # set by the loop on CUDA

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """(…, 3, H, W) in 0…255 (uint8, or float after `augment`) → the float input the seed
        fed its network. Never in place: the batch may be used again."""
        shift, scale = self.norm
        x = image.float() / 255.0
        if (shift, scale) != (0.0, 1.0):
            x = x.sub_(shift).div_(scale)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @staticmethod
    def target(batch: Batch) -> torch.Tensor:
        """What cross-entropy aims at: the vote distribution where the batch has one (FER+'s
        soft-label loss), else the class index."""
        return batch["soft"].float() if "soft" in batch else batch["label"]

    def loss(self, out: Batch, batch: Batch) -> Batch:
        """The loss to minimise (`loss`) and its parts, for the progress bar and history."""
        ce = F.cross_entropy(out["logits"].float(), self.target(batch))
        return {"loss": ce, "ce": ce}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups (FMPN trains its generator ten times slower)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    #: a run whose previous step is missing is refused (ESR's grown ensemble), else it warns
    #: and starts without it (FMPN's stage 2 with an untrained generator)
    previous_required: ClassVar[bool] = False

    @classmethod
    def defaults_for(cls, options: dict[str, Any]) -> dict[str, Any]:
        """`defaults` for these options (a model whose options change them: dfr's base)."""
        return dict(cls.defaults)

    @classmethod
    def run_name(cls, name: str, options: dict[str, Any]) -> str:
        """The folder a run writes under WORK/<dataset>/train/: the model's name, or one per
        step of a model trained in steps (FMPN's `fmpn-stage1`, MAFER's `mafer-step1`)."""
        return name

    @classmethod
    def previous_step(cls, name: str, options: dict[str, Any]) -> tuple[str, str] | None:
        """(run, command) of the step whose same-fold last.pt this run starts from (FMPN's
        stage 2 from stage 1's generator), and the command that trains it; None: no step."""
        return None

    def load_previous(self, state: dict[str, torch.Tensor]) -> str:
        """Take what this model keeps of the previous step's weights; say what it took."""
        raise NotImplementedError(f"{type(self).__name__} has no previous step")

    def init_from_data(self, landmarks: torch.Tensor | None) -> None:
        """Set statistics taken from the training part before the first step (default: none).

        `landmarks`: the training rows' chip landmarks (N, 68, 2), those without removed.
        """


class TwoSteps:
    """Mixin of a model trained in two steps chosen by its option `STEP` (1, then 2 from step
    1's weights of the same fold): run `<model>-<STEP>1` for the first, `<model>` for the
    second (FMPN's `--stage`, MAFER's `--step`)."""

    STEP: ClassVar[str]

    @classmethod
    def run_name(cls, name: str, options: dict[str, Any]) -> str:
        return f"{name}-{cls.STEP}1" if options.get(cls.STEP) == 1 else name

    @classmethod
    def previous_step(cls, name: str, options: dict[str, Any]) -> tuple[str, str] | None:
        if options.get(cls.STEP, 2) == 1:
            return None
        return f"{name}-{cls.STEP}1", f"fer-train --model {name} --{cls.STEP} 1"
