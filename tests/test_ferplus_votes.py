"""FER+ label modes against microsoft/FERPlus `src/ferplus.py`.

The counts asserted on the real fer2013new.csv are what FERPlus's own `FERPlusReader.load_folders`
gave when run by hand on that CSV (all 35,887 rows, label.csv rows written in FERPlus's format,
`Image.open` stubbed): kept per folder and `per_emotion_count`. The per-row check compares with
`_reference`, a separate plain re-implementation written from FERPlus's source lines.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fer_prep import ferplus_votes as fv
from fer_prep.errors import InputError

USAGES = ("Training", "PublicTest", "PrivateTest")
Z = [0] * 10


def votes(**counts: int) -> list[int]:
    """A vote vector from column names (NF as nf)."""
    out = list(Z)
    for name, count in counts.items():
        out[fv.VOTE_COLUMNS.index("NF" if name == "nf" else name)] = count
    return out


def _reference(raw: list[int], mode: str) -> list[float] | None:
    """FERPlus's rules, re-written plainly: None where load_folders drops the sample."""
    v = [float(x) if x > 1 else 0.0 for x in raw]  # "remove emotions with a single vote"
    total = sum(v)
    if mode == "majority":
        top = max(v)
        if not top > total / 2:
            return None
        kept = [top if i == v.index(top) else 0.0 for i in range(10)]
    elif mode == "multi_target":
        kept = [x if x >= 0.3 * total else 0.0 for x in v]
        if not sum(kept) > total / 2:
            return None
    else:  # probability / crossentropy: take classes by vote, all ties of a pass at once
        kept, left, part, count, stop = [0.0] * 10, list(v), 0.0, 0, False
        while part < 0.75 * total and count < 3 and not stop:
            m = max(left)
            for i in [i for i in range(10) if left[i] == m]:
                left[i] = 0.0
                if i >= 8:  # unknown / NF: stop; keep it only if nothing was taken before
                    stop = True
                    if sum(kept) == 0:
                        kept[i], count = m, count + 1
                    break
                kept[i], part, count = m, part + m, count + 1
        if not sum(kept) > total / 2 or count > 3:
            return None
    if kept.index(max(kept)) >= 8:  # top is unknown or NF
        return None
    return [x / sum(kept[:8]) for x in kept[:8]]


@pytest.fixture(scope="module")
def rows(shared: Path) -> list[tuple[str, str, list[int]]]:
    path = shared / "data" / "fer2013" / "fer2013new.csv"
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["Usage", "Image name", *fv.VOTE_COLUMNS]
        return [(r[0], r[1].strip(), [int(x) for x in r[2:]]) for r in reader]


# FERPlus's own load_folders on fer2013new.csv, every mode on every folder:
# (kept, per_emotion_count) per Usage.
FERPLUS_RUN = {
    "majority": {
        "Training": (25060, [8740, 7287, 3149, 3014, 2100, 119, 532, 119]),
        "PublicTest": (3199, [1182, 865, 415, 351, 287, 24, 62, 13]),
        "PrivateTest": (3153, [1090, 893, 396, 384, 273, 18, 83, 16]),
    },
    "probability": {
        "Training": (27956, [10122, 7503, 3524, 3430, 2407, 169, 641, 160]),
        "PublicTest": (3505, [1317, 897, 450, 401, 314, 31, 72, 23]),
        "PrivateTest": (3505, [1251, 925, 435, 435, 320, 22, 92, 25]),
    },
    "multi_target": {
        "Training": (27671, [10071, 7492, 3486, 3399, 2327, 153, 598, 145]),
        "PublicTest": (3472, [1307, 893, 446, 400, 307, 30, 71, 18]),
        "PrivateTest": (3472, [1243, 921, 438, 434, 302, 21, 90, 23]),
    },
}
FERPLUS_RUN["crossentropy"] = FERPLUS_RUN["probability"]

