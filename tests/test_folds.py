"""The folds stage against the seeds' published splits in ../shared/reference, on real CK+ labels
and real CK+ faces: FMPN's and Emotion-FAN's folds reproduced exactly, subject-kfold's
guarantees, split files (shipped and the user's), bad input, and the cache."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fer_prep import splits
from fer_prep.cache import read_record
from fer_prep.cli import main
from fer_prep.datasets import Dataset, get_dataset
from fer_prep.datasets.afew import read_afew
from fer_prep.datasets.ckplus import read_ckplus, read_ckplus_labels
from fer_prep.errors import FoldError, InputError, OptionError, StageNotReady
from fer_prep.folds import SCHEMES, Options, assign, fold_count
from fer_prep.manifest import read_manifest
from fer_prep.runner import run
from fer_prep.sample import write_afew_sample
from fer_prep.stages.folds import COLUMNS, LIST_COLUMNS

K = 10
REPO = Path(__file__).resolve().parents[1]
CKPLUS = get_dataset("ckplus")


def _build_script():
    """manifests/build.py, a development script rather than a module."""
    spec = importlib.util.spec_from_file_location("build", REPO / "manifests/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SPLITS = _build_script().SPLITS


def folds(work: Path, **options):
    """The folds stage of CK+ under `work` (the runner, as `fer-prep folds` calls it)."""
    return run("ckplus", "folds", work, **options)


class MMI(Dataset):
    """MMI has no dataset reader yet: the facts a fold scheme asks of one."""

    name = "mmi"
    title = "MMI (for the fold rule only)"
    kind = "sequences"
    codes = {}


@pytest.fixture(scope="module")
def tree(shared: Path) -> Path:
    """The CK+ Emotion/ files of all 327 labelled sequences (no images)."""
    return shared / "reference/ckplus_emotion_tree"


@pytest.fixture(scope="module")
def ck_rows(tree: Path) -> pd.DataFrame:
    return pd.DataFrame(read_ckplus_labels(tree))


def _part(folder: Path, fold: int, part: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"fold_{fold}" / f"{part}.csv", dtype={"sample_id": str})


def _lines(path: Path) -> set[str]:
    return set(path.read_text().split())


def _emotion_fan_reference(shared: Path) -> dict[int, dict[str, str]]:
    """fold → {`S130/007`: `Angry`} as Emotion-FAN's CK+ list has it."""
    folds_: dict[int, dict[str, str]] = {}
    path = shared / "reference/emotion_fan/CK+_10-fold_sample_IDascendorder_step10.txt"
    for line in path.read_text().splitlines():
        first, *rest = line.split()
        if first.endswith("-fold"):
            fold = int(first.removesuffix("-fold")) - 1
            folds_[fold] = {}
        else:
            folds_[fold][first] = rest[0]
    return folds_


def test_label_tree_gives_the_rows_read_ckplus_gives(shared: Path, ck_rows) -> None:
    with_images = pd.DataFrame(read_ckplus(shared / "data/ckplus"))
    labels_only = pd.DataFrame(read_ckplus_labels(shared / "data/ckplus"))
    assert len(with_images) == 18 * 4  # the 18 shared sequences, first and last three frames
    same = [c for c in with_images.columns if c != "source_path"]
    pd.testing.assert_frame_equal(with_images[same], labels_only[same])
    assert (labels_only["source_path"] == "").all()
    assert ck_rows["sequence"].nunique() == 327 and len(ck_rows) == 327 * 4
    assert (ck_rows["status"] == "ok").all()


def test_fmpn_reproduces_the_published_ckplus_folds(tree: Path, shared: Path, tmp_path) -> None:
    result = folds(tmp_path, scheme="fmpn", root=tree)
    ref = shared / "reference/fmpn/CKPlus"
    assert result.record["n_folds"] == K
    for k in range(K):
        for part in ("train", "test"):
            names = set(_part(result.folder, k, part)["sample_id"] + ".png")
            assert names == _lines(ref / f"{part}_ids_{k}.csv"), (k, part)
    excluded = result.manifest[result.manifest["status"] == "excluded"]
    assert len(excluded) == 327 and (excluded["role"] == "neutral").all()
    assert excluded["message"].str.startswith("neutral frame: scheme fmpn").all()
    assert (excluded["fold"] == -1).all()


