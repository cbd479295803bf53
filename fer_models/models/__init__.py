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
None are dropped, so a CLI option left unset never overrides a model's own default. An entry
names the model's class and its options dataclass (`fer_models.models.options`), each a
"module:Class" string imported when needed: `fer-train --help` reads the options without torch,
and a model registered anywhere (a plugin, a test) has its options on fer-train's command line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fer_prep.registry import Registry

if TYPE_CHECKING:
    from fer_models.models.base import FERModel


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its class and its options dataclass, each "module:Class"."""

    model: str
    options: str


MODELS: Registry[ModelEntry] = Registry("model")
MODELS.add("resnet18", ModelEntry("fer_models.models.resnet:ResNetClassifier",
                                  "fer_models.models.options:ResNetOptions"))
MODELS.add("fan", ModelEntry("fer_models.models.fan:FrameAttentionNetwork",
                             "fer_models.models.options:FANOptions"))
MODELS.add("fmpn", ModelEntry("fer_models.models.fmpn:FMPN",
                              "fer_models.models.options:FMPNOptions"))
MODELS.add("landmark-aux", ModelEntry("fer_models.models.landmark_aux:LandmarkAux",
                                      "fer_models.models.options:LandmarkAuxOptions"))
MODELS.add("esr", ModelEntry("fer_models.models.esr:ESR",
                             "fer_models.models.options:ESROptions"))
MODELS.add("manet", ModelEntry("fer_models.models.manet:MANet",
                               "fer_models.models.options:MANetOptions"))
MODELS.add("dfr", ModelEntry("fer_models.models.dfr:DFR",
                             "fer_models.models.options:DFROptions"))
MODELS.add("mafer", ModelEntry("fer_models.models.mafer:MAFER",
                               "fer_models.models.options:MAFEROptions"))

#: the torchvision trunks every model can take (`backbone=`), and fan's attention types
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50")
AT_TYPES = ("self", "relation")


def list_models() -> list[str]:
    return MODELS.names()


def _load(path: str) -> Any:
    """The object a "module:Class" string names, its module imported now."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def model_class(name: str) -> type[FERModel]:
    """The class registered as `name`, imported now; UnknownName listing the valid names."""
    return _load(MODELS.get(name).model)


def options_class(name: str) -> type:
    """The options dataclass of the model registered as `name` (no torch imported for the
    built-in ones); UnknownName listing the valid names."""
    return _load(MODELS.get(name).options)


def create_model(name: str, num_classes: int, **kwargs: Any) -> FERModel:
    """The model registered as `name`; UnknownName listing the valid names for an unknown one."""
    return model_class(name)(num_classes=num_classes,
                             **{k: v for k, v in kwargs.items() if v is not None})
