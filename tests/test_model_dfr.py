"""`dfr` on real CK+ faces (the `work` fixture of test_train.py): the diversity term of
Diversified FER on `esr` and `manet` — its formula against the seed's, the total loss, and
that it parts near-identical branches that cross-entropy alone leaves alike."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import test_train
import torch
from test_train import _model_and_batch

from fer_models.inputs import InputError
from fer_models.models import create_model, model_class
from fer_models.models.dfr import DFR, DiversifiedESR, DiversifiedMANet, kernel_diversity
from fer_models.models.esr import ESR
from fer_models.models.manet import MANet
from fer_models.train import resolve_config

work = test_train.work  # the fixture (real CK+ faces, folds, masks), found by name


def _train(net: DFR, batch: dict, n: int) -> list[dict[str, float]]:
    """n AdamW steps at 1e-3 on the whole loss; each step's parts."""
    opt = torch.optim.AdamW(net.param_groups(1e-3))
    net.train()
    history = []
    for _ in range(n):
        parts = net.loss(net(batch), batch)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in parts.items()})
    return history


def _seed_det_div(features: torch.Tensor, gamma: float, diagonal: float) -> torch.Tensor:
    """The seeds' `BranchDiversity` double loop over (M, B, D) sets, −det(K); the seeds leave
    K's diagonal 0 (`if i != j`); diagonal=1 is the kernel's own value."""
    m = features.shape[0]
    k = torch.full((m, m), diagonal)
    for i in range(m):
        for j in range(m):
            if i != j:
                diff = torch.exp(-gamma * torch.sum(torch.square(features[i] - features[j]), 1))
                k[i, j] = torch.mean(diff)
    return -torch.det(k)


def test_the_loss_is_ce_plus_the_weighted_diversity(work: Path) -> None:
    net, batch, _ = _model_and_batch(work, "dfr", {"branches": 3, "diversity_weight": 0.5})
    net.eval()
    with torch.no_grad():
        out = net(batch)
        parts = net.loss(out, batch)
    torch.testing.assert_close(parts["ce"], ESR.loss(net, out, batch)["ce"])  # ESR's CE sum
    torch.testing.assert_close(parts["diversity"], parts["div_spatial"] + parts["div_channel"])
    torch.testing.assert_close(parts["loss"], parts["ce"] + 0.5 * parts["diversity"])
    assert parts["diversity"] > 0
    # the terms are the seed's loop over the last CBAM's gates (with the kernel's diagonal)
    spatial = out["spatial_attention"].transpose(0, 1).flatten(2)  # (N, B, h·w)
    channel = out["channel_attention"].transpose(0, 1)  # (N, B, 512)
    torch.testing.assert_close(parts["div_spatial"], 1 + _seed_det_div(spatial, 10.0, 1.0))
    torch.testing.assert_close(parts["div_channel"], 1 + _seed_det_div(channel, 10.0, 1.0))


def test_the_term_is_one_minus_the_volume_the_sets_span() -> None:
    torch.manual_seed(0)
    near = torch.rand(4, 2, 5) * 0.1  # (B, M, D)
    assert kernel_diversity(near[:, [0, 0]], 10.0) == pytest.approx(1.0)  # alike: 1
    assert kernel_diversity(near * 100, 10.0) == pytest.approx(0.0, abs=1e-6)  # far: 0
    # two sets: the seed's −det with its zero diagonal is the same number
    seed = _seed_det_div(near.transpose(0, 1), 10.0, 0.0)
    torch.testing.assert_close(kernel_diversity(near, 10.0), seed)
    # three: the seed's zero diagonal gives −2·k12·k13·k23 < 0, rewarding alike branches
    three = torch.rand(4, 3, 5) * 0.1
    assert _seed_det_div(three.transpose(0, 1), 10.0, 0.0) < 0
    assert 0 < kernel_diversity(three, 10.0) < 1


