"""`fer-train` on real CK+ faces: `ckplus align`, `folds` and `masks` of ../shared/data/ckplus,
then every model for a few steps on the CPU at 64 px, the CLI over every fold, resume, and the
errors that name what to run first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import default_collate
from torchvision import models as tvm

from fer_models.cli import main
from fer_models.data import ClipDataset, FaceDataset, augment, collate_clips, draw_crop
from fer_models.inputs import InputError, masks_order, read_inputs, read_masks
from fer_models.models import MODELS, create_model, model_class
from fer_models.models.backbone import load_pretrained
from fer_models.train import train
from fer_prep.align import TEMPLATES
from fer_prep.cache import read_record, write_record, write_whole
from fer_prep.errors import InputError as PrepInputError
from fer_prep.images import read_image
from fer_prep.labels import CANONICAL
from fer_prep.runner import run

SIZE = 64  # input side for every test: small enough for two CPU cores
MASK = 56  # the masks' side, unlike the input's, so FMPN must resample
K = 5  # 5 subjects in the shared CK+ sequences
#: each model's configurations, small; every registered model must appear
CONFIGS = [
    ("resnet18", {}),
    ("resnet18", {"expression": True}),
    ("fan", {"at_type": "self"}),
    ("fan", {"at_type": "relation"}),
    ("fmpn", {"stage": 1, "ngf": 8, "n_blocks": 1}),
    ("fmpn", {"stage": 2, "ngf": 8, "n_blocks": 1}),
    ("landmark-aux", {}),
    ("manet", {}),
    ("mafer", {"step": 1, "downsample_prob": 1.0, "curriculum_images": 0}),
    ("mafer", {"step": 2}),
    ("esr", {"branches": 3}),
    ("dfr", {"base": "esr", "branches": 3}),
    ("dfr", {"base": "manet"}),
]
FAST = {"epochs": 1, "size": SIZE, "batch_size": 8, "workers": 0, "progress": False}


@pytest.fixture(scope="module")
def work(shared: Path, tmp_path_factory) -> Path:
    """Real faces, folds and masks of the 18 shared CK+ sequences."""
    work = tmp_path_factory.mktemp("train-work")
    run("ckplus", "align", work, root=shared / "data/ckplus", jobs=2)
    run("ckplus", "folds", work, k=K)
    run("ckplus", "masks", work, size=MASK, jobs=2)
    assert read_record(work / "ckplus/masks")["finishing"]["size"] == MASK
    return work


def _batch(dataset, n: int, clips: bool = False) -> dict[str, torch.Tensor]:
    """n items, collated and augmented (training datasets) as the training loop does."""
    items = [dataset[(i, 1000 + i)] for i in range(n)]
    batch = collate_clips(items) if clips else default_collate(items)
    return augment(batch) if "crop" in batch else batch


def _learn(net, batch: dict[str, torch.Tensor], steps: int = 8) -> list[float]:
    """The loss of each of `steps` AdamW steps (lr 1e-3) on one batch."""
    opt = torch.optim.AdamW(net.param_groups(1e-3))
    net.train()
    losses = []
    for _ in range(steps):
        parts = net.loss(net(batch), batch)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        losses.append(float(parts["loss"].detach()))
    return losses


def _model_and_batch(work: Path, name: str, options: dict):
    cls = model_class(name)
    inputs = read_inputs("ckplus", work, masks_order(work, "ckplus") if cls.needs_masks else None)
    rows = inputs.part(0, "train")
    fold_masks = read_masks(inputs, 0) if cls.needs_masks else None
    if cls.clip:
        batch = _batch(ClipDataset(inputs, rows, SIZE, train=True), 4, clips=True)
    else:
        data = FaceDataset(inputs, rows, SIZE, train=True, landmarks=cls.needs_landmarks,
                           masks=fold_masks, expression=cls.needs_expression(options))
        batch = _batch(data, 8)
    extra = {"mask_size": fold_masks.size} if fold_masks else {}
    torch.manual_seed(0)
    return create_model(name, len(inputs.classes), **options, **extra), batch, inputs


def test_configs_cover_every_registered_model() -> None:
    assert {name for name, _ in CONFIGS} == set(MODELS.names())


@pytest.mark.parametrize(("name", "options"), CONFIGS, ids=[f"{n}-{o}" for n, o in CONFIGS])
def test_each_model_learns_a_batch_of_real_faces(work: Path, name: str, options: dict) -> None:
    net, batch, _ = _model_and_batch(work, name, options)
    before = {k: v.clone() for k, v in batch.items()}
    losses = _learn(net, batch)
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(torch.equal(before[k], batch[k]) for k in batch)  # the model left its input alone


@pytest.mark.parametrize("at_type", ["self", "relation"])
def test_fan_attention_weights_over_a_clip_sum_to_one(work: Path, at_type: str) -> None:
    inputs = read_inputs("ckplus", work)
    clips = ClipDataset(inputs, inputs.part(0, "test"), SIZE, train=False)
    lengths = [len(c) for c in clips.clips]
    assert {1, 3} <= set(lengths)  # neutral frames alone, three peak frames together
    batch = collate_clips([clips[(i, 0)] for i in range(len(clips))])
    torch.manual_seed(0)
    net = create_model("fan", len(inputs.classes), at_type=at_type).eval()
    with torch.no_grad():
        out = net(batch)
    weights, valid = out["weights"], batch["valid"]
    assert weights.shape == valid.shape == (len(clips), 3)
    torch.testing.assert_close(weights.sum(1), torch.ones(len(clips)))
    assert (weights[~valid] == 0).all() and (weights[valid] > 0).all()
    alone = collate_clips([clips[(lengths.index(1), 0)]])  # padding changes nothing
    with torch.no_grad():
        single = net(alone)["logits"][0]
    torch.testing.assert_close(single, out["logits"][lengths.index(1)], atol=1e-4, rtol=1e-4)


def test_fmpn_generator_gives_masks_in_unit_range_at_the_masks_size(work: Path) -> None:
    net, batch, inputs = _model_and_batch(work, "fmpn", {"ngf": 8, "n_blocks": 1})
    fold_masks = read_masks(inputs, 0)
    assert fold_masks.size == MASK
    assert fold_masks.index == {c: ("anger", "contempt", "disgust", "fear", "happiness",
                                    "sadness", "surprise").index(c) for c in inputs.classes}
    assert batch["mask"].shape == (8, 1, MASK, MASK)
    net.eval()
    with torch.no_grad():
        out = net(batch)
    assert out["mask"].shape == (8, 1, MASK, MASK)
    assert out["mask"].min() >= 0 and out["mask"].max() <= 1
    assert out["focus"].shape == (8, 1, SIZE, SIZE)
    # an unaugmented mask target is the masks stage's file of the row's class
    data = FaceDataset(inputs, inputs.part(0, "train"), SIZE, train=False, masks=fold_masks)
    item = data[(0, 0)]
    label = inputs.classes[int(item["label"])]
    png = read_image(work / "ckplus/masks/0" / f"{fold_masks.index[label]}.png")
    assert np.array_equal(item["mask"][0].numpy(), png)


def test_landmark_loss_ignores_samples_without_landmarks(work: Path) -> None:
    net, batch, _ = _model_and_batch(work, "landmark-aux", {})
    assert batch["has_landmarks"].all()  # every CK+ chip has its own 68 points
    net.eval()
    with torch.no_grad():
        out = net(batch)
    without = batch["has_landmarks"].clone()
    without[::2] = False
    garbage = batch["landmarks"].clone()
    garbage[::2] = torch.nan
    garbage[0] = 1e6
    masked = {**batch, "has_landmarks": without, "landmarks": garbage}
    expected = (out["landmarks"] - batch["landmarks"]).abs().mean((1, 2))[1::2].mean()
    torch.testing.assert_close(net.loss(out, masked)["landmark"], expected)

    net.train()
    torch.manual_seed(0)
    loss = net.loss(net(masked), masked)["loss"]
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_chip_landmarks_follow_the_pixels(work: Path) -> None:
    """Eye centres sit on the template; crop and mirror move points and pixels alike."""
    inputs = read_inputs("ckplus", work)
    side = inputs.chip_size
    eyes = np.stack([inputs.landmarks[:, 36:42].mean(1), inputs.landmarks[:, 42:48].mean(1)], 1)
    target = TEMPLATES.get("eyes").eye_centres(side, 0.25)
    assert np.abs(eyes * side - 0.5 - target).max() < 2.0

    points = torch.from_numpy(inputs.landmarks[0])
    n = 128
    canvas = torch.zeros((1, n, n), dtype=torch.uint8)
    marked = [0, 8, 16, 30, 36, 45, 48, 54]  # jaw ends and chin, nose, eye and mouth corners
    for x, y in (points[marked] * n).long().tolist():
        canvas[0, y - 1:y + 2, x - 1:x + 2] = 255
    crops = torch.stack([draw_crop(seed, rotate=15.0 * (seed % 2)) for seed in range(8)])
    assert {0.0, 1.0} <= set(crops[:, 3].tolist())  # some mirrored, some not
    assert (crops[1::2, 4].abs() > 0.01).any() and (crops[::2, 4] == 0).all()  # some turned
    out = augment({"image": canvas.expand(8, 1, n, n), "landmarks": points.expand(8, 68, 2),
                   "crop": crops})
    for image, moved in zip(out["image"][:, 0], out["landmarks"], strict=True):
        for x, y in (moved[marked] * n).tolist():
            y0, x0 = int(y), int(x)
            assert image[y0 - 2:y0 + 3, x0 - 2:x0 + 3].max() > 100, (x, y)
    mirror = augment({"landmarks": points[None], "crop": torch.tensor([[0.0, 0.0, 1.0, 1.0]])})
    torch.testing.assert_close(mirror["landmarks"][0, 45, 0], 1 - points[36, 0])  # sides swap


def test_fold_all_prints_the_table_and_writes_every_fold(work: Path) -> None:
    result = CliRunner().invoke(main, [
        "--dataset", "ckplus", "--work", str(work), "--model", "resnet18", "--fold", "all",
        "--epochs", "1", "--size", str(SIZE), "--batch-size", "8", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    run = work / "ckplus/train/resnet18"
    metrics = json.loads((run / "metrics.json").read_text())
    assert sorted(metrics["folds"]) == [str(k) for k in range(K)]
    present = set(read_inputs("ckplus", work).rows["label"])
    assert metrics["classes"] == [c for c in CANONICAL if c in present]
    for k, fold in metrics["folds"].items():
        confusion = np.array(fold["confusion"])
        assert 0 <= fold["accuracy"] <= 1 and confusion.sum() == fold["n_test"]
        assert fold["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
        line = next(x for x in result.output.splitlines() if x.split()[:1] == [k])
        assert f"{100 * fold['accuracy']:.2f}" in line
        for name in ("last.pt", "best.pt", "confusion.png", "metrics.json"):
            assert (run / f"fold_{k}" / name).is_file()
    mean = np.mean([f["accuracy"] for f in metrics["folds"].values()])
    assert metrics["mean_accuracy"] == pytest.approx(mean)
    assert f"{100 * mean:.2f}" in next(x for x in result.output.splitlines()
                                       if x.strip().startswith("mean"))
    assert (run / "confusion.png").is_file()


def test_a_killed_run_resumes_to_the_uninterrupted_result(work: Path) -> None:
    options = {**FAST, "epochs": 2}
    train("ckplus", work, "resnet18", 0, **options)
    straight = torch.load(work / "ckplus/train/resnet18/fold_0/last.pt", weights_only=True)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(line: str) -> None:
        if "epoch 1/2" in line:
            raise Killed

    with pytest.raises(Killed):
        train("ckplus", work, "resnet18", 0, echo=kill_after_first_epoch, **options)
    lines: list[str] = []
    resumed_metrics = train("ckplus", work, "resnet18", 0, resume=True, echo=lines.append,
                            **{**options, "workers": 2})
    assert any("resumed after epoch 1" in x for x in lines)
    resumed = torch.load(work / "ckplus/train/resnet18/fold_0/last.pt", weights_only=True)
    assert resumed["epoch"] == 2
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert resumed_metrics["folds"]["0"]["accuracy"] == straight["history"][-1]["test_accuracy"]


def test_missing_inputs_name_the_command_to_run(work: Path, tmp_path: Path) -> None:
    def cli(*args: str):
        return CliRunner().invoke(main, ["--dataset", "ckplus", "--quiet", *args])

    result = cli("--work", str(tmp_path / "empty"), "--model", "resnet18")
    assert result.exit_code == 1
    assert "align/manifest.parquet" in result.output and "fer-prep ckplus align" in result.output
    with pytest.raises(PrepInputError, match="fer-prep ckplus align"):  # one error family
        read_inputs("ckplus", tmp_path / "empty")

    only_faces = tmp_path / "faces"
    shutil.copytree(work / "ckplus/align", only_faces / "ckplus/align")
    result = cli("--work", str(only_faces), "--model", "resnet18")
    assert result.exit_code == 1 and "fer-prep folds --dataset ckplus" in result.output

    shutil.copytree(work / "ckplus/folds", only_faces / "ckplus/folds")
    result = cli("--work", str(only_faces), "--model", "fmpn")
    assert result.exit_code == 1 and "fer-prep masks --dataset ckplus" in result.output

    result = cli("--work", str(work), "--model", "resnet18", "--fold", str(K))
    assert result.exit_code == 1 and f"fold {K} out of range" in result.output
    result = cli("--work", str(work), "--model", "resnet18", "--fold", "first")
    assert result.exit_code == 1 and "neither a fold number nor 'all'" in result.output
    if not torch.cuda.is_available():
        result = cli("--work", str(work), "--model", "resnet18", "--device", "cuda")
        assert result.exit_code == 1 and "no CUDA GPU" in result.output
    with pytest.raises(InputError, match="resnet18 takes no option at_type"):
        train("ckplus", work, "resnet18", 0, at_type="self", **FAST)
    with pytest.raises(KeyError, match="landmark-aux"):
        create_model("vgg", 7)


def test_pretrained_weights_come_from_local_files_only(tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(1)
    source = tvm.resnet18()
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    for name in ("resnet18", "fan", "landmark-aux"):
        net = create_model(name, 7)
        report = load_pretrained(net, tmp_path / "resnet18.pth", "resnet18")
        assert report["skipped"] == 2  # torchvision's 1000-class fc
        assert torch.equal(net.backbone.conv1.weight, source.conv1.weight)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_pretrained(create_model("resnet18", 7), "imagenet", "resnet18")
    torch.save({"unrelated": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="none of its 1 tensors fits"):
        load_pretrained(create_model("resnet18", 7), tmp_path / "other.pth", "resnet18")


def test_help_shows_an_example() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "fer-train --dataset ckplus --model" in result.output


def test_resnet18_small_stem_and_standardize_on_48_px_faces(work: Path) -> None:
    """The 48-px recipe's options: the small stem keeps 6×6 cells at 48 px (the ImageNet stem
    2×2), and a standardized face is the same input whatever its brightness and contrast."""
    inputs = read_inputs("ckplus", work)
    batch = _batch(FaceDataset(inputs, inputs.part(0, "test"), 48, train=False), 6)
    torch.manual_seed(0)
    net = create_model("resnet18", len(inputs.classes), stem="small", standardize=True).eval()
    trunk = net.backbone
    x = net.prepare(batch["image"])
    cells = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(trunk.maxpool(trunk.relu(
        trunk.bn1(trunk.conv1(x))))))))
    assert cells.shape[-2:] == (6, 6)
    darker = {**batch, "image": batch["image"].float() * 0.5 + 20}
    with torch.no_grad():
        torch.testing.assert_close(net(darker)["logits"], net(batch)["logits"], atol=1e-4,
                                   rtol=1e-4)
        plain = create_model("resnet18", len(inputs.classes), stem="small").eval()
        assert not torch.allclose(plain(darker)["logits"], plain(batch)["logits"], atol=1e-3)


def test_expression_input_read_from_the_faces(work: Path) -> None:
    """`Inputs.expression`: each ok MediaPipe face's 52 scores and pose / 90° (CK+ faces look
    ahead); the resnet18 head classifies them beside the trunk's features."""
    from fer_models.inputs import EXPRESSION, N_SHAPES

    inputs = read_inputs("ckplus", work)
    assert inputs.rows["has_expression"].all()
    values = inputs.expression
    assert values.shape == (len(inputs.rows), EXPRESSION)
    assert (values[:, :N_SHAPES] >= 0).all() and (values[:, :N_SHAPES] <= 1).all()
    assert (np.abs(values[:, N_SHAPES:]) < 0.25).all() and values[:, N_SHAPES:].any()
    net = create_model("resnet18", len(inputs.classes), expression=True)
    assert net.head.in_features == 512 + EXPRESSION


