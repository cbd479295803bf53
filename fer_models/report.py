"""What a training run shows a person: the seeds' accuracy table and confusion-matrix pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer_prep.cache import atomic_path

CELL = 56
FONT = 14


def accuracy_table(metrics: dict[str, Any]) -> str:
    """Accuracy per fold and the mean ± standard deviation, as the seeds report CK+ results.

    FMPN's stage 1 (generator alone) has no accuracy; its table shows the test mask MSE.
    """
    folds = metrics["folds"]
    scored = not any(f.get("accuracy") is None and f.get("test_mse") is not None
                     for f in folds.values())  # FMPN's stage 1: the mask MSE alone
    what = "accuracy %" if scored else "mask MSE"
    scheme = metrics.get("folds_params", {}).get("scheme", "?")
    selected = metrics.get("selected_by", "last")
    at = {"last": "last epoch", "validation": "epoch chosen on validation",
          "test": "epoch chosen on TEST"}[selected]
    validation = selected == "validation"
    lines = [f"{metrics['run']} on {metrics['dataset']} ({scheme} folds, {len(folds)} of "
             f"{metrics['n_folds']}), {metrics['unit']}s, {at}:",
             f"{'fold':>5} {'train':>6} {'test':>6} {what:>11}"
             + (f" {'validation %':>13} {'epoch':>6}" if validation else "")]
    for key in sorted(folds, key=int):
        fold = folds[key]
        value = _percent(fold["accuracy"]) if scored else f"{fold['test_mse']:.4f}"
        lines.append(f"{key:>5} {fold['n_train']:>6} {fold['n_test']:>6} {value:>11}"
                     + (f" {_percent(fold.get('validation_accuracy')):>13} "
                        f"{fold['selected_epoch']:>6}" if validation else ""))
    if metrics.get("mean_accuracy") is not None:
        lines.append(f"{'mean':>5} {'':>6} {'':>6} {100 * metrics['mean_accuracy']:>11.2f} "
                     f"± {100 * metrics['std_accuracy']:.2f}  (all test {metrics['unit']}s "
                     f"pooled: {100 * metrics['overall_accuracy']:.2f})")
    return "\n".join(lines)


def results_markdown(metrics: dict[str, Any]) -> str:
    """The run's table as its protocol's papers print it: a row per fold (or the one split) with
    the metrics the protocol reports, then their mean ± std over folds."""
    from fer_models.protocols import PROTOCOLS, TITLES

    protocol = PROTOCOLS.get(metrics["protocol"])
    names = list(protocol.metrics)
    validation = metrics["selected_by"] == "validation"
    scheme = metrics.get("folds_params", {}).get("scheme", "?")
    chosen = {"last": "the last epoch", "validation": "the epoch best on the validation split",
              "test": "the epoch best ON THE TEST PART (as several seeds choose it; not an "
                      "unbiased estimate)"}[metrics["selected_by"]]
    lines = [f"# {metrics['run']} on {metrics['dataset']}: protocol {metrics['protocol']}", "",
             f"{protocol.doc}; {scheme} folds; {metrics['unit']}s; reported at {chosen}.", "",
             "| " + " | ".join(["fold", "train", "test", "epoch", *(TITLES[m] for m in names),
                                *(["validation accuracy %"] if validation else [])])
             + " |", "|" + " --- |" * (4 + len(names) + validation)]
    for key in sorted(metrics["folds"], key=int):
        fold = metrics["folds"][key]
        cells = [_percent(fold.get(m)) for m in names] + \
            ([_percent(fold.get("validation_accuracy"))] if validation else [])
        lines.append(f"| {key} | {fold['n_train']} | {fold['n_test']} | "
                     f"{fold['selected_epoch']} | " + " | ".join(cells) + " |")
    if protocol.folds and len(metrics["folds"]) > 1:
        cells = [f"{_percent(metrics['metrics'][m]['mean'])} ± "
                 f"{_percent(metrics['metrics'][m]['std'])}" for m in names]
        lines.append("| mean ± std | | | | " + " | ".join(cells) + " |" * (1 + validation))
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def confusion_png(path: Path, confusion: np.ndarray, classes: list[str], title: str) -> None:
    """A confusion matrix (rows: true class, columns: predicted) with counts, each cell shaded by
    its share of the row; written atomically."""
    confusion = np.asarray(confusion, dtype=np.int64)
    font = ImageFont.load_default(FONT)
    names = [c[:3] for c in classes]
    left = int(max(font.getlength(c) for c in classes)) + 16
    top = 2 * FONT + 24
    n = len(classes)
    image = Image.new("RGB", (left + n * CELL + 8, top + n * CELL + FONT + 16), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), title, fill="black", font=font)
    rows = confusion.sum(1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    for j, name in enumerate(names):
        draw.text((left + j * CELL + CELL // 2, top - 4), name, fill="black", font=font,
                  anchor="ms")
    for i, name in enumerate(classes):
        y = top + i * CELL
        draw.text((left - 8, y + CELL // 2), name, fill="black", font=font, anchor="rm")
        for j in range(n):
            x = left + j * CELL
            shade = int(255 * (1 - 0.8 * share[i, j]))
            draw.rectangle([x, y, x + CELL - 1, y + CELL - 1], fill=(shade, shade, 255),
                           outline=(200, 200, 200))
            draw.text((x + CELL // 2, y + CELL // 2), str(confusion[i, j]), font=font,
                      fill="white" if share[i, j] > 0.6 else "black", anchor="mm")
    draw.text((left, top + n * CELL + 4), "rows: true class; columns: predicted", fill="grey",
              font=font)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
