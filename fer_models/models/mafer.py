"""`mafer`: MAFER's two-step multi-resolution training (Massoli et al., arXiv 2105.02481).

From fvmassoli/mafer-multires-facial-expression-recognition (`models.py`, `utils.py`,
`main_fer_rafdb.py`, `main_oulu.py`, `datasets/affwild2.py`) and, for step 1, the code it
takes its step-1 models from, fvmassoli/cross-resolution-face-recognition (`main.py`,
`trainer.py`, `vggface2_custom_dataset.py`, `utils.py`). Kept:
- the base: SE-ResNet-50 in the layout of VGGFace2's Caffe model (`MainModel.py`, the
  `senet50_ft` weights): stride 2 in the first 1×1 conv of Caffe's conv3–conv5 (timm's
  layer2–4), not in the 3×3, and the max-pool padded right and bottom only — timm's
  `seresnet50` rearranged so (`backbone=`; `resnet50` is torchvision's instead); the pooled
  2048-d feature (`classifier_0`) into a new linear classifier (`classifier_1` replaced by
  `Linear(2048, classes)`);
- the input: BGR, 0…255, minus VGGFace2's mean (91.4953, 103.8827, 131.0912) (`subtract_mean`
  on cv2's BGR images); our chips are RGB, so the channels are reversed first;
- step 1, multi-resolution: each face, with probability p, downscaled so its short side is
  2^⌊3 + 5u⌋ px (8, 16, 32, 64 or 128, u uniform) and scaled back to its size, both bilinear
  (PIL's, antialiased when shrinking; torch's `antialias=True`), left as is when that is not
  below its side; p follows the curriculum (CR): 0.1 at first, +0.1 every `curriculum_images`
  images (35 000), up to 1; `curriculum_images=0` keeps p fixed at `downsample_prob` (the
  code's run without `--curriculum`); random greyscale (p 0.2); loss CE + λ·MSE between the
  pooled features of the degraded face and those a frozen teacher — the base as it was when
  step 1 began — gives the undegraded one (λ 0.1; the teacher's BatchNorm uses batch
  statistics and never updates its running ones, as the seed's converted model with momentum 0);
- step 2, expressions: a new classifier, the base from step 1 of the same fold (the seed's
  `load_model_checkpoint(load_last_layer=False)`: every tensor but the classifier, running
  statistics included); the classifier at `lr`, every other layer at `lr · lr_ft_ratio` (the
  seed's `lr` 1e-2 and `lr_ft` 1e-4); CE weighted by 1 − n_c / N over the training part's
  classes when the loop gives them (`init_class_weights`), unweighted on the test part;
- `test_resolution`: every test face at one resolution (the CR code's `valid_fix_resolution`,
  the paper's multi-resolution tests).
Changed: step 1 cannot be what the seed's is — identity classification of VGGFace2's 8631
people, which we do not have — so it learns the prepared data's expression labels under the
same degradation (much as the seed's AffWild2 loader degrades expression frames, `multi_res`);
start it from VGGFace2's weights with `--pretrained` to stay close to the seed. The degradation
runs on the batch on the device, in `forward`, after the loop's shared crop and mirror (the seed
degrades the raw image before its resize and crop, so its 8–128 px are of the uncropped image),
drawn from a generator seeded by the run (a seed drawn at construction) and the images seen so
far, so runs and resumed runs see the same faces; the curriculum counts images over the whole
run (the seed's counter lives in each loader worker's copy of the dataset, so with its 8 workers
it moves 8× slower and restarts every epoch); teacher and student see the same augmented view
(the seed crops them independently); greyscale uses RGB luma (the seed's weights fall on BGR
channels). The optimizer is the loop's AdamW with a cosine schedule, not Adam with
ReduceLROnPlateau (step 2) or SGD (step 1), with the same groups in both steps (the step-1
classifier is new here too); one batch of 64 stands for the seed's 16 × 4 accumulated (Adam's
step does not depend on the gradient's scale); 30 epochs by default (the seed's scripts default
to `-e 1` with ReduceLROnPlateau on validation accuracy; the paper's count is not in the code);
the seed's per-dataset augmentation (elastic, cutout, shift-scale-rotate) and its dataset means
(`mean.npy`) are left out for the loop's augmentation and VGGFace2's mean; BatchNorm keeps
torch's momentum 0.1 in step 1 too (the seed's student keeps VGGFace2's running statistics
through step 1).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import timm
import torch
import torch.nn.functional as F
from torch import nn

from fer_models.models.backbone import create_backbone
from fer_models.models.base import Batch, FERModel, TwoSteps
from fer_prep.errors import OptionError

#: VGGFace2's mean, B, G, R, on 0…255 (the seed's `subtract_mean`)
VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)
#: the short side a degraded face gets: 2 ** int(3 + 5u) for u in [0, 1)
RESOLUTIONS = (8, 16, 32, 64, 128)
#: step 1's RandomGrayscale, and the curriculum's step in probability
GREY_PROB, CURRICULUM_STEP = 0.2, 0.1
LUMA_RGB = (0.299, 0.587, 0.114)
BACKBONES = ("seresnet50", "resnet50")
#: blocks in each of SE-ResNet-50's stages (Caffe conv2…conv5 = timm layer1…layer4)
DEPTHS = (3, 4, 6, 3)
#: a Caffe block's module suffix → the timm Bottleneck's module
CAFFE_PARTS = {
    "1x1_reduce": "conv1", "1x1_reduce_bn": "bn1", "3x3": "conv2", "3x3_bn": "bn2",
    "1x1_increase": "conv3", "1x1_increase_bn": "bn3", "1x1_down": "se.fc1", "1x1_up": "se.fc2",
    "1x1_proj": "downsample.0", "1x1_proj_bn": "downsample.1",
}
CAFFE_BLOCK = re.compile(r"conv(\d)_(\d+)_(.+)")


def vggface2_module(name: str) -> str | None:
    """The timm module of a module of VGGFace2's converted SE-ResNet-50 (`MainModel.KitModel`:
    `conv1_7x7_s2`, `conv3_1_1x1_proj_bn`, …); None for its identity classifier or a stranger."""
    if name in ("conv1_7x7_s2", "conv1_7x7_s2_bn"):
        return "conv1" if name == "conv1_7x7_s2" else "bn1"
    match = CAFFE_BLOCK.fullmatch(name)
    if not match:
        return None
    stage, block, part = int(match[1]) - 2, int(match[2]) - 1, match[3]
    if not (0 <= stage < len(DEPTHS) and 0 <= block < DEPTHS[stage]) or part not in CAFFE_PARTS:
        return None
    return f"layer{stage + 1}.{block}.{CAFFE_PARTS[part]}"


def map_vggface2(state: dict[str, torch.Tensor], prefix: str = "backbone.") -> dict[str, Any]:
    """VGGFace2 SE-ResNet-50 tensor names → ours under `prefix`; the 8631-identity classifier
    (`classifier_1`) is dropped, names that are not Caffe's pass unchanged."""
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        ours = vggface2_module(module)
        if ours is not None:
            out[f"{prefix}{ours}.{leaf}"] = value
        elif module != "classifier_1":
            out[key] = value
    return out


