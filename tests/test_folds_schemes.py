"""The `loso` and `image-kfold` fold schemes on real data: leave-one-subject-out on CK+'s 327
labelled sequences (../shared/reference/ckplus_emotion_tree: 118 subjects, 118 folds) and on
the JAFFE fixture of tests/test_jaffe.py; the stratified, seeded image k-fold on FER2013's rows
(../shared/data/fer2013), recorded as not subject-independent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold
from test_jaffe import PEOPLE, write_jaffe_fixture

from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import read_ckplus_labels
from fer_prep.errors import FoldError
from fer_prep.folds import SCHEMES, Options, assign, fold_count
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

K = 5


def _test_parts(folder: Path, n_folds: int) -> list[pd.DataFrame]:
    return [pd.read_csv(folder / f"fold_{k}/test.csv", dtype=str) for k in range(n_folds)]


def test_the_schemes_are_registered_with_their_traits() -> None:
    loso, images = SCHEMES.get("loso"), SCHEMES.get("image-kfold")
    assert loso.by_subject and not loso.k_folds and not loso.seeded
    assert images.k_folds and images.seeded and not images.by_subject
    assert "NOT subject-independent" in images.doc


def test_loso_on_ckplus_is_one_fold_per_subject(shared: Path, tmp_path: Path) -> None:
    tree = shared / "reference/ckplus_emotion_tree"
    subjects = sorted({i["subject"] for i in read_ckplus_labels(tree)})
    assert len(subjects) == 118
    result = run("ckplus", "folds", tmp_path, root=tree, scheme="loso", k=3)  # k: not used
    assert result.record["n_folds"] == 118 and result.record["params"]["k"] is None
    assert result.record["subject_independent"] is True
    folds = read_manifest(result.folder)
    assert (folds["status"] == "ok").all() and len(folds) == 327 * 4
    for k, test in enumerate(_test_parts(result.folder, 118)):
        assert set(test["subject"]) == {subjects[k]}  # the i-th subject, alone
        train = pd.read_csv(result.folder / f"fold_{k}/train.csv", dtype=str)
        assert subjects[k] not in set(train["subject"])
        assert len(train) + len(test) == len(folds)
    assert result.record["test_rows"] == [int((folds["subject"] == s).sum()) for s in subjects]
    assert "118 fold(s)" in result.summary()


def test_loso_on_jaffe_from_the_names_alone(shared: Path, tmp_path: Path) -> None:
    root = tmp_path / "jaffe"
    facts = write_jaffe_fixture(shared, root)
    result = run("jaffe", "folds", tmp_path / "work", root=root)  # loso: JAFFE's default
    assert result.record["params"]["scheme"] == "loso" and result.record["n_folds"] == 5
    tests = _test_parts(result.folder, 5)
    assert [set(t["subject"]) for t in tests] == [{s} for s in sorted(PEOPLE.values())]
    assert sorted(pd.concat(tests)["sample_id"]) == sorted(facts)
    folds = read_manifest(result.folder)
    assert set(folds.loc[folds["status"] == "excluded", "message"]) == {
        f"stray: {root / 'jaffedbase' / name}: not a JAFFE image (a stray file): skipped"
        for name in ("README", ".DS_Store", "Thumbs.db")}


def test_loso_needs_two_subjects_and_subject_ids(shared: Path) -> None:
    rows = pd.DataFrame(read_ckplus_labels(shared / "data/ckplus"))
    ckplus = get_dataset("ckplus")
    one = rows[rows["subject"] == "S052"]
    with pytest.raises(FoldError, match=r"1 subjects cannot fill 2 folds for scheme loso$"):
        assign(one, "loso", Options(ckplus))
    placed = assign(rows, "loso", Options(ckplus, k=10))  # 5 subjects, whatever k says
    assert fold_count("loso", placed, Options(ckplus, k=10)) == 5
    fer = pd.DataFrame(get_dataset("fer2013").read(shared / "data/fer2013", None))
    with pytest.raises(FoldError, match="no subject id; use --scheme image-kfold"):
        assign(fer, "loso", Options(get_dataset("fer2013")))


@pytest.fixture(scope="module")
def fer_work(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fer")
    run("fer2013", "align", work, root=shared / "data/fer2013", jobs=2)
    return work


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_image_kfold_on_fer2013_is_stratified_and_says_it_is_not_subject_independent(
        fer_work: Path) -> None:
    result = run("fer2013", "folds", fer_work, scheme="image-kfold", k=K)
    assert result.record["params"] == {"scheme": "image-kfold", "k": K, "seed": 0, "split": None}
    assert result.record["n_folds"] == K and result.record["subject_independent"] is False
    assert "not subject-independent" in result.summary()
    folds = read_manifest(result.folder)
    assert len(folds) == 400 and (folds["status"] == "ok").all()
    total = folds["label"].value_counts()
    for k, test in enumerate(_test_parts(result.folder, K)):
        counts = test["label"].value_counts().reindex(total.index, fill_value=0)
        assert ((counts - total / K).abs() < 1).all(), (k, counts.to_dict())
    # scikit-learn's StratifiedKFold over the rows sorted by id, shuffled by the seed
    rows = folds.sort_values("sample_id")
    splitter = StratifiedKFold(n_splits=K, shuffle=True, random_state=0)
    for k, (_, test) in enumerate(splitter.split(rows, rows["label"])):
        assert set(rows["sample_id"].iloc[test]) == set(folds.loc[folds["fold"] == k,
                                                                  "sample_id"])


def test_image_kfold_is_seeded_and_deterministic(fer_work: Path, tmp_path: Path) -> None:
    rows = read_manifest(fer_work / "fer2013/align")
    fer = get_dataset("fer2013")
    first = assign(rows, "image-kfold", Options(fer, k=K, seed=7)).set_index("sample_id")["fold"]
    shuffled = rows.sample(frac=1, random_state=3)
    again = assign(shuffled, "image-kfold", Options(fer, k=K, seed=7)).set_index("sample_id")
    assert again["fold"].sort_index().equals(first.sort_index())  # row order does not matter
    other = assign(rows, "image-kfold", Options(fer, k=K, seed=8)).set_index("sample_id")
    assert not other["fold"].equals(first)
    a = run("fer2013", "folds", fer_work, scheme="image-kfold", k=K, seed=7)
    b = run("fer2013", "folds", fer_work, scheme="image-kfold", k=K, seed=7, force=True)
    assert (a.folder / "manifest.csv").read_bytes() == (b.folder / "manifest.csv").read_bytes()
    assert read_manifest(b.folder).set_index("sample_id")["fold"].sort_index().equals(
        first.sort_index())


def test_image_kfold_keeps_a_sequence_together_and_refuses_subjects(fer_work: Path,
                                                                    shared: Path) -> None:
    rows = read_manifest(fer_work / "fer2013/align")
    rows["sequence"] = rows["sample_id"].str[:-1]  # clips of ten rows, as a video's frames
    placed = assign(rows, "image-kfold", Options(get_dataset("fer2013"), k=K))
    assert (placed.groupby("sequence")["fold"].nunique() == 1).all()
    ck = pd.DataFrame(read_ckplus_labels(shared / "reference/ckplus_emotion_tree"))
    with pytest.raises(FoldError, match=r"image-kfold is for datasets without subject ids.*"
                                        r"use --scheme subject-kfold or loso"):
        assign(ck, "image-kfold", Options(get_dataset("ckplus")))
    few = read_manifest(fer_work / "fer2013/align").head(4)
    with pytest.raises(FoldError, match="4 sequences cannot fill 5 folds"):
        assign(few, "image-kfold", Options(get_dataset("fer2013"), k=K))


def test_mafer_folds_are_its_kfold_over_its_sorted_database(shared: Path, tmp_path: Path) -> None:
    """MAFER's main_oulu.py: KFold(10, shuffle=True, random_state=17) over the images of
    `<Expression>/<image>` listed in order; on CK+'s peak frames of its six classes."""
    from sklearn.model_selection import KFold

    tree = shared / "reference/ckplus_emotion_tree"
    result = run("ckplus", "folds", tmp_path, root=tree, scheme="mafer")
    assert result.record["params"]["seed"] == 17 and result.record["n_folds"] == 10
    assert result.record["subject_independent"] is False
    assert "not subject-independent" in result.summary()
    placed = read_manifest(result.folder)
    used = placed[placed["status"] == "ok"]
    folders = {"surprise": "Surprise", "happiness": "Happiness", "sadness": "Sadness",
               "anger": "Anger", "fear": "Fear", "disgust": "Disgust"}
    database = sorted(f"{folders[r.label]}/{r.sample_id}.png" for r in used.itertuples())
    assert set(placed.loc[placed["status"] != "ok", "label"]) <= {"neutral", "contempt"}
    expected = {}
    for k, (_, test) in enumerate(KFold(10, shuffle=True, random_state=17).split(database)):
        expected.update({database[i].split("/")[1][:-4]: k for i in test})
    assert dict(zip(used["sample_id"], used["fold"].astype(int), strict=True)) == expected
    again = run("ckplus", "folds", tmp_path / "again", root=tree, scheme="mafer", seed=3)
    assert again.record["params"]["seed"] == 3