# Our reasons for the dropped rows (FERPlus only drops; the split by reason is ours).
M, P, X = fv.TOP_UNKNOWN, fv.TOP_NF, fv.TOO_FEW
DROPPED = {
    "majority": {
        "Training": {fv.NO_MAJORITY: 3423, P: 150, M: 76},
        "PublicTest": {fv.NO_MAJORITY: 367, P: 10, M: 13},
        "PrivateTest": {fv.NO_MAJORITY: 410, P: 16, M: 10},
    },
    "probability": {
        "Training": {X: 172, fv.TOO_MANY: 101, P: 150, M: 170, fv.TIED_NF: 1,
                     fv.TIED_UNKNOWN: 159},
        "PublicTest": {X: 13, fv.TOO_MANY: 15, P: 11, M: 25, fv.TIED_UNKNOWN: 20},
        "PrivateTest": {X: 14, fv.TOO_MANY: 7, P: 16, M: 27, fv.TIED_UNKNOWN: 20},
    },
    "multi_target": {
        "Training": {X: 768, P: 150, M: 120},
        "PublicTest": {X: 84, P: 11, M: 22},
        "PrivateTest": {X: 79, P: 16, M: 22},
    },
}
DROPPED["crossentropy"] = DROPPED["probability"]


def test_csv_shape(rows: list[tuple[str, str, list[int]]]) -> None:
    assert len(rows) == 35887
    assert Counter(u for u, _, _ in rows) == {"Training": 28709, "PublicTest": 3589,
                                             "PrivateTest": 3589}
    nameless = [v for _, name, v in rows if not name]
    # generate_training_data.py writes no image for these; all are NF = 10, dropped anyway
    assert len(nameless) == 173
    assert all(fv.target(v, m, True) == (None, fv.TOP_NF) for v in nameless for m in fv.MODES)


@pytest.mark.parametrize("mode", fv.MODES)
def test_counts_match_ferplus_run(rows: list[tuple[str, str, list[int]]], mode: str) -> None:
    """Every mode applied to every folder (training=True), as FERPlus's reader does when given
    that mode: kept, per-emotion and dropped-by-reason counts, and each row against _reference."""
    kept: Counter[str] = Counter()
    per_emotion = {u: Counter() for u in USAGES}
    dropped = {u: Counter() for u in USAGES}
    for usage, _, raw in rows:
        dist, why = fv.target(raw, mode, True)
        ref = _reference(raw, mode)
        if ref is None:
            assert dist is None and why in fv.REASONS, (raw, mode, why)
            dropped[usage][why] += 1
        else:
            assert dist == pytest.approx(ref, abs=1e-12) and why == "", (raw, mode)
            kept[usage] += 1
            per_emotion[usage][fv.label(dist)] += 1
    for usage in USAGES:
        n, counts = FERPLUS_RUN[mode][usage]
        assert kept[usage] == n
        assert [per_emotion[usage][e] for e in fv.EMOTIONS] == counts
        assert dict(dropped[usage]) == DROPPED[mode][usage]


@pytest.mark.parametrize("mode", fv.MODES)
def test_validation_and_test_use_majority(rows: list[tuple[str, str, list[int]]],
                                          mode: str) -> None:
    """train.py: FERPlusParameters(..., "majority", True) for the valid and test readers."""
    kept = Counter(u for u, _, raw in rows if fv.target(raw, mode, u == "Training")[0] is not None)
    assert kept == {"Training": FERPLUS_RUN[mode]["Training"][0],
                    "PublicTest": 3199, "PrivateTest": 3153}


