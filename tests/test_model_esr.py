"""`esr` on real CK+ faces (the `work` fixture of test_train.py): it learns a batch, its
branches differ and vote, the base is one set of weights shared by every branch, and growing
the ensemble branch by branch through the loop's step hooks keeps the trained branches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_train
import torch
import torch.nn.functional as F
from test_train import SIZE, _model_and_batch

from fer_models.inputs import InputError
from fer_models.models import create_model, model_class
from fer_models.models.esr import BASE, ESR, combine
from fer_models.train import resolve_config, train

FAST = {"epochs": 1, "size": SIZE, "batch_size": 8, "workers": 0, "progress": False}

work = test_train.work  # the fixture (real CK+ faces, folds, masks), found by name


def _steps(net: ESR, batch: dict, n: int) -> list[float]:
    opt = torch.optim.AdamW(net.param_groups(1e-3))
    net.train()
    losses = []
    for _ in range(n):
        loss = net.loss(net(batch), batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_the_loss_is_the_sum_of_the_branches_cross_entropies(work: Path) -> None:
    net, batch, _ = _model_and_batch(work, "esr", {"branches": 3})
    net.eval()
    with torch.no_grad():
        out = net(batch)
        parts = net.loss(out, batch)
    per_branch = [F.cross_entropy(out["branch_logits"][:, i], batch["label"]) for i in range(3)]
    torch.testing.assert_close(parts["loss"], sum(per_branch))
    for i in range(3):
        hits = (out["branch_logits"][:, i].argmax(1) == batch["label"]).float().mean()
        assert parts[f"acc_branch{i + 1}"] == hits
    # a vote distribution (FER+'s soft labels) is every branch's target alike
    soft = torch.softmax(torch.randn(len(batch["label"]), out["logits"].shape[1]), 1)
    with torch.no_grad():
        soft_parts = net.loss(out, {**batch, "soft": soft})
    torch.testing.assert_close(soft_parts["loss"], sum(
        F.cross_entropy(out["branch_logits"][:, i], soft) for i in range(3)))


def test_branches_differ_and_the_ensemble_decides_by_their_vote(work: Path) -> None:
    net, batch, inputs = _model_and_batch(work, "esr", {"branches": 3})
    c = len(inputs.classes)
    _steps(net, batch, 2)  # a little training, so the branches disagree on some faces
    net.eval()
    with torch.no_grad():
        out = net(batch)
    scores = out["branch_logits"]
    assert scores.shape == (8, 3, c) and out["logits"].shape == (8, c)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(scores[:, i], scores[:, j], atol=1e-3)
    votes = F.one_hot(scores.argmax(-1), c).sum(1)
    mean = scores.softmax(-1).mean(1)
    for face in range(8):
        leaders = (votes[face] == votes[face].max()).nonzero().flatten()
        expected = leaders[mean[face, leaders].argmax()]  # a tie: the highest mean probability
        assert out["logits"][face].argmax() == expected
    torch.testing.assert_close(out["logits"].exp().sum(1), torch.ones(8))  # log-probabilities
    torch.testing.assert_close(combine(scores, "mean").exp(), mean)


def test_the_vote_beats_a_confident_minority_and_breaks_ties_by_mean_probability() -> None:
    # three branches, three classes; face 0: two mild votes for class 0, one sure vote for 1;
    # face 1: one vote each, class 2's the surest
    scores = torch.tensor([[[2.0, 1.0, 0.0], [2.0, 1.0, 0.0], [-9.0, 9.0, -9.0]],
                           [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-9.0, -9.0, 9.0]]])
    assert combine(scores, "vote").argmax(1).tolist() == [0, 2]
    assert combine(scores, "mean").argmax(1).tolist() == [1, 2]  # the mean follows the sure one


def test_the_base_is_one_set_of_weights_that_every_branch_trains(work: Path) -> None:
    net, batch, _ = _model_and_batch(work, "esr", {"branches": 3})
    base = {id(p) for p in net.backbone.parameters()}
    for branch in net.branches:
        assert not base & {id(p) for p in branch.parameters()}
    n_base = sum(p.numel() for p in net.backbone.parameters())
    n_branch = sum(p.numel() for p in net.branches[0].parameters())
    assert sum(p.numel() for p in net.parameters()) == n_base + 3 * n_branch
    assert n_base == sum(cout * (cin * k * k + 1) + 2 * cout for cin, cout, k, *_ in BASE)
    net.train()
    out = net(batch)
    for i in range(3):  # each branch's CE alone reaches the base and that branch only
        net.zero_grad()
        F.cross_entropy(out["branch_logits"][:, i], batch["label"]).backward(retain_graph=True)
        assert net.backbone.conv1.weight.grad.abs().sum() > 0
        for j, branch in enumerate(net.branches):
            grads = [p.grad for p in branch.parameters()]
            assert all(g is not None and g.abs().sum() > 0 for g in grads) == (i == j)
    with torch.no_grad():  # changing the base changes every branch's scores
        before = net.eval()(batch)["branch_logits"]
        net.backbone.conv1.weight.mul_(0.5)
        after = net(batch)["branch_logits"]
    assert all(not torch.allclose(before[:, i], after[:, i]) for i in range(3))


def test_growing_takes_the_base_and_trained_branches_and_slows_them() -> None:
    torch.manual_seed(1)
    small = create_model("esr", 6, branches=2, grow=True)
    torch.manual_seed(2)
    grown = create_model("esr", 6, branches=3, grow=True)
    new_branch = {k: v.clone() for k, v in grown.branches[2].state_dict().items()}
    took = grown.load_previous(small.state_dict())
    assert "2 trained branch" in took
    for name, tensor in small.state_dict().items():
        assert torch.equal(grown.state_dict()[name], tensor), name
    for name, tensor in grown.branches[2].state_dict().items():  # ESR's new branch: random
        assert torch.equal(tensor, new_branch[name]), name
    assert not torch.equal(grown.branches[2].conv1.weight, grown.branches[1].conv1.weight)
    groups = grown.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in grown.branches[2].parameters()}
    assert len(groups[1]["params"]) == len(list(grown.parameters())) - len(groups[0]["params"])
    together = create_model("esr", 6, branches=3)  # without grow: one group, all at lr
    assert [g["lr"] for g in together.param_groups(1e-3)] == [1e-3]
    with pytest.raises(RuntimeError, match="it has 3 branches, not 2"):
        grown.load_previous(create_model("esr", 6, branches=3).state_dict())
    with pytest.raises(RuntimeError, match="size mismatch"):
        grown.load_previous(create_model("esr", 5, branches=2).state_dict())


def test_run_names_and_steps_follow_the_ensemble_size() -> None:
    cls = model_class("esr")
    assert resolve_config("esr").run == "esr"
    assert resolve_config("esr", grow=True).run == "esr-9"
    assert resolve_config("esr", grow=True, branches=1).run == "esr-1"
    assert cls.previous_step("esr", {"grow": True, "branches": 1}) is None
    assert cls.previous_step("esr", {"branches": 4}) is None
    assert cls.previous_step("esr", {"grow": True, "branches": 4}) == (
        "esr-3", "fer-train --model esr --grow --branches 3")
    assert resolve_config("esr").size == 96 and resolve_config("esr").batch_size == 32
    assert cls.defaults_for({"grow": True, "branches": 1})["epochs"] == 50  # ESR's first branch
    assert cls.defaults_for({"grow": True, "branches": 2})["epochs"] == 20  # each later one
    assert cls.defaults_for({"branches": 2}) == cls.defaults


def test_the_loop_grows_the_ensemble_branch_by_branch(work: Path) -> None:
    first = train("ckplus", work, "esr", 0, grow=True, branches=1, **FAST)
    assert first["run"] == "esr-1"
    lines: list[str] = []
    second = train("ckplus", work, "esr", 0, grow=True, branches=2, echo=lines.append, **FAST)
    assert second["run"] == "esr-2"
    previous = work / "ckplus/train/esr-1/fold_0/last.pt"
    fold = json.loads((work / "ckplus/train/esr-2/fold_0/metrics.json").read_text())
    assert fold["previous_step"] == str(previous)
    assert any("the shared base and 1 trained branch(es)" in x for x in lines), lines
    history = fold["history"][0]
    assert {"train_acc_branch1", "train_acc_branch2", "test_acc_branch2"} <= set(history)
    state = torch.load(work / "ckplus/train/esr-2/fold_0/last.pt", weights_only=True)["model"]
    assert sum(k.startswith("branches.1.") for k in state) > 0


def test_faces_too_small_for_the_layers_are_an_input_error() -> None:
    net = create_model("esr", 6, branches=1)
    with pytest.raises(InputError, match="at least 54 px"):
        net({"image": torch.zeros((2, 3, 48, 48), dtype=torch.uint8)})
    with pytest.raises(InputError, match="vote or mean"):
        create_model("esr", 6, ensemble="median")
