"""`fer-prep report`: one self-contained HTML page to check a work folder by eye.

Per dataset: the stages (rows by status, parameters, version, when and how long, stale or not);
every row that is not ok, in a table that sorts and filters; contact sheets of aligned faces per
class and of source frames with their box and 68 landmarks; the worst alignments first (the
landmarks' distance from dlib's mean face once aligned, the lowest detector scores); per video
clip a strip of its frames' statuses over time; the masks; the folds as a class × fold table
with their subjects; and each training run's curves, per-fold table and confusion matrix.
Pictures are embedded (JPEG/PNG data URIs), so the page is one file to open, mail or archive.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep.cache import RECORD, read_record, write_text_atomic
from fer_prep.errors import InputError
from fer_prep.reports.status import DAMAGED, DatasetStatus, work_status

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fer_prep.datasets import Dataset

SHEET = 12  # faces per class in a contact sheet
THUMB = 96  # side of a face in a contact sheet, px
SHARP_SAMPLE = 200  # faces per split whose sharpness is measured
SHARPER = 10.0  # one split's faces this many times sharper than another's: a warning
SOURCES = 8  # source frames drawn with their box and landmarks
WORST = 12  # faces in each "worst" sheet
#: manifest columns no section reads, left unread (meshes, other landmark sets, vote counts)
UNREAD = frozenset({"landmarks478", "landmarks5", "dlib5", "detector_box", "landmarks5_manual",
                    "landmarks37_auto", "votes", "target", "fingerprint", "blendshapes"})
TOP_SHAPES = 5  # blendshapes named per class, the strongest first
CLIPS = 200  # clips with a status strip, those with the most frames not ok first
STRIP = {"ok": (80, 170, 60), "borrowed": (40, 170, 240), "no_face": (60, 60, 220)}  # BGR
OTHER = (90, 90, 90)  # any other status on a strip
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_TIMEOUT = 120  # s for a headless browser to render the page

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 3em;color:#222}
h1{margin-top:.6em}h2{border-bottom:2px solid #ccc;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:left;vertical-align:top}th{background:#f0f0f0;cursor:pointer}
.stale,.partial,.missing,.damaged,.warn{color:#b00}.complete{color:#070}img{max-width:100%;display:block}
figure{display:inline-block;margin:4px 8px 8px 0;vertical-align:top}
figcaption{font-size:12px;color:#555}input{margin:.3em 0;padding:3px;width:24em}
.strip{display:flex;align-items:center;gap:8px;font-size:12px}.strip img{height:10px;
width:600px;image-rendering:pixelated}code{background:#f4f4f4;padding:0 3px}
"""
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.dataset.up !== "1"; th.dataset.up = up ? "1" : "0";
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll("input.filter").forEach(function (input) {
  var table = document.getElementById(input.dataset.table);
  input.addEventListener("input", function () {
    var q = input.value.toLowerCase();
    Array.from(table.tBodies[0].rows).forEach(function (r) {
      r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
    });
  });
});
"""


def _esc(value: Any) -> str:
    """Escaped text of a cell; None and a table's NaN are empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return html.escape(str(value))


def _data_uri(data: bytes, kind: str) -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _jpeg(image: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} picture")
    return _data_uri(buf.tobytes(), "jpeg")


def _png(image: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} picture")
    return _data_uri(buf.tobytes(), "png")