def test_single_votes_zeroed() -> None:
    # 5 of 10 is no majority, but the five single votes go first: 5 of 5
    assert fv.target(votes(neutral=5, happiness=1, surprise=1, sadness=1, anger=1, fear=1),
                     "majority", True) == ([1.0] + [0.0] * 7, "")
    dist, _ = fv.target(votes(neutral=4, happiness=3, surprise=1, sadness=1, anger=1),
                        "crossentropy", True)
    assert dist == pytest.approx([4 / 7, 3 / 7, 0, 0, 0, 0, 0, 0])
    # two votes survive: 5 < 0.75 * 7, so happiness's 2 are taken
    dist, _ = fv.target(votes(neutral=5, happiness=2, surprise=1, sadness=1, anger=1),
                        "crossentropy", True)
    assert dist == pytest.approx([5 / 7, 2 / 7, 0, 0, 0, 0, 0, 0])
    # ... but 6 of 8 is already 75 %: the loop stops before them
    assert fv.target(votes(neutral=6, happiness=2, surprise=1, sadness=1), "crossentropy",
                     True) == ([1.0] + [0.0] * 7, "")
    for mode in fv.MODES:
        assert fv.target([1] * 10, mode, True) == (None, fv.NO_VOTES)


def test_ties() -> None:
    tie = votes(neutral=4, happiness=4, surprise=2)
    assert fv.target(tie, "majority", True) == (None, fv.NO_MAJORITY)
    dist, why = fv.target(tie, "crossentropy", True)
    assert why == "" and dist == pytest.approx([0.5, 0.5, 0, 0, 0, 0, 0, 0])
    assert fv.label(dist) == "neutral"  # np.argmax: the first maximum
    # a pass takes every tied class, so the count can pass 3 in one pass
    assert fv.target(votes(neutral=2, happiness=2, surprise=2, sadness=2, anger=2),
                     "probability", True) == (None, fv.TOO_MANY)
    assert fv.target(votes(neutral=3, happiness=3, surprise=2, sadness=2),
                     "probability", True) == (None, fv.TOO_MANY)
    dist, _ = fv.target(votes(neutral=4, happiness=3, surprise=3), "probability", True)
    assert dist == pytest.approx([0.4, 0.3, 0.3, 0, 0, 0, 0, 0])


def test_probability_75_percent_and_3_classes() -> None:
    # 5 < 7.5, 5+3 >= 7.5: stop; surprise's 2 votes are left out
    dist, _ = fv.target(votes(neutral=5, happiness=3, surprise=2), "probability", True)
    assert dist == pytest.approx([5 / 8, 3 / 8, 0, 0, 0, 0, 0, 0])
    # 6+5+4 = 15 < 0.75 * 21, but 3 classes taken: stop
    dist, _ = fv.target(votes(neutral=6, happiness=5, surprise=4, sadness=3, anger=3),
                        "probability", True)
    assert dist == pytest.approx([6 / 15, 5 / 15, 4 / 15, 0, 0, 0, 0, 0])
    # the taken classes must hold more than half: 5+5+5 (3 classes) of 31 is not
    assert fv.target([5, 5, 5, 4, 4, 4, 4, 0, 0, 0], "probability", True) == (None, fv.TOO_FEW)
    spread = [3, 3, 2, 2, 2, 2, 0, 0, 0, 0]  # 3,3 then four 2s: 6 tied classes
    assert fv.target(spread, "probability", True) == (None, fv.TOO_MANY)
    low = [4, 0, 0, 0, 0, 0, 0, 0, 2, 3]  # 4 (< 6.75), then NF 3 stops it: 4 of 9 <= 50 %
    assert fv.target(low, "probability", True) == (None, fv.TOO_FEW)


