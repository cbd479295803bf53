"""FER+ vote vectors to training targets, exactly as microsoft/FERPlus does it.

Source: microsoft/FERPlus `src/ferplus.py` (MIT), `FERPlusReader._process_data` (mode rule),
`FERPlusReader.load_folders` (which samples are kept, renormalisation over the 8 emotions) and
`FERPlusReader._process_target` (what each mini-batch then feeds the loss); `src/train.py` builds
the validation and test readers with `"majority"` whatever the training mode.

A vote vector is FER+'s 10 columns in FER+'s order (`VOTE_COLUMNS`). FERPlus first zeroes every
count `< 1 + eps` ("remove emotions with a single vote (outlier removal)"), then by mode:

- majority: the top class is kept if it holds more than half the remaining votes, else the
  sample is "unknown";
- probability / crossentropy: classes are taken in order of votes (all classes tied at a count in
  one pass) while they hold < 75 % of the votes and fewer than 3 were taken; meeting unknown or NF
  stops the loop (dropped again when classes were taken before it); the sample is "unknown" if
  the taken classes hold <= 50 % of the votes or more than 3 were taken (a tie);
- multi_target: every class with >= 30 % of the votes; "unknown" if those hold <= 50 %.

The result is normalised over all 10 classes; `load_folders` keeps the sample only when its
argmax (first maximum) is one of the 8 emotions, drops the unknown and NF entries and normalises
again. This module repeats that arithmetic step for step, so the floats match FERPlus's.
Pure Python; numpy only inside `minibatch_target`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from fer_prep.errors import InputError

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
"""fer2013new.csv's vote columns, in its order (= FERPlus's target order)."""

EMOTIONS = VOTE_COLUMNS[:8]
"""The 8 emotions FERPlus trains on; these are fer-prep's canonical label names."""

CANONICAL = {column: column for column in EMOTIONS}
"""FER+ column -> fer-prep canonical label (the same words)."""

MODES = ("majority", "probability", "crossentropy", "multi_target")
"""FERPlus's `--training_mode` values (`src/train.py`)."""

# Why FERPlus drops a sample (the second element of `target`'s answer).
NO_VOTES = "no votes left after outlier removal"
NO_MAJORITY = "no majority"
TOP_UNKNOWN = "top class is unknown"
TOP_NF = "top class is NF"
TIED_UNKNOWN = "top class tied with unknown"
TIED_NF = "top class tied with NF"
TOO_MANY = "more than 3 tied top classes"
TOO_FEW = "kept classes hold 50 % of the votes or less"
REASONS = (NO_VOTES, NO_MAJORITY, TOP_UNKNOWN, TOP_NF, TIED_UNKNOWN, TIED_NF, TOO_MANY, TOO_FEW)

_UNKNOWN, _NF = 8, 9
_EPSILON = 0.001  # _process_target's multi_target epsilon


def _first_argmax(values: Sequence[float]) -> int:
    """`np.argmax`: the index of the first maximum."""
    best = 0
    for i, value in enumerate(values):
        if value > values[best]:
            best = i
    return best


def _check(votes: Sequence[float], mode: str) -> list[float]:
    if mode not in MODES:
        raise InputError(f"unknown FER+ label mode {mode!r}; use one of {', '.join(MODES)}")
    if isinstance(votes, (str, bytes)) or len(votes) != len(VOTE_COLUMNS):
        raise InputError(f"a FER+ vote vector has {len(VOTE_COLUMNS)} counts "
                         f"({', '.join(VOTE_COLUMNS)}), got {votes!r}")
    raw = []
    for count in votes:
        try:
            value = float(count)
        except (TypeError, ValueError):
            raise InputError(f"FER+ vote count {count!r} is not a number") from None
        if isinstance(count, bool) or not math.isfinite(value) or value < 0:
            raise InputError(f"FER+ vote count {count!r} is not a count (>= 0)")
        raw.append(value)
    return raw