def _file_uri(path: Path) -> str | None:
    """A picture file as a data URI; None when it is missing or empty."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    return _data_uri(path.read_bytes(), "png" if path.suffix.lower() == ".png" else "jpeg")


def _img(uri: str | None, caption: str = "", alt: str = "") -> str:
    if uri is None:
        return ""
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{_esc(alt or caption)}">{cap}</figure>'


def _table(header: list[str], rows: list[list[Any]], table_id: str = "",
           sortable: bool = False) -> str:
    attrs = (f' id="{table_id}"' if table_id else "") + (' class="sortable"' if sortable else "")
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _thumb(image: np.ndarray, side: int = THUMB) -> np.ndarray:
    """`image` as a BGR side × side tile (letter-boxed)."""
    import cv2
    import numpy as np

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    tile = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    tile[y:y + small.shape[0], x:x + small.shape[1]] = small
    return tile


def _sheet(tiles: list[np.ndarray], columns: int = SHEET) -> np.ndarray:
    """Tiles in rows of `columns`, 2-px white gaps."""
    import numpy as np

    side = tiles[0].shape[0]
    rows = -(-len(tiles) // columns)
    cols = min(columns, len(tiles))
    out = np.full((rows * (side + 2), cols * (side + 2), 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (side + 2):r * (side + 2) + side, c * (side + 2):c * (side + 2) + side] = tile
    return out


def _read(path: Path) -> np.ndarray | None:
    from fer_prep.images import UnreadableImage, read_image

    try:
        return read_image(path)
    except UnreadableImage:
        return None


def _faces_sheet(folder: Path, rows: pd.DataFrame) -> str | None:
    tiles = [t for t in (_read(folder / p) for p in rows["face_path"]) if t is not None]
    return _jpeg(_sheet([_thumb(t) for t in tiles])) if tiles else None


# --- sections -----------------------------------------------------------------------------

def _stages_section(status: DatasetStatus, work: Path) -> str:
    rows = []
    for s in status.stages:
        record = read_record(work / status.dataset / s.stage) if "/" not in s.stage else None
        record = record or {}
        params = record.get("params") or {}
        rows.append([
            s.stage, s.state,
            s.detail or ", ".join(f"{k} {v}" for k, v in s.counts.items()) or "—",
            " ".join(f"{k}={v}" for k, v in sorted(params.items())) or "—",
            record.get("package_version", ""), record.get("finished", ""),
            "" if record.get("seconds") is None else f"{record['seconds']:.1f}",
        ])
    table = _table(["stage", "state", "rows", "parameters", "version", "finished",
                    "seconds"], rows)
    nxt = (f"<p>Next: <code>{_esc(status.next)}</code></p>" if status.next
           else "<p>Everything is up to date.</p>")
    return f"<h3>Stages</h3>{table}{nxt}"


def _manifests(work: Path, status: DatasetStatus) -> dict[str, pd.DataFrame]:
    """Every stage manifest of the dataset, by stage folder, without the columns no section
    reads (a 478-point mesh a row is most of an aligned video set's memory); a damaged stage's
    is left out (the stages table names its file)."""
    import pandas as pd
    import pyarrow.parquet as pq

    damaged = {s.stage for s in status.stages if s.state == DAMAGED}
    out = {}
    for record_path in sorted((work / status.dataset).glob(f"*/{RECORD}")):
        manifest = record_path.parent / "manifest.parquet"
        if manifest.is_file() and record_path.parent.name not in damaged:
            columns = [c for c in pq.read_schema(manifest).names if c not in UNREAD]
            out[record_path.parent.name] = pd.read_parquet(manifest, columns=columns)
    return out


def _failures_section(manifests: dict[str, pd.DataFrame], dataset: str) -> str:
    rows = []
    for stage, df in manifests.items():
        if "status" not in df:
            continue
        bad = df[df["status"] != "ok"]
        columns = [c for c in ("sample_id", "source_path", "status", "message") if c in bad]
        for rec in bad[columns].to_dict("records"):
            rows.append([stage, rec.get("sample_id", ""), rec.get("source_path") or "",
                         rec["status"], rec.get("message") or ""])
    if not rows:
        return "<h3>Failures</h3><p>Every row of every stage is ok.</p>"
    table_id = f"failures-{dataset}"
    return (f"<h3>Failures ({len(rows)} rows not ok)</h3>"
            f'<input class="filter" data-table="{table_id}" placeholder="filter rows…">'
            + _table(["stage", "row", "file", "status", "message"], rows, table_id, sortable=True))


def _aligned_rows(manifests: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    faces = manifests.get("align")
    if faces is None or "face_path" not in faces:
        return None
    return faces[faces["status"].isin(["ok", "borrowed"]) & faces["face_path"].notna()]


def _classes_section(folder: Path, ok: pd.DataFrame) -> str:
    parts = []
    labels = ok["label"].fillna("(unlabelled)") if "label" in ok else None
    groups = ok.groupby(labels, sort=True) if labels is not None else [("all", ok)]
    for label, group in groups:
        sample = group.sample(min(SHEET, len(group)), random_state=0).sort_index()
        parts.append(_img(_faces_sheet(folder, sample), f"{label}: {len(sample)} of "
                          f"{len(group)} faces", f"aligned faces, {label}"))
    return "<h3>Aligned faces per class</h3>" + "".join(parts)


def _sharpness_section(folder: Path, ok: pd.DataFrame) -> str:
    """Each split's faces' sharpness (median variance of the Laplacian of up to SHARP_SAMPLE
    chips), and a warning where one split's faces are SHARPER times another's: a model trained
    on blurred faces reads sharp ones badly (`fer-train --test-blur auto`)."""
    from fer_prep.images import sharpness

    if "split" not in ok or ok["split"].nunique() < 2:
        return ""
    rows, medians = [], {}
    for split, group in ok.groupby(ok["split"].astype(str), sort=True):
        sample = group.sample(min(SHARP_SAMPLE, len(group)), random_state=0)
        values = [sharpness(image) for p in sample["face_path"]
                  if (image := _read(folder / p)) is not None]
        if values:
            medians[split] = statistics.median(values)
            rows.append([split, len(group), len(values), f"{medians[split]:.1f}"])
    if not rows:
        return ""
    html = "<h3>Sharpness per split</h3>" + _table(
        ["split", "faces", "measured", "median variance of the Laplacian"], rows)
    low, high = min(medians, key=medians.get), max(medians, key=medians.get)
    if medians[high] >= SHARPER * max(medians[low], 1e-6):
        html += (f'<p class="warn">{_esc(high)} faces are {medians[high] / medians[low]:.0f}× '
                 f"sharper than {_esc(low)} faces: a model trained on one reads the other "
                 "badly (fer-train --test-blur auto tests faces blurred to the training "
                 "faces' sharpness)</p>")
    return html


def _expression_section(folder: Path, ok: pd.DataFrame) -> str:
    """MediaPipe's head pose (histograms of yaw, pitch and roll) and blendshapes (the mean score
    of each per class, as a heat map and the strongest few in a table), where align gave them.
    The blendshapes are read here from the manifest's Arrow column, for the ok rows alone."""
    import io

    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if "yaw" not in ok or not ok["yaw"].notna().any():
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fer_prep.faces import BLENDSHAPES

    def png(fig: Any) -> str:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return _data_uri(buf.getvalue(), "png")

    posed = ok[ok["yaw"].notna()]
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.4))
    for ax, angle in zip(axes, ("yaw", "pitch", "roll"), strict=True):
        ax.hist(posed[angle].astype(float), bins=36, range=(-90, 90), color="#4a7")
        ax.set_title(f"{angle} (°)", fontsize=9)
    out = ("<h3>Head pose</h3>" + _img(png(fig), f"{len(posed)} faces; yaw < 0: turned "
           "towards the image's left, pitch > 0: looking down, roll < 0: turned clockwise",
           "head pose histograms"))
    column = pq.read_table(folder / "manifest.parquet", columns=["blendshapes"])["blendshapes"]
    column = column.take(ok.index.to_numpy())
    scored = pc.list_value_length(column).to_numpy(zero_copy_only=False) == len(BLENDSHAPES)
    if not scored.any():
        return out
    scores = pc.list_flatten(column.filter(scored)).to_numpy().reshape(-1, len(BLENDSHAPES))
    labels = ok["label"].fillna("(unlabelled)").to_numpy()[scored] if "label" in ok \
        else np.full(len(scores), "all")
    classes = sorted(set(labels))
    means = np.stack([scores[labels == c].mean(0) for c in classes])
    fig, ax = plt.subplots(figsize=(11, 0.5 + 0.3 * len(classes)))
    ax.imshow(means, aspect="auto", cmap="magma", vmin=0, vmax=max(float(means.max()), 1e-6))
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xticks(range(len(BLENDSHAPES)), BLENDSHAPES, rotation=90, fontsize=6)
    rows = [[c, int((labels == c).sum()), ", ".join(
        f"{BLENDSHAPES[i]} {m[i]:.2f}" for i in np.argsort(-m[1:])[:TOP_SHAPES] + 1)]
        for c, m in zip(classes, means, strict=True)]
    return (out + "<h3>Blendshapes per class (mean score)</h3>"
            + _img(png(fig), "MediaPipe's 52 blendshape scores, mean per class",
                   "blendshape means per class")
            + _table(["class", "faces", f"strongest {TOP_SHAPES} (without _neutral)"], rows))


