"""`mafer` on real CK+ faces: both steps learn a batch, the degradation lowers the resolution and
is the same for a seed, step 2 starts from step 1's base (through the training loop too), and
VGGFace2's Caffe SE-ResNet-50 names map onto the timm base.

SE-ResNet-50 (the default base) is used throughout: at 64 px a step on 8 faces takes ~2 s on two
cores, so 8 steps fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_train import (
    FAST,
    SIZE,
    _learn,
    _model_and_batch,
    work,  # noqa: F401  (the fixture: real CK+ faces, folds, masks)
)

from fer_models.data import FaceDataset
from fer_models.inputs import read_inputs
from fer_models.models import create_model, model_class
from fer_models.models.backbone import load_pretrained
from fer_models.models.mafer import (
    DEPTHS,
    RESOLUTIONS,
    VGGFACE2_MEAN_BGR,
    degrade,
    draw_degradation,
    map_vggface2,
)
from fer_models.train import train
from fer_prep.errors import OptionError


@pytest.mark.parametrize("options", [{"step": 1, "downsample_prob": 1.0, "curriculum_images": 0},
                                     {"step": 2}], ids=["step1-every-face-degraded", "step2"])


def _faces(root: Path, size: int, n: int = 8) -> torch.Tensor:
    """n unaugmented CK+ chips at `size` px as float 0…255."""
    inputs = read_inputs("ckplus", root)
    data = FaceDataset(inputs, inputs.part(0, "train"), size, train=False)
    return torch.stack([data[(i, 0)]["image"] for i in range(n)]).float()


def _high_frequency_energy(x: torch.Tensor, cutoff: float = 0.25) -> float:
    """Spectral energy above `cutoff` cycles per pixel (half of Nyquist), over the batch; a Hann
    window first, so the image's borders are not counted as edges."""
    window = torch.hann_window(x.shape[-2], periodic=False)[:, None] * torch.hann_window(
        x.shape[-1], periodic=False)[None, :]
    spectrum = torch.fft.fft2((x - x.mean((-2, -1), keepdim=True)) * window).abs().square()
    fy = torch.fft.fftfreq(x.shape[-2])[:, None]
    fx = torch.fft.fftfreq(x.shape[-1])[None, :]
    return float(spectrum[..., (fy.square() + fx.square()).sqrt() > cutoff].sum())


def test_degradation_lowers_the_resolution_of_real_faces(work: Path) -> None:  # noqa: F811
    faces = _faces(work, 128)
    original = _high_frequency_energy(faces)
    energies = []
    for res in RESOLUTIONS[:-1]:  # 8 … 64 px: below the 128-px side
        low = degrade(faces, torch.full((len(faces),), res))
        assert low.shape == faces.shape and low.min() >= 0 and low.max() <= 255
        assert (low - faces).mean().abs() < 2  # the same face, blurred, not darker or brighter
        energies.append(_high_frequency_energy(low))
    assert max(energies) < 0.1 * original, (energies, original)
    assert energies == sorted(energies), energies  # the lower the resolution, the less detail
    kept = degrade(faces, torch.tensor([128, 0] * 4))  # not below the side, or not drawn
    assert torch.equal(kept, faces)
    mixed = degrade(faces, torch.tensor([8, 0, 16, 0, 32, 0, 64, 0]))
    assert torch.equal(mixed[1::2], faces[1::2]) and not torch.equal(mixed[::2], faces[::2])
    torch.testing.assert_close(mixed[0], degrade(faces[:1], torch.tensor([8]))[0])


def test_degradation_is_the_same_for_a_seed_and_follows_the_seeds_distribution() -> None:
    a, b = draw_degradation(64, 7, 0.5), draw_degradation(64, 7, 0.5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], draw_degradation(64, 8, 0.5)[0])
    res, grey = draw_degradation(20_000, 0, 0.3)
    assert set(res.tolist()) == {0, *RESOLUTIONS}
    assert abs(float((res > 0).float().mean()) - 0.3) < 0.02
    for r in RESOLUTIONS:  # 2 ** int(3 + 5u): each of the five alike
        assert abs(float((res == r).float().sum() / (res > 0).sum()) - 0.2) < 0.02
    assert abs(float(grey.float().mean()) - 0.2) < 0.02


