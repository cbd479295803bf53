"""`ckplus align --frames all --follow` on real CK+ sequences with real MediaPipe: the same rows and
statuses as detecting every frame, landmarks close to it, results independent of batching and
workers, a no-op re-run, and an unreadable frame in the middle of a sequence."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_prep.runner import run
from fer_prep.runner.execute import _batches
from fer_prep.stages.align import Align, frame_runs, with_sequence_fingerprints

#: four real sequences (57 frames) holding the frames where the two ways differ most (S052_001's
#: and S055_001's open mouths: the crop mesh of per-frame detection puts the chin on the lip)
SEQUENCES = ["S052/001", "S055/001", "S074/002", "S111/001"]
#: per frame, the mean over the 68 points of |per-frame − followed| / IOD (outer eye corners):
#: measured on these 57 frames 2.1 % mean, 5.4 % worst (bench/ckplus_follow.py, all 18
#: sequences: 1.1 % and 5.4 %)
MEAN_BOUND, FRAME_BOUND = 0.03, 0.08


def _copy(shared: Path, root: Path, sequences: list[str], link: bool) -> Path:
    """Real CK+ sequences (images + Emotion files) in the original layout under `root`."""
    for seq in sequences:
        for part in ("cohn-kanade-images", "Emotion"):
            src, dst = shared / "data/ckplus" / part / seq, root / part / seq
            dst.parent.mkdir(parents=True, exist_ok=True)
            if link:
                dst.symlink_to(src, target_is_directory=True)
            else:
                shutil.copytree(src, dst)
    return root


@pytest.fixture(scope="module")
def ck_root(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy(shared, tmp_path_factory.mktemp("ck"), SEQUENCES, link=True)


@pytest.fixture(scope="module")
def both(ck_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Every frame aligned detecting each frame and following, on one worker each."""
    work = tmp_path_factory.mktemp("work")
    return {name: run("ckplus", "align", work / name, root=ck_root, jobs=1, frames="all",
                      follow=follow)
            for name, follow in (("detected", False), ("followed", True))}


def _landmarks(manifest: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(v).reshape(68, 2) for v in manifest["landmarks68"]])


def test_both_ways_give_the_same_rows_every_frame_ok(both) -> None:
    detected, followed = both["detected"].manifest, both["followed"].manifest
    assert len(detected) == 57
    assert detected["sample_id"].tolist() == followed["sample_id"].tolist()
    assert (detected["status"] == "ok").all() and (followed["status"] == "ok").all()
    assert (followed["detector"] == "mesh-tracking").all()  # every frame followed
    assert detected["detector"].str.startswith("blazeface").all()
    assert both["followed"].record["params"]["follow"] is True
    assert both["detected"].record["params"]["follow"] is False


def test_followed_landmarks_are_close_to_per_frame_detection(both) -> None:
    a, b = _landmarks(both["detected"].manifest), _landmarks(both["followed"].manifest)
    iod = np.linalg.norm(a[:, 45] - a[:, 36], axis=1)
    per_frame = (np.linalg.norm(a - b, axis=2) / iod[:, None]).mean(1)
    assert per_frame.mean() <= MEAN_BOUND, per_frame.mean()
    assert per_frame.max() <= FRAME_BOUND, per_frame.max()
    assert per_frame.mean() > 0  # the two ways really are two ways


