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
}


def label_of(dataset: str, code: int) -> str:
    """Canonical label of `dataset`'s `code`; ValueError naming the valid codes otherwise."""
    table = CODES[dataset]
    if code not in table:
        raise ValueError(f"{dataset} has no label code {code}; valid codes: {sorted(table)}")
    return table[code]