def _template_error(row: dict[str, Any], size: int, padding: float) -> float:
    """Mean distance, in % of the chip's side, of the face's points 17–67 once aligned from
    where dlib's mean face puts them in a chip of this size and padding."""
    import numpy as np

    from fer_prep.align import dlib_mean_face, transform_points

    lm = np.asarray(row["landmarks68"], float).reshape(68, 2)[17:]
    matrix = np.asarray(row["matrix"], float).reshape(2, 3)
    target = (dlib_mean_face()[17:] + padding) / (1 + 2 * padding) * size
    moved = transform_points(lm, matrix)
    return float(100 * np.linalg.norm(moved - target, axis=1).mean() / size)


def _worst_section(folder: Path, ok: pd.DataFrame, record: dict[str, Any]) -> str:
    params = record.get("params") or {}
    parts = []
    usable = ok[ok["landmarks68"].notna() & ok["matrix"].notna()] if "matrix" in ok else ok[:0]
    if len(usable):
        from fer_prep.align import TEMPLATES

        tpl = TEMPLATES.get(params.get("template", "eyes"))
        size = params.get("size") or tpl.size
        padding = tpl.padding if params.get("padding") is None else params["padding"]
        errors = [_template_error(r, size, padding) for r in usable.to_dict("records")]
        worst = usable.assign(error=errors).nlargest(WORST, "error")
        captions = ", ".join(f"{e:.1f}" for e in worst["error"])
        parts.append(_img(_faces_sheet(folder, worst),
                          f"largest landmark distance from dlib's mean face, % of the chip "
                          f"(median {statistics.median(errors):.1f}): {captions}",
                          "worst alignments"))
    if "score" in ok:
        scored = ok[ok["score"].notna()]
        if len(scored):
            low = scored.nsmallest(WORST, "score")
            parts.append(_img(_faces_sheet(folder, low), "lowest detector scores: " +
                              ", ".join(f"{s:.2f}" for s in low["score"]),
                              "lowest detector scores"))
    return "<h3>Worst first</h3>" + ("".join(parts) or "<p>No landmarks to measure.</p>")