def test_two_workers_give_the_same_bytes(both, ck_root: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequences packed two a batch over two workers give the landmarks and chips of one
    worker with one sequence a batch (15 items a batch: no two of these sequences fit)."""
    one = both["followed"]
    monkeypatch.setattr(Align, "batch_size", 32)
    two = run("ckplus", "align", tmp_path, root=ck_root, jobs=2, frames="all", follow=True)
    cols = ["sample_id", "status", "landmarks68", "matrix"]
    pd.testing.assert_frame_equal(one.manifest[cols], two.manifest[cols])
    for rel in one.manifest["face_path"]:
        assert (one.folder / rel).read_bytes() == (two.folder / rel).read_bytes(), rel


def test_rerun_is_a_no_op(both, ck_root: Path) -> None:
    first = both["followed"]
    before = {p: p.stat().st_mtime_ns for p in first.folder.rglob("*") if p.is_file()}
    again = run("ckplus", "align", first.folder.parent.parent, root=ck_root, jobs=1,
                frames="all", follow=True)
    assert again.skipped and again.computed == 0
    assert {p: p.stat().st_mtime_ns for p in first.folder.rglob("*") if p.is_file()} == before


def test_unreadable_frame_in_a_sequence(shared: Path, tmp_path: Path) -> None:
    """A truncated PNG in the middle of a followed sequence is that frame's `unreadable` row;
    the frames around it are followed (afresh after it) and ok; only that sequence is redone."""
    root = _copy(shared, tmp_path / "ck", ["S106/004", "S111/006"], link=False)
    first = run("ckplus", "align", tmp_path / "work", root=root, jobs=1, frames="all")
    assert first.record["params"]["follow"] is True  # the default
    assert first.counts == {"ok": 18}

    broken = root / "cohn-kanade-images/S106/004/S106_004_00000004.png"
    broken.write_bytes(broken.read_bytes()[:2000])
    again = run("ckplus", "align", tmp_path / "work", root=root, jobs=1, frames="all")
    assert again.computed == 8 and again.reused == 10  # S106_004 whole, S111_006 kept
    rows = again.manifest.set_index("sample_id")
    bad = rows.loc["S106_004_00000004"]
    assert bad["status"] == "unreadable" and str(broken) in bad["message"]
    others = rows.drop(index="S106_004_00000004")
    assert (others["status"] == "ok").all() and (others["detector"] == "mesh-tracking").all()
    assert all((again.folder / p).is_file() for p in others["face_path"])
    assert not (again.folder / "faces/S106/004/S106_004_00000004.png").exists()


def test_batches_never_split_a_group() -> None:
    rng = random.Random(0)
    for _ in range(200):
        items = [{"sample_id": f"s{g}_{i}", "sequence": f"s{g}"}
                 for g in range(rng.randint(1, 12)) for i in range(rng.randint(1, 40))]
        jobs, size = rng.randint(1, 4), rng.choice([None, 1, 5, 32])
        batches = _batches(items, jobs, size, "sequence")
        assert [i for b in batches for i in b] == items  # every item once, in order
        owner = {}
        for n, batch in enumerate(batches):
            for item in batch:
                assert owner.setdefault(item["sequence"], n) == n, "a sequence split"
        limit = size or max(1, min(32, math.ceil(len(items) / (4 * jobs))))
        assert all(len(b) <= limit or len({i["sequence"] for i in b}) == 1 for b in batches)


def test_batches_of_stills_are_as_without_groups() -> None:
    """Items whose group is their own id, None or NaN (stills) are cut exactly as before."""
    kinds = [None, float("nan"), "own", "own", None] * 20
    items = [{"sample_id": str(i), "sequence": str(i) if s == "own" else s}
             for i, s in enumerate(kinds)]
    for size in (None, 1, 7, 32):
        assert _batches(items, 2, size, "sequence") == _batches(items, 2, size)


def test_runs_cut_at_gaps_sequences_and_hints() -> None:
    def item(seq: str | None, frame: int | None, **more: object) -> dict[str, object]:
        return {"sample_id": f"{seq}_{frame}", "sequence": seq, "frame": frame, **more}

    items = [item("a", 3), item("b", 1), item("a", 1), item("a", 2), item("a", 5),
             item("b", 2), item("b", 3, given_box=[0, 0, 9, 9]), item("b", 4),
             item(None, 1), item("c", None)]
    runs = [[i["sample_id"] for i in run] for run in frame_runs(items, True)]
    assert sorted(runs) == sorted([["a_1", "a_2", "a_3"], ["a_5"], ["b_1", "b_2"], ["b_3"],
                                   ["b_4"], ["None_1"], ["c_None"]])
    assert frame_runs(items, False) == [[i] for i in items]


def test_stills_fingerprints_are_unchanged() -> None:
    """Only frames sharing a sequence take its fingerprint (stills keep their own)."""
    items = pd.DataFrame({"sample_id": ["x", "y", "a1", "a2", "b1"],
                          "sequence": ["x", None, "a", "a", "b"],
                          "status": ["ok", "ok", "ok", "ok", "unreadable"],
                          "fingerprint": ["fx", "fy", "f1", "f2", ""]})
    out = with_sequence_fingerprints(items)
    assert out["fingerprint"].tolist()[:2] == ["fx", "fy"] and out["fingerprint"].iloc[4] == ""
    assert out["fingerprint"].iloc[2] not in ("f1", out["fingerprint"].iloc[3])
    changed = with_sequence_fingerprints(items.assign(fingerprint=["fx", "fy", "f1", "F2", ""]))
    assert changed["fingerprint"].iloc[2] != out["fingerprint"].iloc[2]  # a sibling changed
