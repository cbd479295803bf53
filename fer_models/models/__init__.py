"""Models by name, in timm's manner: `create_model("fan", num_classes=7, at_type="self")`.

| name | what | seed |
| --- | --- | --- |
| `resnet18` | a frame classifier (torchvision ResNet) | Emotion-FAN's baseline |
| `fan` | frame attention network over a clip (self / relation attention) | Emotion-FAN |
| `fmpn` | mask generator + fusion + classifier; stage 1 the generator alone | FMPN-FER |
| `landmark-aux` | classifier + 68-point landmark head, SCN weighting | Landmark-Driven FER |
| `esr` | shared base + N convolutional branches, the ensemble's vote | ESR |
| `manet` | ResNet-18, global multi-scale + local attention over face patches | MA-Net |
| `dfr` | a diversity loss between `esr` branches / `manet` local features | Diversified FER |
| `mafer` | step 1 on faces at random resolutions, step 2 expressions | MAFER |

Each class holds its defaults (`defaults`: size, lr, epochs, batch size); keyword arguments of
None are dropped, so a CLI option left unset never overrides a model's own default. Entries are
"module:Class" strings, imported when a model is made: listing them (`fer-train --help`) imports
no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fer_prep.registry import Registry

if TYPE_CHECKING:
    from fer_models.models.base import FERModel

MODELS: Registry[str] = Registry("model")
MODELS.add("resnet18", "fer_models.models.resnet:ResNetClassifier")
MODELS.add("fan", "fer_models.models.fan:FrameAttentionNetwork")
MODELS.add("fmpn", "fer_models.models.fmpn:FMPN")
MODELS.add("landmark-aux", "fer_models.models.landmark_aux:LandmarkAux")
MODELS.add("esr", "fer_models.models.esr:ESR")
MODELS.add("manet", "fer_models.models.manet:MANet")
MODELS.add("dfr", "fer_models.models.dfr:DFR")
MODELS.add("mafer", "fer_models.models.mafer:MAFER")

#: the torchvision trunks every model can take (`backbone=`), and fan's attention types
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50")
AT_TYPES = ("self", "relation")


def list_models() -> list[str]:
    return MODELS.names()


def model_class(name: str) -> type[FERModel]:
    """The class registered as `name`, imported now; UnknownName listing the valid names."""
    module, cls = MODELS.get(name).split(":")
    return getattr(importlib.import_module(module), cls)


def create_model(name: str, num_classes: int, **kwargs: Any) -> FERModel:
    """The model registered as `name`; UnknownName listing the valid names for an unknown one."""
    return model_class(name)(num_classes=num_classes,
                             **{k: v for k, v in kwargs.items() if v is not None})