def test_diversity_parts_near_identical_branches_that_ce_leaves_alike(work: Path) -> None:
    """Branch 2 starts as branch 1 plus 1 % noise: alike spatial gates (term ≈ 1). Trained on
    CE alone (w = 0) they stay alike; with the term (w = 1) they part within a few steps."""
    spatial = {}
    for weight in (0.0, 1.0):
        net, batch, _ = _model_and_batch(work, "dfr", {"branches": 3,
                                                       "diversity_weight": weight})
        with torch.no_grad():
            for p0, p1 in zip(net.branches[0].parameters(), net.branches[1].parameters(),
                              strict=True):
                p1.copy_(p0 + 0.01 * p0.std(correction=0) * torch.randn_like(p0))
        spatial[weight] = [parts["div_spatial"] for parts in _train(net, batch, 5)]
    start = spatial[0.0][0]
    assert spatial[1.0][0] == start > 0.9
    assert all(d > 0 for d in spatial[1.0])
    assert spatial[1.0][-1] < 0.3 * start, spatial
    assert spatial[0.0][-1] > 0.8 * start, spatial


def test_one_branch_has_no_diversity(work: Path) -> None:
    net, batch, _ = _model_and_batch(work, "dfr", {"branches": 1})
    with torch.no_grad():
        parts = net.loss(net(batch), batch)
    assert parts["diversity"] == 0 and parts["loss"] == parts["ce"]
    assert "div_spatial" not in parts


def test_manet_terms_are_its_patches_and_its_branches(work: Path) -> None:
    net, batch, _ = _model_and_batch(work, "dfr", {"base": "manet", "diversity_weight": 2.0})
    net.eval()
    with torch.no_grad():
        out = net(batch)
        parts = net.loss(out, batch)
    base = MANet.loss(net, out, batch)
    torch.testing.assert_close(parts["ce"], base["ce"])
    assert {"div_spatial", "div_channel", "div_branch"} <= set(parts)
    terms = parts["div_spatial"] + parts["div_channel"] + parts["div_branch"]
    torch.testing.assert_close(parts["diversity"], terms)
    torch.testing.assert_close(parts["loss"], parts["ce"] + 2.0 * terms)
    maps = out["local_maps"].transpose(0, 1)  # (P, B, D, h, w), the seed's local_feat_b1
    torch.testing.assert_close(parts["div_spatial"],
                               1 + _seed_det_div(maps.mean(2).flatten(2), 10.0, 1.0))
    torch.testing.assert_close(parts["div_branch"],
                               1 + _seed_det_div(out["branch_features"].transpose(0, 1), 10.0,
                                                 1.0))


def test_dfr_is_its_base_model_under_the_base_names() -> None:
    esr = create_model("dfr", 6, branches=2)
    assert type(esr) is DiversifiedESR and isinstance(esr, ESR) and isinstance(esr, DFR)
    assert esr.state_dict().keys() == create_model("esr", 6, branches=2, cbam=True).state_dict(
        ).keys()
    manet = create_model("dfr", 6, base="manet")
    assert type(manet) is DiversifiedMANet and isinstance(manet, MANet)
    assert manet.state_dict().keys() == create_model("manet", 6).state_dict().keys()
    assert type(copy.deepcopy(esr)) is DiversifiedESR
    cls = model_class("dfr")
    assert resolve_config("dfr").run == "dfr" and resolve_config("dfr").size == 96
    assert resolve_config("dfr", grow=True, branches=3).run == "dfr-3"
    assert resolve_config("dfr", base="manet").run == "dfr"
    assert cls.previous_step("dfr", {"grow": True, "branches": 3}) == (
        "dfr-2", "fer-train --model dfr --grow --branches 2")
    assert cls.previous_step("dfr", {"base": "manet"}) is None
    assert cls.defaults_for({"base": "manet"}) == MANet.defaults
    assert cls.defaults_for({"grow": True, "branches": 3})["epochs"] == 20
    with pytest.raises(InputError, match="base=manet takes no option branches, grow"):
        create_model("dfr", 6, base="manet", branches=3, grow=True)
    with pytest.raises(InputError, match="base=esr takes no option beta"):
        create_model("dfr", 6, beta=0.5)
    with pytest.raises(InputError, match="esr or manet, not 'vgg'"):
        create_model("dfr", 6, base="vgg")
