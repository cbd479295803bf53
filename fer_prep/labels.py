"""The canonical expression labels. Each dataset maps its own codes onto them
(`fer_prep.datasets`); exports map them back to each seed's convention."""

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