def vggface2_layout(net: nn.Module) -> nn.Module:
    """Rearrange timm's SE-ResNet-50 as the Caffe model VGGFace2's weights were trained in:
    the stride of layer2–4 in the first 1×1 conv instead of the 3×3, and the stem's max-pool
    over the feature padded by one on the right and bottom (the seed's `F.pad(…, (0, 1, 0, 1),
    -inf)`) instead of one on every side. Shapes are unchanged."""
    for layer in (net.layer2, net.layer3, net.layer4):
        layer[0].conv1.stride, layer[0].conv2.stride = (2, 2), (1, 1)
    net.maxpool = nn.Sequential(nn.ConstantPad2d((0, 1, 0, 1), float("-inf")),
                                nn.MaxPool2d(3, stride=2))
    return net


def make_backbone(name: str) -> tuple[nn.Module, int]:
    """The trunk (B, 3, H, W) → (B, 2048) and its width; random weights (`--pretrained` loads)."""
    if name == "seresnet50":
        net = vggface2_layout(timm.create_model("seresnet50", pretrained=False, num_classes=0))
        return net, net.num_features
    if name == "resnet50":
        return create_backbone("resnet50")
    raise OptionError(f"mafer backbone {name!r}: choose {' or '.join(BACKBONES)}")


def degrade(image: torch.Tensor, resolution: torch.Tensor) -> torch.Tensor:
    """Each face (B, C, H, W, 0…255) downscaled so its short side is `resolution[i]` px and back
    to its size, bilinear (antialiased down), rounded to integers as the seed's uint8 PIL images;
    a face whose resolution is 0 or not below its side is returned as is. Not in place."""
    h, w = image.shape[-2:]
    out = image
    for res in sorted(set(resolution.tolist())):
        if res <= 0 or res >= h or res >= w:
            continue
        small = (res, int(res * w / h)) if h < w else (int(res * h / w), res)
        idx = (resolution == res).nonzero().flatten().to(image.device)
        low = F.interpolate(image[idx].float(), size=small, mode="bilinear", align_corners=False,
                            antialias=True).round().clamp(0, 255)
        back = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        out = out.index_copy(0, idx, back.round().clamp(0, 255).to(out.dtype))
    return out