def test_emotion_fan_reproduces_the_published_ckplus_list(tree, shared: Path, tmp_path) -> None:
    result = folds(tmp_path, scheme="emotion-fan", root=tree)
    words = {"anger": "Angry", "contempt": "Contempt", "disgust": "Disgust", "fear": "Fear",
             "happiness": "Happy", "sadness": "Sad", "surprise": "Surprise"}
    for k, listed in _emotion_fan_reference(shared).items():
        test = _part(result.folder, k, "test")
        peaks = test[test["label"] != "neutral"]  # a sequence's first frame is labelled neutral
        ours = dict(zip(peaks["sequence"].str.replace("_", "/"), peaks["label"].map(words),
                        strict=True))
        assert ours == listed, k
        # every frame there is (the label tree gives the first and the last three): Emotion-FAN
        # trains on whole sequences
        assert (test.groupby("sequence").size() == 4).all()


def test_fmpn_rule_gives_the_published_mmi_folds(shared: Path) -> None:
    """No MMI reader yet: the rows are the frames FMPN lists, the folds are recomputed."""
    ref = shared / "reference/fmpn/MMI"
    published = {name.removesuffix(".png"): k for k in range(K)
                 for name in _lines(ref / f"test_ids_{k}.csv")}
    rows = pd.DataFrame({"sample_id": sorted(published)})
    rows = rows.assign(subject=rows["sample_id"].str[:4], sequence=rows["sample_id"].str[:8],
                       role="peak", label="some", status="ok", message="")
    placed = assign(rows, "fmpn", Options(MMI()))
    assert dict(zip(placed["sample_id"], placed["fold"], strict=True)) == published
    sizes = placed.groupby("fold")["subject"].nunique().tolist()
    assert sizes == [3, 3, 3, 3, 3, 4, 3, 3, 3, 3]  # why plain array_split cannot be the rule


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_shipped_splits_are_what_the_build_script_makes(name: str, shared: Path) -> None:
    made = SPLITS[name][0](shared / "reference")
    made = made.sort_values(made.columns[0]).reset_index(drop=True)
    pd.testing.assert_frame_equal(splits.load_split(name), made, check_dtype=False)


def test_shipped_splits_hold_the_published_items(shared: Path) -> None:
    ref = shared / "reference"
    ck = splits.load_split("ckplus-fmpn-10fold-v1")
    for k in range(K):
        names = set(ck.loc[ck["fold"] == k, "sample_id"] + ".png")
        assert names == _lines(ref / f"fmpn/CKPlus/test_ids_{k}.csv")
    mmi = splits.load_split("mmi-fmpn-10fold-v1")  # by session: FMPN's frames, their folds
    for k in range(K):
        sessions = {n.rsplit("_", 1)[0] for n in _lines(ref / f"fmpn/MMI/test_ids_{k}.csv")}
        assert set(mmi.loc[mmi["fold"] == k, "sequence"]) == sessions
    assert len(mmi) == 208 and set(mmi["label"]) == {"anger", "disgust", "fear", "happiness",
                                                     "sadness", "surprise"}
    ef = splits.load_split("ckplus-emotion-fan-10fold-v1")
    for k, listed in _emotion_fan_reference(shared).items():
        assert set(ef.loc[ef["fold"] == k, "sequence"].str.replace("_", "/")) == set(listed)
    afew = splits.load_split("afew-emotion-fan-v1")
    val = afew[afew["fold"] == 0]
    assert len(afew) == 771 + 381 and len(val) == 381
    assert val["sequence"].str.startswith("val_").all()
    assert "val_000633000" in set(val["sequence"])  # leading zeros kept: ids are text
    assert splits.list_splits() == sorted(SPLITS)


def test_subject_kfold_keeps_subjects_apart_and_classes_in_every_fold(ck_rows) -> None:
    placed = assign(ck_rows, "subject-kfold", Options(CKPLUS, k=K, seed=3))
    ok = placed[placed["status"] == "ok"]
    assert len(ok) == len(ck_rows)  # every labelled row is used
    assert ok.groupby("subject")["fold"].nunique().max() == 1
    assert ok.groupby("sequence")["fold"].nunique().max() == 1
    subjects = ok.groupby("label")["subject"].nunique()
    for label in subjects[subjects >= K].index:  # contempt (18 subjects) included
        folds_with = set(ok.loc[ok["label"] == label, "fold"])
        assert folds_with == set(range(K)), label
    per_fold = ok.groupby("fold")["sequence"].nunique()
    assert per_fold.max() - per_fold.min() <= 3  # 327 sequences: 32–33 a fold