def _source_image(frames: Path, dataset: Dataset, row: dict[str, Any]) -> np.ndarray | None:
    """The frame a face was cut from: the extracted frame, else the dataset's own pixels."""
    frame = row.get("frame_path")
    if isinstance(frame, str) and frame:
        return _read(frames / frame)
    try:
        return dataset.load_image(row)
    except Exception:  # a source gone since the run (moved disk): the sheet goes without it
        return None


def _sources_section(work: Path, dataset: str, ok: pd.DataFrame) -> str:
    import cv2
    import numpy as np

    from fer_prep.datasets import get_dataset

    reader, frames = get_dataset(dataset, work), work / dataset / "frames"
    tiles = []
    for row in ok.sample(min(SOURCES * 3, len(ok)), random_state=1).to_dict("records"):
        image = _source_image(frames, reader, row)
        if image is None or row.get("box") is None:
            continue
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
        x, y, w, h = (float(v) for v in row["box"])
        thick = max(1, round(max(image.shape[:2]) / 300))
        cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), (0, 200, 255),
                      thick)
        if row.get("landmarks68") is not None:
            for px, py in np.asarray(row["landmarks68"], float).reshape(-1, 2):
                cv2.circle(image, (round(px), round(py)), thick + 1, (0, 255, 0), -1)
        tiles.append(_thumb(image, 240))
        if len(tiles) == SOURCES:
            break
    if not tiles:
        return "<h3>Sources</h3><p>No source frame can be read here.</p>"
    return ("<h3>Sources with box and 68 landmarks</h3>"
            + _img(_jpeg(_sheet(tiles, 4)), f"{len(tiles)} random faces", "sources"))


