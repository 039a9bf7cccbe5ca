"""The inspection's folder: ``findings.csv``, ``scores.csv``, ``report.md`` and its thumbnails.

Everything goes through the owned-output writer (:mod:`featx.trust.outputs`): a file featx did
not write is refused before anything is written, and the user's images are only read (through
:func:`featx.images.read_image`), never changed, moved or copied.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from featx.audit.findings import KINDS, csv_text
from featx.trust.outputs import check_outputs, staged, write_output
from featx.utils.tables import markdown_table

__all__ = ["FILES", "THUMB", "summary_markdown", "write_inspection"]

#: What the folder holds.
FILES = ("findings.csv", "scores.csv", "report.md", "thumbs")
#: Thumbnail side, in pixels.
THUMB = 128
_SCORE_COLUMNS = ("path", "split", "given_label", "predicted_label", "label_score",
                  "label_flagged", "suggested_label", "nearest_train_path",
                  "nearest_train_similarity", "knn_distance")
_PAIRS = ("exact_duplicate", "near_duplicate", "leak")


def _link(path: str, out: Path) -> str:
    """A markdown link target for image ``path`` seen from ``out`` (relative when possible)."""
    if "://" in path:
        return path
    here, there = out.resolve(), os.path.abspath(path)
    try:  # relative when both lie under one folder below the root: they move together
        common = Path(os.path.commonpath([here, there]))
        rel = os.path.relpath(there, here) if len(common.parts) > 1 else there
    except ValueError:  # another drive
        rel = there
    return "<" + rel.replace(">", "%3E") + ">"


def _thumb_name(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:20] + ".jpg"


def _thumbnail(path: str) -> bytes | None:
    from PIL import Image

    from featx.images import ImageError, read_image

    try:
        pixels = read_image(path, size=(THUMB, THUMB), resize="crop")
    except (ImageError, OSError, ValueError):
        return None
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _cell(path: str, out: Path, thumbs: Mapping[str, str]) -> str:
    name = os.path.basename(path) or path
    target = _link(path, out)
    if path in thumbs:
        return f"[![{name}](thumbs/{thumbs[path]})]({target})<br>[{name}]({target})"
    return f"[{name}]({target})"


def _gallery(kind: str, rows: Sequence[Mapping], out: Path, thumbs: Mapping[str, str]) -> list:
    if kind in _PAIRS:
        table = [{"image": _cell(r["path"], out, thumbs), "split": r["split"],
                  "twin": _cell(r["other_path"], out, thumbs), "twin split": r["other_split"],
                  "score": f"{r['score']:.4f}"} for r in rows]
    elif kind == "label_error":
        table = [{"image": _cell(r["path"], out, thumbs), "split": r["split"],
                  "given": r["given_label"], "suspected": r["suggested_label"],
                  "score": f"{r['score']:.3f}"} for r in rows]
    elif kind == "outlier":
        table = [{"image": _cell(r["path"], out, thumbs), "split": r["split"],
                  "label": r["given_label"], "distance": f"{r['score']:.4f}",
                  "nearest training image": _cell(r["other_path"], out, {})} for r in rows]
    else:
        table = [{"file": _cell(r["path"], out, {}), "split": r["split"],
                  "reason": r["reason"]} for r in rows]
    return [markdown_table(table, list(table[0])), ""]


def summary_markdown(summary: Mapping, *, link: str | None = None) -> list[str]:
    """The lines a report shows of an inspection's :meth:`~featx.audit.Inspection.summary`:
    counts per kind, leaked images per split, the threshold and the notes (``link``: where the
    galleries are)."""
    counts = summary.get("counts") or {}
    lines = ["| kind | findings | meaning |", "| --- | ---: | --- |"]
    lines += [f"| {k} | {counts.get(k, 0)} | {meaning} |" for k, meaning in KINDS.items()]
    lines.append("")
    for split, n in (summary.get("leaked") or {}).items():
        if n:
            lines.append(f"**Warning:** {n} {split} image(s) have a twin in the training split "
                         "(exact or near copies): their scores measure memory, not "
                         "generalisation.")
            lines.append("")
    lines.append(f"{summary.get('calibration', '')}; outliers: mean cosine distance to the "
                 f"nearest training images above {summary.get('outlier_distance', 0):.4f} "
                 "(Q3 + 1.5 IQR of the training images' own).")
    lines.append("")
    lines += [f"- {note}" for note in summary.get("notes") or []]
    if summary.get("notes"):
        lines.append("")
    if link:
        lines += [f"Galleries of every kind: [{link}](<{link}>).", ""]
    return lines


def write_inspection(inspection, out_dir: str | os.PathLike, *,
                     clean_list: str | os.PathLike | None = None,
                     drop: Sequence[str] = ("exact_duplicate", "near_duplicate", "leak"),
                     gallery: int = 24) -> dict[str, Path]:
    """Write an :class:`~featx.audit.Inspection` into ``out_dir``.

    ``findings.csv`` (one row per finding, :data:`featx.audit.COLUMNS`), ``scores.csv`` (one
    row per image), ``report.md`` (counts, class health, and for each kind a gallery of its
    ``gallery`` most certain findings: thumbnails linked to the images, twins side by side,
    given and suspected labels) and ``thumbs/``; with ``clean_list``, a CSV ``path,label,split``
    of the images not flagged as one of ``drop``, which featx reads back as DATA.

    Returns
    -------
    dict
        File name -> path written.

    Raises
    ------
    OutputExistsError
        When a path to write holds something featx did not write (checked first; left as is).
    """
    out = Path(out_dir)
    targets = [out / name for name in FILES] + ([Path(clean_list)] if clean_list else [])
    check_outputs(targets, param="out")
    if clean_list:
        clean_text = inspection.clean_csv(drop)
    out.mkdir(parents=True, exist_ok=True)
    findings = inspection.findings
    shown = {k: findings.of_kind(k)[:gallery] for k in KINDS}
    wanted = []
    for kind, rows in shown.items():
        if kind == "skipped":
            continue
        for r in rows:
            wanted.append(r["path"])
            if kind in _PAIRS:
                wanted.append(r["other_path"])
    thumbs: dict[str, str] = {}
    with staged(out / "thumbs", param="out") as folder:
        folder.mkdir()
        for path in dict.fromkeys(wanted):
            data = _thumbnail(path)
            if data is not None:
                thumbs[path] = _thumb_name(path)
                (folder / thumbs[path]).write_bytes(data)
    files = {"thumbs": out / "thumbs"}
    files["findings.csv"] = write_output(out / "findings.csv", findings.to_csv(), param="out")
    files["scores.csv"] = write_output(out / "scores.csv",
                                       csv_text(inspection.scores, _SCORE_COLUMNS), param="out")
    files["report.md"] = write_output(out / "report.md", _markdown(inspection, out, shown,
                                                                   thumbs), param="out")
    if clean_list:
        files["clean_list"] = write_output(clean_list, clean_text, param="clean_list")
    return files


def _markdown(inspection, out: Path, shown: Mapping, thumbs: Mapping[str, str]) -> str:
    s = inspection.summary()
    sizes = ", ".join(f"{k}: {v} images" for k, v in inspection.splits.items())
    lines = ["# Know your data", "",
             f"{inspection.source or 'data'} · {sizes} · {len(inspection.class_names)} classes · "
             f"{len(inspection.findings)} findings (all in [findings.csv](findings.csv); "
             "one row per image in [scores.csv](scores.csv)) · "
             f"{inspection.timings.get('total_s', 0):.1f} s, "
             f"{inspection.backbone_passes} backbone passes", "",
             "featx only reads your images: nothing was edited, moved or deleted.", "",
             "## Summary", ""]
    lines += summary_markdown(s)
    lines += ["## Class health", "",
              markdown_table(inspection.class_health,
                             ["class", *inspection.splits,
                              *(["note"] if any("note" in r for r in inspection.class_health)
                                else [])]), ""]
    for kind, rows in shown.items():
        total = len(inspection.findings.of_kind(kind))
        if not total:
            continue
        more = f" (the {len(rows)} most certain of {total})" if total > len(rows) else ""
        lines += [f"## {kind.replace('_', ' ').capitalize()}: {total}{more}", "",
                  KINDS[kind][0].upper() + KINDS[kind][1:] + ".", ""]
        lines += _gallery(kind, rows, out, thumbs)
    return "\n".join(lines) + "\n"