def test_training_input_is_deterministic_per_run_and_moves_with_the_curriculum(work: Path  # noqa: F811
                                                                              ) -> None:
    faces = _faces(work, 96)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)  # what the loop does before making the model
        net = create_model("mafer", 6, step=1, downsample_prob=1.0, curriculum_images=0).train()
        runs.append([net.training_input(faces) for _ in range(3)])
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)
    assert not torch.equal(runs[0][0], runs[0][1])  # each batch its own draw
    assert not torch.equal(runs[0][0], faces)
    torch.manual_seed(4)
    other = create_model("mafer", 6, step=1, downsample_prob=1.0, curriculum_images=0).train()
    assert not torch.equal(other.training_input(faces), runs[0][0])  # another run, other draws

    net = create_model("mafer", 6, step=1)  # the CR curriculum: 0.1, +0.1 per 35 000 images
    for seen, p in ((0, 0.1), (34_999, 0.1), (35_000, 0.2), (9 * 35_000, 1.0), (10**7, 1.0)):
        net.images_seen = seen
        assert net.downsample_probability() == pytest.approx(p)
    fixed = create_model("mafer", 6, step=1, downsample_prob=0.4, curriculum_images=0)
    fixed.images_seen = 10**7
    assert fixed.downsample_probability() == 0.4
    state = {**net.state_dict()}  # the curriculum's place travels with the checkpoint
    torch.manual_seed(9)
    again = create_model("mafer", 6, step=1)
    again.load_state_dict(state)
    assert (again.images_seen, again.seed) == (net.images_seen, net.seed)


def test_only_step_one_training_degrades_and_test_resolution_is_fixed(work: Path) -> None:  # noqa: F811
    faces = _faces(work, 64)
    step2 = create_model("mafer", 6, step=2).train()
    assert step2.inputs(faces) is faces
    step1 = create_model("mafer", 6, step=1).eval()
    assert step1.inputs(faces) is faces and step1.images_seen == 0
    at16 = create_model("mafer", 6, step=2, test_resolution=16).eval()
    low = at16.inputs(faces)
    torch.testing.assert_close(low, degrade(faces, torch.full((8,), 16)))
    assert _high_frequency_energy(low) < 0.2 * _high_frequency_energy(faces)
    assert at16.train().inputs(faces) is faces  # the fixed resolution is for testing only


def test_input_is_bgr_minus_vggface2_mean() -> None:
    net = create_model("mafer", 3, step=2)
    red = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 255  # RGB red
    x = net.prepare(red)
    b, g, r = VGGFACE2_MEAN_BGR
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([-b, -g, 255 - r]))


def test_step_one_teacher_is_the_starting_base_frozen(work: Path) -> None:  # noqa: F811
    net, batch, _ = _model_and_batch(work, "mafer", {"step": 1})
    start = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    in_groups = {id(p) for g in net.param_groups(1e-3) for p in g["params"]}
    assert not any(id(p) in in_groups for p in net.teacher.parameters())
    _learn(net, batch, steps=2)
    for name, tensor in net.teacher.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, start[name]), name  # snapshot at step 1's start, frozen
    assert not torch.equal(net.backbone.conv1.weight, start["conv1.weight"])
    net.eval()
    with torch.no_grad():
        out = net(batch)
    assert "teacher_features" not in out and set(net.loss(out, batch)) == {"loss", "ce"}
    assert create_model("mafer", 6, step=1, feature_weight=0).teacher is None


def test_step_two_takes_step_ones_base_not_its_classifier(work: Path) -> None:  # noqa: F811
    cls = model_class("mafer")
    assert cls.run_name("mafer", {"step": 1}) == "mafer-step1"
    assert cls.run_name("mafer", {}) == "mafer"
    assert cls.previous_step("mafer", {"step": 1}) is None
    assert cls.previous_step("mafer", {}) == ("mafer-step1", "fer-train --model mafer --step 1")

    step1, batch, _ = _model_and_batch(work, "mafer", {"step": 1})
    _learn(step1, batch, steps=1)  # running statistics and weights move off the init
    state = step1.state_dict()
    torch.manual_seed(1)
    step2 = create_model("mafer", 6, step=2)
    head = {k: v.clone() for k, v in step2.head.state_dict().items()}
    took = step2.load_previous(state)
    assert took.startswith(f"{len(step2.backbone.state_dict())} base tensors")
    for name, tensor in step2.backbone.state_dict().items():
        assert torch.equal(tensor, state[f"backbone.{name}"]), name
    assert all(torch.equal(step2.head.state_dict()[k], v) for k, v in head.items())
    assert not torch.equal(step2.head.weight, state["head.weight"])
    assert step2.teacher is None and not any(k.startswith("teacher.") for k in step2.state_dict())
    with pytest.raises(RuntimeError, match="another backbone"):
        create_model("mafer", 6, step=2, backbone="resnet50").load_previous(state)


def test_two_steps_through_the_training_loop(work: Path) -> None:  # noqa: F811
    options = {**FAST, "fold": 0}
    train("ckplus", work, "mafer", step=1, feature_weight=0.0, **options)  # no teacher: faster
    run1 = work / "ckplus/train/mafer-step1/fold_0/last.pt"
    assert run1.is_file()
    lines: list[str] = []
    metrics = train("ckplus", work, "mafer", echo=lines.append, **options)
    assert any("base tensors (classifier new) from" in x and "mafer-step1" in x for x in lines)
    fold = json.loads((work / "ckplus/train/mafer/fold_0/metrics.json").read_text())
    assert fold["previous_step"] == str(run1)
    assert metrics["run"] == "mafer" and 0 <= metrics["folds"]["0"]["accuracy"] <= 1
    ckpt = torch.load(work / "ckplus/train/mafer/fold_0/last.pt", weights_only=True)
    assert ckpt["model"]["_extra_state"]["images_seen"] == 0  # step 2 degrades nothing


