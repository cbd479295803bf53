"""Reader of dlib's imglab XML: images, their face boxes and (when present) 68 landmarks.

The format (`<image file=...><box top left width height><part name='00' x y/>…`) is the one
dlib's examples and `imglab` write; file paths are relative to the XML's folder.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from fer_prep.faces import Box

Annotation = tuple[Box, np.ndarray | None]
"""A face box (x, y, w, h) and its (68, 2) landmarks, or None when the box has no 68 parts."""


def read_imglab(xml_path: str | Path) -> list[tuple[Path, list[Annotation]]]:
    """Every `<image>` of the XML as (image path, [(box, landmarks68 or None), ...]), in order.

    Boxes marked `ignore='1'` are skipped. Landmarks are float64, ordered by part name.
    """
    xml_path = Path(xml_path)
    root = ET.parse(xml_path).getroot()
    images = []
    for image in root.iter("image"):
        faces: list[Annotation] = []
        for box in image.iter("box"):
            if box.get("ignore", "0") == "1":
                continue
            rect = tuple(float(box.get(k)) for k in ("left", "top", "width", "height"))
            parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y")))
                     for p in box.iter("part")}
            lm = None
            if len(parts) == 68 and sorted(parts) == list(range(68)):
                lm = np.array([parts[i] for i in range(68)], dtype=np.float64)
            faces.append((rect, lm))
        images.append((xml_path.parent / image.get("file"), faces))
    return images
