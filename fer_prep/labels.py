"""The canonical expression labels and every dataset's own codes, in one place.

Adapters translate a dataset's code to the canonical name on the way in; exports translate back to
each seed's convention on the way out.
"""

from __future__ import annotations

CANONICAL: tuple[str, ...] = (
    "neutral",
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
)

#: dataset → {the dataset's own code: canonical label}
CODES: dict[str, dict[int, str]] = {
    # CK+ Emotion/*.txt floats (Lucey et al. 2010).
    "ckplus": {
        0: "neutral",
        1: "anger",
        2: "contempt",
        3: "disgust",
        4: "fear",
        5: "happiness",
        6: "sadness",
        7: "surprise",
    },
    # AFEW's class folders in alphabetical order, the index Emotion-FAN trains with.
    "afew": {
        0: "anger",
        1: "disgust",
        2: "fear",
        3: "happiness",
        4: "neutral",
        5: "sadness",
        6: "surprise",
    },
}

#: dataset → {class folder name: the dataset's own code}
FOLDERS: dict[str, dict[str, int]] = {
    "afew": {
        "Angry": 0, "Disgust": 1, "Fear": 2, "Happy": 3, "Neutral": 4, "Sad": 5, "Surprise": 6,
    },
}


def label_of(dataset: str, code: int) -> str:
    """Canonical label of `dataset`'s `code`; ValueError naming the valid codes otherwise."""
    table = CODES[dataset]
    if code not in table:
        raise ValueError(f"{dataset} has no label code {code}; valid codes: {sorted(table)}")
    return table[code]