def _vggface2_state() -> dict[str, torch.Tensor]:
    """A state dict named and shaped as VGGFace2's converted SE-ResNet-50 (`MainModel.KitModel`
    of the seed): conv1/7x7_s2, then per stage s = 2…5 and block b the modules conv{s}_{b}_…,
    with 1x1_proj on each stage's first block, SE 1x1_down/up (width / 16), classifier_1."""
    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, cin: int, cout: int, k: int, bias: bool = False) -> None:
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=gen)
        if bias:
            state[f"{name}.bias"] = torch.randn(cout, generator=gen)

    def bn(name: str, c: int) -> None:
        for leaf in ("weight", "bias", "running_mean"):
            state[f"{name}.{leaf}"] = torch.randn(c, generator=gen)
        state[f"{name}.running_var"] = torch.rand(c, generator=gen) + 0.5
        state[f"{name}.num_batches_tracked"] = torch.tensor(0)

    conv("conv1_7x7_s2", 3, 64, 7)
    bn("conv1_7x7_s2_bn", 64)
    cin = 64
    for s, depth in enumerate(DEPTHS, start=2):
        mid = 64 * 2 ** (s - 2)
        out = 4 * mid
        for b in range(1, depth + 1):
            p = f"conv{s}_{b}_"
            if b == 1:
                conv(p + "1x1_proj", cin, out, 1)
                bn(p + "1x1_proj_bn", out)
            conv(p + "1x1_reduce", cin, mid, 1)
            bn(p + "1x1_reduce_bn", mid)
            conv(p + "3x3", mid, mid, 3)
            bn(p + "3x3_bn", mid)
            conv(p + "1x1_increase", mid, out, 1)
            bn(p + "1x1_increase_bn", out)
            conv(p + "1x1_down", out, out // 16, 1, bias=True)
            conv(p + "1x1_up", out // 16, out, 1, bias=True)
            cin = out
    state["classifier_1.weight"] = torch.randn(8631, 2048, generator=gen)
    state["classifier_1.bias"] = torch.randn(8631, generator=gen)
    return state


def test_vggface2_weights_map_onto_the_base(tmp_path: Path) -> None:
    caffe = _vggface2_state()
    net = create_model("mafer", 7, step=2)
    mapped = net.map_pretrained(caffe)
    assert len(mapped) == len(caffe) - 2  # every tensor but the 8631-identity classifier
    assert set(mapped) == {f"backbone.{k}" for k in net.backbone.state_dict()}
    assert torch.equal(mapped["backbone.layer2.0.conv1.weight"], caffe["conv3_1_1x1_reduce.weight"])
    assert torch.equal(mapped["backbone.layer4.2.se.fc2.bias"], caffe["conv5_3_1x1_up.bias"])
    assert torch.equal(mapped["backbone.layer1.0.downsample.1.running_var"],
                       caffe["conv2_1_1x1_proj_bn.running_var"])
    net.backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in mapped.items()})

    # fer-train's loader takes the mapped file whole (it needs the hook to take Caffe's names)
    path = tmp_path / "senet50_ft.pth"
    torch.save({"state_dict": map_vggface2(caffe)}, path)
    fresh = create_model("mafer", 7, step=2)
    head = fresh.head.weight.clone()
    loaded = load_pretrained(fresh, path, "seresnet50")
    assert loaded["loaded"] == len(fresh.backbone.state_dict()) == 382
    assert torch.equal(fresh.backbone.layer3[5].conv2.weight, caffe["conv4_6_3x3.weight"])
    assert torch.equal(fresh.head.weight, head)

    # the Caffe layout: stride in the first 1x1 of stages 3-5, shapes as timm's
    for layer in (net.backbone.layer2, net.backbone.layer3, net.backbone.layer4):
        assert layer[0].conv1.stride == (2, 2) and layer[0].conv2.stride == (1, 1)
    with torch.no_grad():
        assert net.eval()({"image": torch.zeros(2, 3, SIZE, SIZE)})["features"].shape == (2, 2048)


def test_class_weights_are_the_seeds_in_training_only() -> None:
    net = create_model("mafer", 3, step=2)
    net.init_class_weights(torch.tensor([0, 0, 1, 2]))
    torch.testing.assert_close(net.class_weight, torch.tensor([0.5, 0.75, 0.75]))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out, batch = {"logits": logits}, {"label": torch.tensor([0, 1])}
    ce = torch.nn.functional.cross_entropy(logits, batch["label"], reduction="none")
    torch.testing.assert_close(net.train().loss(out, batch)["ce"],
                               (0.5 * ce[0] + 0.75 * ce[1]) / 1.25)
    torch.testing.assert_close(net.eval().loss(out, batch)["ce"], ce.mean())


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(OptionError, match="step"):
        create_model("mafer", 6, step=3)
    with pytest.raises(OptionError, match="seresnet50 or resnet50"):
        create_model("mafer", 6, backbone="resnet18")