def draw_degradation(n: int, seed: int, prob: float, grey_prob: float = GREY_PROB
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """n faces' draws from `seed` (CPU, so alike on every device): the resolution (0 = kept,
    with probability 1 − prob) and whether to grey it."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=gen)
    pick = (u[:, 1] * len(RESOLUTIONS)).long().clamp(max=len(RESOLUTIONS) - 1)
    res = torch.where(u[:, 0] < prob, torch.tensor(RESOLUTIONS)[pick], 0)
    return res, u[:, 2] < grey_prob


class MAFER(TwoSteps, FERModel):
    """Base (SE-ResNet-50) → pooled feature → linear classifier; `step` 1 trains it on degraded
    faces against a frozen teacher, `step` 2 fine-tunes step 1's base with a new classifier.

    Outputs: `logits` (B, C), `features` (B, 2048); training step 1 also `teacher_features`.
    """

    STEP = "step"
    defaults: ClassVar[dict[str, Any]] = {"size": 224, "lr": 1e-2, "epochs": 30,
                                          "batch_size": 64}

    def __init__(self, num_classes: int, step: int = 2, backbone: str = "seresnet50",
                 lr_ft_ratio: float = 0.01, downsample_prob: float = 0.1,
                 curriculum_images: int = 35_000, feature_weight: float = 0.1,
                 test_resolution: int = 0) -> None:
        super().__init__()
        if step not in (1, 2):
            raise OptionError(f"mafer step is 1 (multi-resolution) or 2 (expressions), not {step}")
        if not 0 <= downsample_prob <= 1:
            raise OptionError(f"mafer downsample_prob {downsample_prob} is not in [0, 1]")
        self.step, self.backbone_name = step, backbone
        self.lr_ft_ratio, self.feature_weight = lr_ft_ratio, feature_weight
        self.downsample_prob, self.curriculum_images = downsample_prob, curriculum_images
        self.test_resolution = test_resolution
        self.backbone, dim = make_backbone(backbone)
        self.head = nn.Linear(dim, num_classes)
        self.teacher: nn.Module | None = None
        if step == 1 and feature_weight > 0:
            self.teacher, _ = make_backbone(backbone)
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            for m in self.teacher.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.0  # batch statistics, running ones frozen (the seed's)
        self.register_buffer("class_weight", torch.ones(num_classes))
        self.register_buffer("mean_bgr", torch.tensor(VGGFACE2_MEAN_BGR).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA_RGB).view(1, 3, 1, 1), persistent=False)
        # the run's degradation seed (torch's generator is seeded by the loop before the model
        # is made), the images degraded so far, and whether the teacher holds its snapshot
        self.seed = int(torch.randint(0, 2**62, (1,)))
        self.images_seen = 0
        self.teacher_ready = False

    # ----- state the checkpoint carries besides tensors (no device sync per step)
    def get_extra_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "images_seen": self.images_seen,
                "teacher_ready": self.teacher_ready}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed, self.images_seen = int(state["seed"]), int(state["images_seen"])
        self.teacher_ready = bool(state["teacher_ready"])

    # ----- input
    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """RGB 0…255 → BGR 0…255 minus VGGFace2's mean (the seed's cv2 images, `subtract_mean`)."""
        x = image.float().flip(-3) - self.mean_bgr
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def downsample_probability(self) -> float:
        """p now: the curriculum's min(1, p0 + 0.1 · ⌊images / curriculum_images⌋), or p0."""
        if self.curriculum_images <= 0:
            return self.downsample_prob
        steps = self.images_seen // self.curriculum_images
        return min(1.0, self.downsample_prob + CURRICULUM_STEP * steps)

    def training_input(self, image: torch.Tensor) -> torch.Tensor:
        """Step 1's face as the base sees it in training: degraded (and greyed) by this batch's
        draw; advances the curriculum by the batch."""
        n = image.shape[0]
        res, grey = draw_degradation(n, (self.seed + 1_000_003 * self.images_seen) % 2**63,
                                     self.downsample_probability())
        self.images_seen += n
        out = degrade(image.float(), res)
        if grey.any():
            luma = (out * self.luma).sum(1, keepdim=True).round().expand_as(out)
            out = torch.where(grey.to(out.device).view(-1, 1, 1, 1), luma, out)
        return out

    def inputs(self, image: torch.Tensor) -> torch.Tensor:
        """The 0…255 RGB face the base sees: degraded in step-1 training, at `test_resolution`
        when evaluating with one, else as given."""
        if self.training and self.step == 1:
            return self.training_input(image)
        if not self.training and self.test_resolution > 0:
            res = torch.full((image.shape[0],), self.test_resolution)
            return degrade(image.float(), res)
        return image

    def forward(self, batch: Batch) -> Batch:
        image = batch["image"]
        teach = self.training and self.teacher is not None
        if teach and not self.teacher_ready:  # the base as step 1 begins (after --pretrained)
            self.teacher.load_state_dict(self.backbone.state_dict())
            self.teacher_ready = True
        features = self.backbone(self.prepare(self.inputs(image)))
        out = {"logits": self.head(features), "features": features}
        if teach:
            with torch.no_grad():
                out["teacher_features"] = self.teacher(self.prepare(image))
        return out

    def loss(self, out: Batch, batch: Batch) -> Batch:
        """CE (class-weighted in training, as the seed's criterion; on the vote distribution
        where the batch has one) + λ · feature MSE in step 1."""
        weight = self.class_weight if self.training else None
        ce = F.cross_entropy(out["logits"].float(), self.target(batch), weight=weight)
        if "teacher_features" not in out:
            return {"loss": ce, "ce": ce}
        mse = F.mse_loss(out["features"].float(), out["teacher_features"].float())
        return {"loss": ce + self.feature_weight * mse, "ce": ce, "mse": mse}

    def init_class_weights(self, labels: torch.Tensor) -> None:
        """The seed's training weights 1 − n_c / N from the training part's labels (0…C−1)."""
        counts = torch.bincount(labels.long().flatten(), minlength=len(self.class_weight))
        self.class_weight.copy_(1.0 - counts.float() / counts.sum().clamp(min=1))

    # ----- weights
    def map_pretrained(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A weights file's names as this model's: VGGFace2's Caffe SE-ResNet-50 names
        (`conv2_1_1x1_reduce.weight`, MAFER's and CR's checkpoints) → `backbone.…`."""
        return map_vggface2(state) if self.backbone_name == "seresnet50" else state

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The classifier at lr, every other trained layer at lr · lr_ft_ratio (the seed's
        `init_optimizer`, `finetune`); the teacher is not trained."""
        return [{"params": list(self.backbone.parameters()), "lr": lr * self.lr_ft_ratio},
                {"params": list(self.head.parameters()), "lr": lr}]

    def load_previous(self, state: dict[str, torch.Tensor]) -> str:
        """Step 1's base, running statistics included; not its classifier nor its teacher."""
        base = {n.removeprefix("backbone."): t for n, t in state.items()
                if n.startswith("backbone.")}
        own = set(self.backbone.state_dict())
        differ = sorted(own ^ set(base))
        if differ:
            raise RuntimeError(f"{len(differ)} base tensors differ by name (e.g. {differ[0]}): "
                               f"step 1 had another backbone than {self.backbone_name}")
        self.backbone.load_state_dict(base)
        return f"{len(base)} base tensors (classifier new)"