def test_augmented_expression_matches_the_backend_on_the_augmented_face(work: Path) -> None:
    """A mirrored and turned chip, measured afresh by the real backend, has the pose and the
    sides of its blendshapes that `augment` predicts (roll with the turn, yaw and sides
    swapped by the mirror)."""
    import cv2

    from fer_models.inputs import N_SHAPES
    from fer_prep.faces import BLENDSHAPES, create_backend

    backend = create_backend("mediapipe")
    inputs = read_inputs("ckplus", work)
    left, right = BLENDSHAPES.index("eyeSquintLeft"), BLENDSHAPES.index("eyeSquintRight")
    i = int(np.argmax(np.abs(inputs.expression[:, left] - inputs.expression[:, right])))
    chip = cv2.resize(read_image(inputs.align_dir / inputs.rows.iloc[i]["face_path"]),
                      (224, 224))
    chip = chip if chip.ndim == 3 else cv2.cvtColor(chip, cv2.COLOR_GRAY2BGR)
    face = backend.faces(chip)[0]
    measured = torch.tensor(np.r_[face.blendshapes, face.pose / 90], dtype=torch.float32)
    image = torch.from_numpy(cv2.cvtColor(chip, cv2.COLOR_BGR2RGB).transpose(2, 0, 1).copy())
    for mirror in (0.0, 1.0):
        for degrees in (-15.0, 15.0):
            crop = torch.tensor([[0.0, 0.0, 1.0, mirror, np.radians(degrees)]])
            out = augment({"image": image[None], "expression": measured[None], "crop": crop})
            shown = out["image"][0].numpy().transpose(1, 2, 0).clip(0, 255).astype(np.uint8)
            again = backend.faces(cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))[0]
            predicted = out["expression"][0].numpy()
            assert np.abs(predicted[N_SHAPES:] * 90 - again.pose).max() < 4, (mirror, degrees)
            side = np.sign(predicted[left] - predicted[right])
            assert side == np.sign(again.blendshapes[left] - again.blendshapes[right])


def test_expression_needs_mediapipe_faces(work: Path, tmp_path: Path) -> None:
    """fer-train --expression on dlib's faces: one line naming the folder and the fix."""
    other = tmp_path / "w"
    shutil.copytree(work / "ckplus/folds", other / "ckplus/folds")
    shutil.copytree(work / "ckplus/align", other / "ckplus/align")
    faces = pd.read_parquet(other / "ckplus/align/manifest.parquet").drop(
        columns=["blendshapes", "yaw", "pitch", "roll"])
    faces.to_parquet(other / "ckplus/align/manifest.parquet", index=False)
    record = read_record(other / "ckplus/align")  # as dlib's faces are recorded: whole
    write_record(other / "ckplus/align", {**record, "whole": write_whole(other / "ckplus/align")})
    result = CliRunner().invoke(main, ["--dataset", "ckplus", "--work", str(other), "--model",
                                       "resnet18", "--expression", "--epochs", "1"])
    assert result.exit_code == 1 and "--expression: no face in" in result.output
    assert "--backend mediapipe" in result.output and "Traceback" not in result.output
