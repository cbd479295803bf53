"""Models by name, in timm's manner: `create_model("fan", num_classes=7, at_type="self")`.

| name | what | seed |
| --- | --- | --- |
| `resnet18` | a frame classifier (torchvision ResNet) | Emotion-FAN's baseline |
| `fan` | frame attention network over a clip (self / relation attention) | Emotion-FAN |
| `fmpn` | mask generator + fusion + classifier; stage 1 the generator alone | FMPN-FER |
| `landmark-aux` | classifier + 68-point landmark head, SCN weighting | Landmark-Driven FER |

Each class holds its defaults (`defaults`: size, lr, epochs, batch size); keyword arguments of
None are dropped, so a CLI option left unset never overrides a model's own default.
"""

from __future__ import annotations

from typing import Any

from fer_models.models.base import FERModel
from fer_models.models.fan import FrameAttentionNetwork
from fer_models.models.fmpn import FMPN
from fer_models.models.landmark_aux import LandmarkAux
from fer_models.models.resnet import ResNetClassifier
from fer_prep.registry import Registry

MODELS: Registry[type[FERModel]] = Registry("model")
MODELS.add("resnet18", ResNetClassifier)
MODELS.add("fan", FrameAttentionNetwork)
MODELS.add("fmpn", FMPN)
MODELS.add("landmark-aux", LandmarkAux)


def list_models() -> list[str]:
    return MODELS.names()


def create_model(name: str, num_classes: int, **kwargs: Any) -> FERModel:
    """The model registered as `name`; KeyError listing the valid names for an unknown one."""
    return MODELS.get(name)(num_classes=num_classes,
                            **{k: v for k, v in kwargs.items() if v is not None})