def _strips_section(faces: pd.DataFrame) -> str:
    import numpy as np

    if "sequence" not in faces or "frame" not in faces or "borrowed_from" not in faces:
        return ""
    clips = []
    for clip, group in faces.groupby("sequence", sort=True):
        group = group.sort_values("frame")
        colours = np.array([STRIP.get(s, OTHER) for s in group["status"]], np.uint8)
        clips.append((int((group["status"] != "ok").sum()), str(clip), group, colours))
    clips.sort(key=lambda c: (-c[0], c[1]))
    rows = []
    for _, clip, group, colours in clips[:CLIPS]:
        strip = np.repeat(colours[None], 2, axis=0)
        counts = ", ".join(f"{k} {v}" for k, v in group["status"].value_counts().items())
        rows.append(f'<div class="strip"><img src="{_png(strip)}" alt="frames of {_esc(clip)}">'
                    f"<span>{_esc(clip)}: {len(group)} frames, {_esc(counts)}</span></div>")
    more = f"<p>and {len(clips) - CLIPS} more clips.</p>" if len(clips) > CLIPS else ""
    legend = ("<p>Each frame is one column: green ok, orange borrowed (the nearest detected "
              "frame's landmarks), red no face, grey unreadable or failed.</p>")
    return "<h3>Frames over time, per clip</h3>" + legend + "".join(rows) + more


def _folds_section(folds: pd.DataFrame) -> str:
    ok = folds[(folds["status"] == "ok") & (folds["fold"] >= 0)]
    if not len(ok):
        return "<h3>Folds</h3><p>No row is in a test part.</p>"
    table = ok.pivot_table(index="label", columns="fold", values="sample_id", aggfunc="count",
                           fill_value=0)
    header = ["class", *(f"fold {k}" for k in table.columns), "all"]
    rows = [[label, *row.tolist(), int(row.sum())] for label, row in table.iterrows()]
    rows.append(["all", *table.sum().tolist(), int(table.values.sum())])
    out = "<h3>Folds: test rows per class and fold</h3>" + _table(header, rows)
    if "subject" in ok and ok["subject"].notna().any():
        subjects = [[f"fold {k}", len(g["subject"].dropna().unique()),
                     " ".join(sorted(map(str, g["subject"].dropna().unique())))]
                    for k, g in ok.groupby("fold")]
        out += "<h3>Subjects per fold</h3>" + _table(["fold", "subjects", "who"], subjects)
    return out


def _masks_section(work: Path, dataset: str) -> str:
    record = read_record(work / dataset / "masks") or {}
    panel = _file_uri(work / dataset / "masks" / "panel.png")
    if panel is None:
        return ""
    classes = record.get("classes") or {}  # {FMPN's index: class}
    order = [classes[k] for k in sorted(classes, key=int)] if isinstance(classes, dict) else []
    caption = "a row per fold, a column per class" + (f" ({', '.join(order)})" if order else "")
    return "<h3>Masks per fold and class</h3>" + _img(panel, caption, "motion masks")


