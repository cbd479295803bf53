"""`manet` (MA-Net) on real CK+ faces at 64 px: it learns a batch, its outputs' shapes, each
patch branch sees its own patch only, the attention weights lie in (0, 1), CPU runs repeat
exactly, and MA-Net's / torchvision's weights load by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train import (
    SIZE,
    _model_and_batch,
    work,  # noqa: F401  (the fixture: real CK+ faces, folds, masks)
)
from torchvision import models as tvm

from fer_models.inputs import InputError
from fer_models.models import create_model
from fer_models.models.backbone import load_pretrained
from fer_models.models.manet import MANet, MulScaleBlock
from fer_models.train import determinism

D = 512  # the branches' feature width
#: state-dict keys of MA-Net's own model (zengqunzhao/MA-Net `model/manet.py`), as its
#: Pretrained_on_MSCeleb.pth.tar holds them after `module.`: trunk, patch branches, CBAM, global
SEED_KEYS = [
    "conv1.weight", "layer2.1.bn2.running_var", "layer3_1_p1.0.downsample.0.weight",
    "layer3_1_p1.0.cbam.ChannelGate.mlp.1.weight", "layer4_1_p4.1.cbam.ChannelGate.mlp.3.bias",
    "layer4_1_p3.1.cbam.SpatialGate.spatial.conv.weight",
    "layer3_1_p2.1.cbam.SpatialGate.spatial.bn.running_mean", "layer3_2.0.conv1_2_1.weight",
    "layer4_2.1.conv2_2_4.weight", "layer4_2.0.bn2_2_3.bias", "fc_1.weight", "fc_2.bias",
]


@pytest.fixture(scope="module")
def fresh_eval(work: Path):  # noqa: F811  (the fixture, as an argument)
    """The model, a batch of 8 real training faces and the class count, the model in eval mode."""
    net, batch, inputs = _model_and_batch(work, "manet", {})
    return net.eval(), batch, len(inputs.classes)


def test_outputs_have_their_documented_shapes(fresh_eval) -> None:
    net, batch, n_classes = fresh_eval
    with torch.no_grad():
        out = net(batch)
    b, p, side = len(batch["label"]), 4, SIZE // 32  # 64 px: 8×8 trunk map, 4×4 patches → 2×2
    shapes = {"logits": (b, n_classes), "local_logits": (b, n_classes),
              "global_logits": (b, n_classes), "local_maps": (b, p, D, side, side),
              "local_features": (b, p, D), "global_features": (b, D),
              "branch_features": (b, 2, D), "channel_attention": (b, p, D),
              "spatial_attention": (b, p, side, side)}
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    torch.testing.assert_close(out["logits"],
                               0.6 * out["local_logits"] + 0.4 * out["global_logits"])
    torch.testing.assert_close(out["local_features"], out["local_maps"].mean((-2, -1)))
    torch.testing.assert_close(out["branch_features"][:, 0], out["local_features"].mean(1))
    torch.testing.assert_close(out["branch_features"][:, 1], out["global_features"])
    torch.testing.assert_close(out["local_logits"], net.fc_1(out["branch_features"][:, 0]))
    parts = net.loss(out, batch)
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(parts["ce_local"], ce(out["local_logits"], batch["label"]))
    torch.testing.assert_close(parts["loss"], 0.6 * parts["ce_local"] + 0.4 * parts["ce_global"])


def test_each_patch_branch_sees_its_patch_and_only_it(fresh_eval) -> None:
    net, batch, _ = fresh_eval
    seen: dict[int, torch.Tensor] = {}
    hooks = [getattr(net, f"layer3_1_p{p + 1}")[0].register_forward_pre_hook(
        lambda _m, args, p=p: seen.__setitem__(p, args[0])) for p in range(4)]
    trunk: list[torch.Tensor] = []
    hooks.append(net.backbone.register_forward_hook(lambda _m, _a, out: trunk.append(out)))
    with torch.no_grad():
        out = net(batch)
    x = trunk[0]
    assert x.shape[-2:] == (8, 8)
    quadrants = [x[..., :4, :4], x[..., :4, 4:], x[..., 4:, :4], x[..., 4:, 4:]]  # row by row
    assert sorted(seen) == [0, 1, 2, 3]
    for p, quadrant in enumerate(quadrants):
        assert torch.equal(seen[p], quadrant), p

    # change the trunk's map in the bottom-left patch alone: only that patch's features move
    def poke(_m, _a, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[..., 4:, :4] += 1.0
        return out

    hooks.append(net.backbone.register_forward_hook(poke))
    with torch.no_grad():
        poked = net(batch)
    for hook in hooks:
        hook.remove()
    moved = (poked["local_features"] - out["local_features"]).abs().amax((0, 2))
    assert moved[2] > 1e-3 and torch.equal(moved[[0, 1, 3]], torch.zeros(3)), moved
    assert not torch.allclose(poked["global_features"], out["global_features"])


def test_a_finer_grid_gives_more_patches_and_a_map_that_does_not_cut_is_an_error(
        fresh_eval) -> None:
    _, batch, n_classes = fresh_eval
    torch.manual_seed(0)
    net = MANet(n_classes, grid=3).eval()
    assert net.patches == 9 and hasattr(net, "layer4_1_p9") and not hasattr(net, "layer3_1_p10")
    image = torch.nn.functional.interpolate(batch["image"][:2].float(), size=96)  # 12×12 map
    with torch.no_grad():
        out = net({"image": image})
    assert out["local_features"].shape == (2, 9, D)
    assert out["spatial_attention"].shape == (2, 9, 2, 2)
    with pytest.raises(InputError, match=r"8×8 map does not cut into 3×3 .* multiple of 24"):
        net({"image": batch["image"][:2]})


def test_attention_weights_lie_in_the_unit_interval_and_depend_on_the_face(fresh_eval) -> None:
    net, batch, _ = fresh_eval
    with torch.no_grad():
        out = net(batch)
    for name in ("channel_attention", "spatial_attention"):
        weights = out[name]
        assert torch.isfinite(weights).all() and (weights > 0).all() and (weights < 1).all(), name
        assert weights.std(0).amax() > 1e-4, name  # not one constant for every face
    # the weights are the gates applied: a fresh CBAM's output is its input times them
    cbam = net.layer4_1_p1[-1].cbam
    x = torch.randn(2, D, 3, 3)
    gated, channel, spatial = cbam(x)
    torch.testing.assert_close(gated, x * channel[:, :, None, None] * spatial[:, None])


def test_cpu_runs_repeat_exactly(work: Path) -> None:  # noqa: F811
    def two_steps() -> tuple[list[float], dict[str, torch.Tensor]]:
        net, batch, _ = _model_and_batch(work, "manet", {})  # seeds torch with 0
        opt = torch.optim.AdamW(net.param_groups(1e-3))
        losses = []
        for _ in range(2):
            loss = net.loss(net(batch), batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses, {k: v.clone() for k, v in net.state_dict().items()}

    with determinism(torch.device("cpu")):
        (first, a), (second, b) = two_steps(), two_steps()
    assert first == second and first[1] != first[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_autocast_keeps_the_scores_in_float32(fresh_eval) -> None:
    """The loop's CUDA path (bf16 autocast), here on the CPU."""
    net, batch, _ = fresh_eval
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(batch)
        parts = net.loss(out, batch)
    assert out["logits"].dtype == torch.float32 and torch.isfinite(out["logits"]).all()
    assert torch.isfinite(parts["loss"])