def _process_data(emotion_raw: list[float], mode: str) -> tuple[list[float], str]:
    """`FERPlusReader._process_data`, step for step: the 10-class distribution it returns and,
    when that is its forced "unknown", the reason (else "")."""
    size = len(emotion_raw)
    emotion_unknown = [0.0] * size
    emotion_unknown[-2] = 1.0

    # "remove emotions with a single vote (outlier removal)"
    for i in range(size):
        if emotion_raw[i] < 1.0 + sys.float_info.epsilon:
            emotion_raw[i] = 0.0
    sum_list = sum(emotion_raw)
    if sum_list == 0:  # every mode falls to emotion_unknown (0 > 0, 0 <= 0)
        return emotion_unknown, NO_VOTES
    emotion = [0.0] * size
    forced = ""

    if mode == "majority":
        maxval = max(emotion_raw)
        if maxval > 0.5 * sum_list:
            emotion[_first_argmax(emotion_raw)] = maxval
        else:
            emotion, forced = emotion_unknown, NO_MAJORITY
    elif mode in ("probability", "crossentropy"):
        sum_part = 0.0
        count = 0
        valid_emotion = True
        stop = ""  # set where unknown / NF stopped the loop
        first_pass = True
        while sum_part < 0.75 * sum_list and count < 3 and valid_emotion:
            maxval = max(emotion_raw)
            for i in range(size):
                if emotion_raw[i] == maxval:
                    emotion[i] = maxval
                    emotion_raw[i] = 0
                    sum_part += emotion[i]
                    count += 1
                    if i >= 8:  # unknown or non-face share same number of max votes
                        valid_emotion = False
                        if sum(emotion) > maxval:  # other emotions ahead of unknown / NF
                            emotion[i] = 0
                            count -= 1
                            if first_pass:  # only classes tied with it at the top
                                stop = TIED_UNKNOWN if i == _UNKNOWN else TIED_NF
                        else:  # unknown / NF is the top class itself
                            stop = TOP_UNKNOWN if i == _UNKNOWN else TOP_NF
                        break
            first_pass = False
        if sum(emotion) <= 0.5 * sum_list or count > 3:
            forced = stop or (TOO_MANY if count > 3 else TOO_FEW)
            emotion = emotion_unknown
    else:  # multi_target
        threshold = 0.3
        for i in range(size):
            if emotion_raw[i] >= threshold * sum_list:
                emotion[i] = emotion_raw[i]
        if sum(emotion) <= 0.5 * sum_list:
            emotion, forced = emotion_unknown, TOO_FEW

    return [float(i) / sum(emotion) for i in emotion], forced


def target(votes: Sequence[float], mode: str, training: bool) -> tuple[list[float] | None, str]:
    """The target FERPlus stores for one sample: `(distribution over EMOTIONS, "")`, or
    `(None, reason)` when FERPlus drops it (a `REASONS` entry).

    `votes`: the 10 FER+ counts in `VOTE_COLUMNS` order. `training=False` (validation, test) means
    majority whatever `mode`, as `src/train.py` builds those readers with `"majority"`.
    Follows `ferplus.py`: `_process_data` (outlier removal, then the mode rule), then
    `load_folders` (`idx = np.argmax(emotion)`; kept if `idx < 8`, `emotion[:-2]` renormalised).
    For probability and multi_target, what a mini-batch feeds the loss is `minibatch_target`
    of this distribution. Raises InputError for a malformed vector or an unknown mode.
    """
    raw = _check(votes, mode)
    emotion, forced = _process_data(raw, mode if training else "majority")
    if forced:
        return None, forced
    idx = _first_argmax(emotion)
    if idx == _UNKNOWN:
        return None, TOP_UNKNOWN
    if idx == _NF:
        return None, TOP_NF
    emotion = emotion[:-2]
    return [float(i) / sum(emotion) for i in emotion], ""


def label(dist: Sequence[float]) -> str:
    """The canonical label of `dist`'s argmax (first maximum, as FERPlus's `np.argmax` counts
    `per_emotion_count`)."""
    if len(dist) != len(EMOTIONS):
        raise InputError(f"a FER+ target has {len(EMOTIONS)} values ({', '.join(EMOTIONS)}), "
                         f"got {len(dist)}")
    return CANONICAL[EMOTIONS[_first_argmax(list(dist))]]


def minibatch_target(dist: Sequence[float], mode: str, rng: Any = None) -> list[float]:
    """`FERPlusReader._process_target`: what each mini-batch feeds the loss for a stored `dist`.

    majority / crossentropy: `dist` itself; probability: a one-hot drawn from `dist` anew each
    time (`np.random.choice(len(target), p=target)`; `rng` a `numpy.random.Generator`, default
    a fresh one); multi_target: `(1 - 0.001) * (dist > 0) + 0.001`.
    """
    import numpy as np

    if mode not in MODES:
        raise InputError(f"unknown FER+ label mode {mode!r}; use one of {', '.join(MODES)}")
    values = np.asarray(dist, dtype=float)
    if mode in ("majority", "crossentropy"):
        return values.tolist()
    if mode == "probability":
        rng = np.random.default_rng() if rng is None else rng
        one_hot = np.zeros_like(values)
        one_hot[rng.choice(len(values), p=values)] = 1.0
        return one_hot.tolist()
    flags = np.array(values)
    flags[flags > 0] = 1.0
    return ((1 - _EPSILON) * flags + _EPSILON * np.ones_like(values)).tolist()