def _curves(history: list[dict[str, Any]], title: str) -> str | None:
    """Loss and accuracy per epoch of one fold, as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(7, 2.4))
    for key in sorted({k for h in history for k in h if k.endswith("loss")}):
        loss.plot(epochs, [h.get(key) for h in history], marker="o", label=key)
    for key in sorted({k for h in history for k in h if k.endswith("accuracy")}):
        acc.plot(epochs, [h.get(key) for h in history], marker="o", label=key)
    for ax, name in ((loss, "loss"), (acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=9)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return _data_uri(buf.getvalue(), "png")


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _training_section(work: Path, dataset: str) -> str:
    parts = []
    for metrics_path in sorted((work / dataset / "train").glob("*/metrics.json")):
        run = metrics_path.parent
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
            folds = dict(metrics["folds"])
        except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged: said, not shown
            parts.append(f"<h3>Training: {_esc(run.name)}</h3><p class=\"warn\">"
                         f"{_esc(metrics_path)} is not a run's metrics ({_esc(exc)}): its "
                         "fer-train command again, with --resume, writes it</p>")
            continue
        rows = [[k, f.get("n_train"), f.get("n_test"), f.get("selected_epoch"),
                 _percent(f.get("accuracy")), _percent(f.get("validation_accuracy"))]
                for k, f in sorted(folds.items(), key=lambda kv: int(kv[0]))]
        mean = metrics.get("mean_accuracy")
        summary = ("" if mean is None else f"<p>mean accuracy {100 * mean:.2f} ± "
                   f"{100 * metrics['std_accuracy']:.2f} % over {len(rows)} fold(s)</p>")
        curves = "".join(_img(_curves(f["history"], f"{run.name} fold {k}"),
                              alt=f"{run.name} fold {k} curves")
                         for k, f in sorted(folds.items())
                         if f.get("history"))
        parts.append(f"<h3>Training: {_esc(run.name)}</h3>{summary}"
                     + _table(["fold", "train", "test", "epoch", "accuracy %",
                               "validation %"], rows)
                     + curves + _img(_file_uri(run / "confusion.png"), "confusion matrix",
                                     f"{run.name} confusion matrix"))
    return "".join(parts)


def _dataset_section(work: Path, status: DatasetStatus) -> str:
    dataset = status.dataset
    manifests = _manifests(work, status)
    out = [f'<h2 id="{_esc(dataset)}">{_esc(dataset)}</h2>', _stages_section(status, work),
           _failures_section(manifests, dataset)]
    ok = _aligned_rows(manifests)
    if ok is not None and len(ok):
        folder = work / dataset / "align"
        out += [_classes_section(folder, ok), _sources_section(work, dataset, ok),
                _worst_section(folder, ok, read_record(folder) or {}),
                _sharpness_section(folder, ok), _expression_section(folder, ok)]
    if "align" in manifests:
        out.append(_strips_section(manifests["align"]))
    if "masks" in manifests:
        out.append(_masks_section(work, dataset))
    if "folds" in manifests:
        out.append(_folds_section(manifests["folds"]))
    out.append(_training_section(work, dataset))
    return "".join(out)


def build_report(work: str | Path = "fer-work", dataset: str | None = None,
                 out: str | Path | None = None) -> Path:
    """Write the report of `work` (every dataset, or `dataset`) to `out` (default
    WORK/report.html), atomically; return its path. InputError when `work` holds no stage."""
    from fer_prep import __version__

    work = Path(work).expanduser()
    statuses = work_status(work, dataset)
    target = Path(out).expanduser() if out is not None else work / "report.html"
    if target.is_dir():
        raise InputError(f"{target}: a folder; give the report's file name (report.html)")
    nav = " · ".join(f'<a href="#{_esc(s.dataset)}">{_esc(s.dataset)}</a>' for s in statuses)
    body = "".join(_dataset_section(work, s) for s in statuses)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>fer-prep report: {_esc(work)}</title><style>{STYLE}</style></head><body>"
            f"<h1>fer-prep report</h1><p>Work folder <code>{_esc(work.resolve())}</code>, "
            f"fer-prep {_esc(__version__)}. {nav}</p>{body}<script>{SCRIPT}</script>"
            "</body></html>\n")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, page)
    except OSError as exc:
        raise InputError(f"{target}: cannot write the report ({exc.strerror})") from None
    return target


def browser() -> str | None:
    """A Chromium-family browser on PATH, for screenshots; None when there is none."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def headless(page: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run a headless Chromium on the local file `page` with `flags`; its stdout and stderr.

    InputError when no browser is installed or it fails. A fresh profile every time, so a
    user's own browser session is never touched."""
    exe = browser()
    if exe is None:
        raise InputError("no Chromium to render the page with (apt install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", f"--user-data-dir={profile}", *flags, page.resolve().as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise InputError(f"{page}: {exe} took over {BROWSER_TIMEOUT} s to render it") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise InputError(f"{page}: {exe} failed to render it ({last})")
    return done


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the top `height` px of `page` as headless Chromium draws it `width` px wide."""
    png = Path(png).expanduser()
    png.parent.mkdir(parents=True, exist_ok=True)
    headless(page, f"--window-size={width},{height}", f"--screenshot={png.resolve()}")
    if not png.is_file():
        raise InputError(f"{page}: the browser wrote no screenshot to {png}")
    return png