def test_the_smallest_input_is_32_px(fresh_eval) -> None:
    _, batch, n_classes = fresh_eval
    net = MANet(n_classes).train()  # batch statistics over 1×1 maps: the hardest case
    out = net({"image": batch["image"][:2, :, ::2, ::2]})  # 32 px: 1×1 patch maps
    assert out["local_maps"].shape[-2:] == (1, 1) and torch.isfinite(out["logits"]).all()
    with pytest.raises(InputError, match="multiple of 16"):
        net({"image": batch["image"][:2, :, :56, :56]})  # a 7×7 trunk map


def test_ma_nets_and_torchvisions_weights_load_by_name(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = create_model("manet", 7)
    own = {k.removeprefix("backbone."): v for k, v in net.state_dict().items()}
    assert set(SEED_KEYS) <= set(own)
    # MA-Net's file: {'state_dict': {'module.<name>': …}}, 12666 identities in fc_1 / fc_2
    torch.manual_seed(1)
    seed = {f"module.{k}": torch.randn_like(v.float()).to(v.dtype) for k, v in own.items()}
    for key in ("fc_1.weight", "fc_2.weight"):
        seed[f"module.{key}"] = torch.randn(12666, D)
    for key in ("fc_1.bias", "fc_2.bias"):
        seed[f"module.{key}"] = torch.randn(12666)
    torch.save({"state_dict": seed, "epoch": 1}, tmp_path / "Pretrained_on_MSCeleb.pth.tar")
    report = load_pretrained(net, tmp_path / "Pretrained_on_MSCeleb.pth.tar", "resnet18")
    assert report["skipped"] == 4 and report["loaded"] == len(own) - 4
    for key in SEED_KEYS[:-2]:
        mine = net.state_dict()[f"backbone.{key}" if key.startswith(("conv1", "layer2")) else key]
        assert torch.equal(mine, seed[f"module.{key}"]), key

    # torchvision's resnet18 file fills the trunk (conv1 … layer2) and nothing else
    source = tvm.resnet18()
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    fresh = create_model("manet", 7)
    branch = fresh.layer3_1_p1[0].conv1.weight.clone()
    report = load_pretrained(fresh, tmp_path / "resnet18.pth", "resnet18")
    trunk = [k for k in source.state_dict() if k.split(".")[0] in ("conv1", "bn1", "layer1",
                                                                    "layer2")]
    assert report["loaded"] == len(trunk)
    assert torch.equal(fresh.backbone.layer2[1].conv2.weight, source.layer2[1].conv2.weight)
    assert torch.equal(fresh.layer3_1_p1[0].conv1.weight, branch)


def test_bad_options_are_errors_that_say_why() -> None:
    with pytest.raises(InputError, match="bottleneck blocks"):
        MANet(7, backbone="resnet50")
    with pytest.raises(InputError, match=r"beta 1\.5"):
        MANet(7, beta=1.5)
    net = MANet(7, backbone="resnet34")  # the branches take resnet34's block counts
    assert len(net.layer3_1_p1) == 6 and len(net.layer4_2) == 3


def test_the_multi_scale_paths_run_in_opposite_directions() -> None:
    """MA-Net's order (its MS-Celeb weights'): path 1 starts at group 1, path 2 at group 4 (the
    Diversified copy starts both at group 1)."""
    torch.manual_seed(0)
    block = MulScaleBlock(16, 16).eval()
    inputs: dict[str, torch.Tensor] = {}
    for name in ("conv1_2_1", "conv1_2_4", "conv2_2_1", "conv2_2_4"):
        getattr(block, name).register_forward_pre_hook(
            lambda _m, args, name=name: inputs.__setitem__(name, args[0]))
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        out = block(x)
        groups = block.relu(block.bn1(block.conv1(x))).split(4, 1)
    assert torch.equal(inputs["conv1_2_1"], groups[0])  # a path's first conv sees its group
    assert torch.equal(inputs["conv2_2_4"], groups[3])
    assert not torch.equal(inputs["conv2_2_1"], groups[0])  # the last ones, more than that
    assert not torch.equal(inputs["conv1_2_4"], groups[3])
    assert out.shape == (2, 16, 5, 5) and (out >= 0).all()