def test_subject_kfold_is_seeded_and_deterministic(ck_rows) -> None:
    def by_subject(rows: pd.DataFrame, seed: int) -> dict[str, int]:
        placed = assign(rows, "subject-kfold", Options(CKPLUS, seed=seed))
        return dict(zip(placed["subject"], placed["fold"], strict=True))

    first = by_subject(ck_rows, 0)
    assert by_subject(ck_rows, 0) == first
    assert by_subject(ck_rows.sample(frac=1, random_state=1), 0) == first  # row order is moot
    assert by_subject(ck_rows, 1) != first


@pytest.mark.parametrize("name", SCHEMES.names())
def test_every_scheme_keeps_the_contract(name: str, ck_rows) -> None:
    opts = Options(CKPLUS, split=splits.load_split("ckplus-fmpn-10fold-v1"),
                   split_name="ckplus-fmpn-10fold-v1")
    if name == "image-kfold":  # for datasets without subject ids
        with pytest.raises(FoldError, match="without subject ids"):
            assign(ck_rows, name, opts)
        return
    if name == "official":
        with pytest.raises(FoldError, match="ckplus has no official split"):
            assign(ck_rows, name, opts)
        return
    placed = assign(ck_rows, name, opts)
    assert len(placed) == len(ck_rows) and list(placed["sample_id"]) == list(ck_rows["sample_id"])
    ok = placed["status"] == "ok"
    assert placed.loc[ok, "fold"].between(0, fold_count(name, placed, opts) - 1).all()
    assert (placed.loc[~ok, "fold"] == -1).all() and (placed.loc[~ok, "message"] != "").all()
    assert (placed.loc[ok, "message"] == "").all()
    spread = placed[ok].groupby("subject")["fold"].nunique().max()
    assert spread > 1 if SCHEMES.get(name).mixes_subjects else spread == 1  # mafer: by image


def test_a_subject_in_train_and_test_is_an_error(ck_rows, tree, tmp_path: Path) -> None:
    sequences = ck_rows.groupby("subject")["sequence"].unique().map(sorted)
    subject, (first, second, *_) = next((s, q) for s, q in sequences.items() if len(q) >= 2)
    split = tmp_path / "leaky.csv"
    split.write_text(f"sequence,fold\n{first},0\n{second},1\n")
    with pytest.raises(FoldError, match=f"subject {subject} has rows in folds \\[0, 1\\]"):
        folds(tmp_path, scheme="file", split=str(split), root=tree)
    stage = tmp_path / "ckplus/folds"  # refused before any result is written
    assert not (stage / "manifest.parquet").exists() and not list(stage.glob("fold_*"))
    assert not (read_record(stage) or {}).get("complete")  # nothing downstream can read it


def test_file_scheme_with_a_shipped_split(tree: Path, tmp_path: Path) -> None:
    result = folds(tmp_path, scheme="file", split="ckplus-emotion-fan-10fold-v1", root=tree)
    split = splits.load_split("ckplus-emotion-fan-10fold-v1")
    fold_of = dict(zip(split["sequence"], split["fold"], strict=True))
    table = result.manifest
    assert (table["status"] == "ok").all()  # sequence keys: neutral frames come along
    assert (table["fold"] == table["sequence"].map(fold_of)).all()
    assert result.record["n_folds"] == K
    assert result.record["params"]["split"] == "ckplus-emotion-fan-10fold-v1"
    assert read_manifest(tmp_path / "ckplus/folds")["fold"].tolist() == table["fold"].tolist()


def test_file_scheme_with_a_users_split(tree: Path, tmp_path: Path) -> None:
    split = tmp_path / "mine.csv"
    split.write_text("# two subjects tested, one always trained on\n"
                     "sequence,fold,label\nS005_001,0,disgust\nS010_001,1,\nS010_002,1,\n"
                     "S011_001,-1,\n")
    result = folds(tmp_path / "work", split=str(split), scheme="file", root=tree)
    table = result.manifest.set_index("sample_id")
    assert table.loc["S005_001_00000009", "fold"] == 0
    assert table.loc["S011_001_00000001", "fold"] == -1
    assert table.loc["S011_001_00000001", "status"] == "ok"
    other = table.loc["S014_001_00000001"]
    assert other["status"] == "excluded"
    assert other["message"] == f"not in the split {split.resolve()}"
    train1 = _part(result.folder, 1, "train")
    assert set(train1["sequence"]) == {"S005_001", "S011_001"}  # −1 rows train in every fold
    assert list(train1.columns) == list(LIST_COLUMNS)
    assert list(train1["sample_id"]) == sorted(train1["sample_id"])

    split.write_text("sequence,fold,label\nS005_001,0,happiness\n")
    with pytest.raises(FoldError, match="S005_001 is happiness there but disgust"):
        folds(tmp_path / "work", split=str(split), scheme="file", root=tree)