def test_unknown_and_nf_top() -> None:
    top_unknown = votes(happiness=3, unknown=4, nf=3)
    assert fv.target(top_unknown, "majority", True) == (None, fv.NO_MAJORITY)
    assert fv.target(top_unknown, "probability", True) == (None, fv.TOP_UNKNOWN)
    assert fv.target(top_unknown, "multi_target", True) == (None, fv.TOP_UNKNOWN)
    assert fv.target(votes(neutral=2, unknown=8), "majority", True) == (None, fv.TOP_UNKNOWN)
    for mode in fv.MODES:
        assert fv.target(votes(happiness=3, nf=7), mode, True) == (None, fv.TOP_NF)
    # unknown tied with the top class: dropped in probability (4 of 10 <= 50 %)
    assert fv.target(votes(happiness=4, surprise=2, unknown=4), "probability", True) == (
        None, fv.TIED_UNKNOWN)
    assert fv.target(votes(happiness=5, nf=5), "crossentropy", True) == (None, fv.TIED_NF)
    # ... but multi_target keeps it: both >= 30 %, argmax finds happiness first
    assert fv.target(votes(happiness=5, nf=5), "multi_target", True) == (
        [0.0, 1.0] + [0.0] * 6, "")
    # unknown met in a later pass is removed, the sample kept
    dist, _ = fv.target(votes(happiness=4, surprise=3, unknown=3), "probability", True)
    assert dist == pytest.approx([0, 4 / 7, 3 / 7, 0, 0, 0, 0, 0])


def test_multi_target_threshold() -> None:
    dist, _ = fv.target(votes(happiness=5, surprise=3, sadness=2), "multi_target", True)
    assert dist == pytest.approx([0, 5 / 8, 3 / 8, 0, 0, 0, 0, 0])  # 3 >= 30 %, 2 not
    dist, _ = fv.target(votes(neutral=4, happiness=3, surprise=3), "multi_target", True)
    assert dist == pytest.approx([0.4, 0.3, 0.3, 0, 0, 0, 0, 0])
    # only 3 of 9 reach 2.7: 3 <= 4.5, dropped
    assert fv.target([3, 2, 2, 2, 0, 0, 0, 0, 0, 1], "multi_target", True) == (None, fv.TOO_FEW)
    # unknown >= 30 % but not the top: kept, then dropped with NF by emotion[:-2]
    assert fv.target(votes(neutral=5, unknown=3, nf=2), "multi_target", True) == (
        [1.0] + [0.0] * 7, "")


def test_training_false_means_majority() -> None:
    tie = votes(neutral=4, happiness=4, surprise=2)
    for mode in ("probability", "crossentropy", "multi_target"):
        assert fv.target(tie, mode, True)[0] is not None
        assert fv.target(tie, mode, False) == (None, fv.NO_MAJORITY)
    dist, _ = fv.target(votes(neutral=6, happiness=4), "multi_target", False)
    assert dist == [1.0] + [0.0] * 7


def test_minibatch_target() -> None:
    np = pytest.importorskip("numpy")
    dist = [0.5, 0.5, 0, 0, 0, 0, 0, 0]
    assert fv.minibatch_target(dist, "crossentropy") == dist
    assert fv.minibatch_target(dist, "multi_target") == pytest.approx([1, 1] + [0.001] * 6)
    rng = np.random.default_rng(0)
    draws = [fv.minibatch_target(dist, "probability", rng) for _ in range(200)]
    assert all(sorted(d) == [0.0] * 7 + [1.0] and d[0] + d[1] == 1.0 for d in draws)
    assert 50 < sum(d[0] for d in draws) < 150


def test_label_and_constants() -> None:
    assert fv.VOTE_COLUMNS[:8] == fv.EMOTIONS
    assert fv.EMOTIONS == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                           "fear", "contempt")
    assert fv.label([0, 0, 0, 0, 0, 0, 0.4, 0.6]) == "contempt"
    with pytest.raises(InputError):
        fv.label([1.0, 0.0])


@pytest.mark.parametrize("bad", [[1] * 9, [-1] + [5] * 9, ["x"] + [1] * 9, [True] + [1] * 9,
                                 [float("nan")] + [1] * 9, "0123456789"])
def test_bad_votes(bad: object) -> None:
    with pytest.raises(InputError):
        fv.target(bad, "majority", True)  # type: ignore[arg-type]


def test_bad_mode() -> None:
    with pytest.raises(InputError, match="unknown FER\\+ label mode"):
        fv.target(votes(neutral=10), "soft", False)


def test_import_is_light() -> None:
    code = ("import sys, fer_prep.ferplus_votes; "
            "print('pandas' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