def test_a_split_file_with_fewer_folds_leaves_no_old_fold(tree: Path, tmp_path: Path) -> None:
    split = tmp_path / "mine.csv"
    split.write_text("sequence,fold\nS005_001,0\nS010_002,1\nS011_001,2\n")
    first = folds(tmp_path / "work", split=str(split), root=tree)
    assert sorted(p.name for p in first.folder.glob("fold_*")) == ["fold_0", "fold_1", "fold_2"]
    split.write_text("sequence,fold\nS005_001,0\nS010_002,1\n")  # same path, new content
    again = folds(tmp_path / "work", split=str(split), root=tree)
    assert not again.skipped and again.record["n_folds"] == 2
    assert sorted(p.name for p in again.folder.glob("fold_*")) == ["fold_0", "fold_1"]
    test1 = _part(again.folder, 1, "test")
    assert set(test1["sequence"]) == {"S010_002"}


@pytest.mark.parametrize(("text", "problem"), [
    ("name,fold\nS005_001,0\n", "expected a header with one of sample_id or sequence"),
    ("sequence,fold\nS005_001,first\n", "row 2 .*whole-number fold"),
    ("sequence,fold\nS005_001,0\nS005_001,1\n", "'S005_001' is listed more than once"),
    ("sequence,fold\nS005_001,0\nS010_001,2\n", r"no test items in fold\(s\) \[1\]"),
    ("", "not a readable split CSV"),
])
def test_a_malformed_split_file_is_named(text: str, problem: str, tree, tmp_path) -> None:
    split = tmp_path / "bad.csv"
    split.write_text(text)
    with pytest.raises(splits.SplitFileError, match=problem) as info:
        folds(tmp_path, split=str(split), scheme="file", root=tree)
    assert isinstance(info.value, InputError) and str(split) in str(info.value)
    out = CliRunner().invoke(main, ["folds", "--dataset", "ckplus", "--root", str(tree),
                                    "--work", str(tmp_path), "--split", str(split)])
    assert out.exit_code == 1 and str(split) in out.output and "Traceback" not in out.output


def test_bad_names_and_missing_input_are_clear_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="subject-kfold"):
        folds(tmp_path, scheme="no-such-scheme", root=tree)
    with pytest.raises(InputError, match=r"no-such-split.*ckplus-fmpn-10fold-v1"):
        folds(tmp_path, scheme="file", split="no-such-split", root=tree)
    with pytest.raises(InputError, match="a split file goes with scheme 'file'"):
        folds(tmp_path, scheme="file", root=tree)
    with pytest.raises(StageNotReady, match=r"ckplus/align: the align stage has not completed; "
                       r"run `fer-prep ckplus align` first"):
        folds(tmp_path)
    with pytest.raises(FoldError, match="118 subjects cannot fill 200 folds"):
        folds(tmp_path, scheme="emotion-fan", k=200, root=tree)
    with pytest.raises(FoldError, match="can use none of the 1308 ckplus rows"):
        folds(tmp_path, split="afew-emotion-fan-v1", scheme="file", root=tree)
    out = CliRunner().invoke(main, ["folds", "--dataset", "afew", "--work", str(tmp_path)])
    assert out.exit_code == 1 and "afew/align" in out.output
    assert "`fer-prep afew align`" in out.output and "Traceback" not in out.output


def _error_lines(out) -> list[str]:
    return [line for line in out.output.splitlines() if line.strip()]


@pytest.mark.parametrize(("args", "problem"), [
    (["--split", "no-such-split"], "no-such-split: neither a split file nor a shipped split"),
    (["--scheme", "file"], "a split file goes with scheme 'file', and only with it"),
])
def test_the_folds_command_says_one_error_line(args: list[str], problem: str, tree: Path,
                                               tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["folds", "--dataset", "ckplus", "--root", str(tree),
                                    "--work", str(tmp_path), *args])
    assert out.exit_code == 1, out.output
    (line,) = _error_lines(out)  # one line, no traceback
    assert line.startswith(f"Error: {problem}"), line
    if "--split" in args:  # it names the splits there are
        assert all(name in line for name in splits.list_splits())
    assert not (tmp_path / "ckplus/folds/manifest.parquet").exists()


def test_afew_official_split_and_no_subjects(tmp_path: Path) -> None:
    rows = pd.DataFrame(read_afew(write_afew_sample(tmp_path)))  # Train_AFEW and Val_AFEW
    placed = assign(rows, "official", Options(get_dataset("afew")))
    assert (placed["status"] == "ok").all()
    assert (placed["fold"] == placed["split"].map({"train": -1, "val": 0})).all()
    with pytest.raises(FoldError, match="no subject id"):
        assign(rows, "subject-kfold", Options(get_dataset("afew")))


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerun_writes_nothing_and_a_change_redoes(tree: Path, tmp_path: Path) -> None:
    first = folds(tmp_path, root=tree, seed=1)
    stage = first.folder
    before = _snapshot(stage)
    assert len([name for name in before if name.endswith(".csv")]) == 2 * K + 1
    again = folds(tmp_path, root=tree, seed=1)
    assert again.skipped and again.computed == 0 and _snapshot(stage) == before
    pd.testing.assert_frame_equal(again.manifest, first.manifest)

    downstream = tmp_path / "ckplus/export"  # a later stage that read this one
    downstream.mkdir()
    (downstream / "stage.json").write_text('{"inputs": ["folds"], "complete": true}')
    changed = folds(tmp_path, root=tree, seed=2)
    assert not changed.skipped and changed.manifest["fold"].tolist() != first.manifest[
        "fold"].tolist()
    record = json.loads((stage / "stage.json").read_text())
    assert record["params"] == {"scheme": "subject-kfold", "k": K, "seed": 2, "split": None}
    assert record["n_folds"] == K and record["complete"]
    assert json.loads((downstream / "stage.json").read_text())["stale"]

    fewer = folds(tmp_path, root=tree, scheme="emotion-fan", k=5)
    assert sorted(p.name for p in stage.glob("fold_*")) == [f"fold_{k}" for k in range(5)]
    after = _snapshot(stage)  # the seed cannot change emotion-fan: not a reason to redo
    assert folds(tmp_path, root=tree, scheme="emotion-fan", k=5, seed=9).skipped
    assert _snapshot(stage) == after and fewer.record["n_folds"] == 5
    assert not folds(tmp_path, root=tree, scheme="emotion-fan", k=5, force=True).skipped


@pytest.fixture(scope="module")
def aligned_work(shared: Path, tmp_path_factory) -> Path:
    """Real CK+ faces (default backend) of the shared sequences, one peak frame made unreadable."""
    root = tmp_path_factory.mktemp("ck")
    for part in ("cohn-kanade-images", "Emotion"):
        shutil.copytree(shared / "data/ckplus" / part, root / part)
    broken = sorted((root / "cohn-kanade-images/S052/001").glob("*.png"))[-1]
    broken.write_bytes(broken.read_bytes()[:3000])
    work = tmp_path_factory.mktemp("work")
    run("ckplus", "align", work, root=root, jobs=2)
    return work


def test_end_to_end_ckplus_faces_to_folds(aligned_work: Path) -> None:
    out = CliRunner().invoke(main, ["folds", "--dataset", "ckplus", "--work", str(aligned_work),
                                    "--k", "5"])
    assert out.exit_code == 0, out.output
    table = read_manifest(aligned_work / "ckplus/folds")
    assert list(table.columns) == list(COLUMNS) and len(table) == 18 * 4
    broken = table[table["status"] == "excluded"]
    assert len(broken) == 1 and broken["message"].iloc[0].startswith("unreadable: ")
    ok = table[table["status"] == "ok"]
    assert sorted(ok.groupby("fold")["subject"].unique().map(len)) == [1] * 5  # 5 subjects
    align_dir = aligned_work / "ckplus/align"
    assert all((align_dir / p).is_file() for p in ok["face_path"])

    result = folds(aligned_work, scheme="file", split="ckplus-fmpn-10fold-v1")
    split = splits.load_split("ckplus-fmpn-10fold-v1").set_index("sample_id")["fold"]
    table = result.manifest
    ok = table[table["status"] == "ok"]
    assert len(ok) == 18 * 3 - 1  # peaks as published, minus the unreadable one
    assert (ok["fold"] == ok["sample_id"].map(split)).all()
    neutral = table[table["role"] == "neutral"]
    assert (neutral["message"] == "not in the split ckplus-fmpn-10fold-v1").all()
    test = pd.concat(_part(result.folder, k, "test") for k in range(K))
    assert sorted(test["sample_id"]) == sorted(ok["sample_id"])
