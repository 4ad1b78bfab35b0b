"""What a batch-mapping run leaves beside its maps: the STAC catalogue, the VRT mosaics and the
run report — per scene and in total the area per class in hectares, pixel counts, mean
confidence, timing and failures, as ``report.json``, ``report.csv`` and a self-contained
``report.html`` (quicklooks and per-class area charts embedded, nothing fetched).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from hsikit import __version__
from hsikit.classes import ClassTable

REPORT = "report"


def write_run_outputs(outcome: Any, bundle: Any, settings: Any) -> dict[str, Any]:
    """STAC, mosaics and report for ``outcome`` (a :class:`hsikit.jobs.mapping.RunOutcome`)."""
    from hsikit.jobs.run_layout import STAC, map_path
    from hsikit.writers.classmap import sidecar_paths
    from hsikit.writers.mosaic import MappedScene, write_mosaics
    from hsikit.writers.stac import MapRecord, write_stac

    folder: Path = outcome.folder
    table = bundle.classes
    planned = {p.id: p for p in outcome.manifest.scenes}
    mapped = [k for k, s in outcome.scenes.items() if s.summary is not None and s.error is None]
    records = []
    for scene_id in mapped:
        scene, summary = planned[scene_id], outcome.scenes[scene_id].summary
        path = map_path(folder, scene_id)
        records.append(
            MapRecord(
                id=scene_id,
                map_path=path,
                confidence_path=sidecar_paths(path)["confidence"] if settings.confidence else None,
                grid=scene.grid.grid,
                source=scene.source,
                source_item=scene.item,
                pixels={c["value"]: c["pixels"] for c in summary["classes"]},
            )
        )
    files: dict[str, Any] = {}
    when = datetime.fromisoformat(outcome.manifest.created)
    if records:
        files["stac"] = write_stac(
            records, folder / STAC, table, bundle=settings.bundle, when=when, run_id=folder.name
        )
        dtype = "uint8" if table.max_value <= 255 else "uint16"
        files["mosaics"] = write_mosaics(
            [MappedScene(r.map_path, r.grid) for r in records], folder, table, dtype
        )
    report = run_report(outcome, table)
    files.update(write_report(report, folder, table))
    return files


def run_report(outcome: Any, table: ClassTable) -> dict:
    """The report as plain data: one entry per scene (mapped or failed) and the totals."""
    scenes = []
    for planned in outcome.manifest.scenes:
        state = outcome.scenes[planned.id]
        entry = {
            "id": planned.id,
            "source": planned.source,
            "status": "failed" if state.error else "mapped",
            "error": state.error,
            "tile_seconds": round(state.seconds, 3),
        }
        if state.error is None and state.summary is not None:
            entry.update(state.summary)
        scenes.append(entry)
    mapped = [s for s in scenes if s["status"] == "mapped"]
    totals = []
    for index, e in enumerate(table.entries):
        per_scene = [s["classes"][index] for s in mapped]
        hectares = [c["hectares"] for c in per_scene]
        pixels = sum(c["pixels"] for c in per_scene)
        weighted = [c["mean_confidence"] * c["pixels"] for c in per_scene if c["mean_confidence"]]
        totals.append(
            {
                "value": e.value,
                "name": e.name,
                "colour": "#{:02x}{:02x}{:02x}".format(*e.colour),
                "pixels": pixels,
                "hectares": None if None in hectares else float(sum(hectares)),
                "mean_confidence": sum(weighted) / pixels if weighted and pixels else None,
            }
        )
    return {
        "software": f"hsikit {__version__}",
        "created": outcome.manifest.created,
        "bundle": outcome.manifest.bundle.model_dump(),
        "options": outcome.manifest.options.model_dump(),
        "scenes": scenes,
        "total": {
            "scenes": len(scenes),
            "mapped": len(mapped),
            "failed": len(scenes) - len(mapped),
            "tiles_run": outcome.tiles_run,
            "wall_seconds": round(outcome.wall_seconds, 3),
            "classes": totals,
        },
    }


def write_report(report: dict, folder: Path, table: ClassTable) -> dict[str, Path]:
    from hsikit.writers.atomic import write_text

    paths = {kind: folder / f"{REPORT}.{kind}" for kind in ("json", "csv", "html")}
    write_text(paths["json"], json.dumps(report, indent=1), what="the run report")
    write_text(paths["csv"], _csv(report), what="the run report")
    write_text(paths["html"], _html(report, folder, table), what="the run report")
    return paths


def _csv(report: dict) -> str:
    """One row per scene and class (and per failed scene), then the totals as scene ``ALL``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "scene",
            "source",
            "status",
            "class_value",
            "class_name",
            "pixels",
            "hectares",
            "mean_confidence",
            "error",
        ]
    )

    def class_row(scene: str, source: str, status: str, c: dict) -> list:
        return [
            scene,
            source,
            status,
            c["value"],
            c["name"],
            c["pixels"],
            _number(c["hectares"]),
            _number(c["mean_confidence"]),
            "",
        ]

    for scene in report["scenes"]:
        if scene["status"] != "mapped":
            writer.writerow(
                [scene["id"], scene["source"], "failed", "", "", "", "", "", scene["error"]]
            )
            continue
        for c in scene["classes"]:
            writer.writerow(class_row(scene["id"], scene["source"], "mapped", c))
    for c in report["total"]["classes"]:
        writer.writerow(class_row("ALL", "", "", c))
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _png_data(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _area_chart(classes: list[dict], path: Path, title: str) -> Path:
    """Horizontal bars per class in the class colours: hectares, or pixels without a CRS."""
    import matplotlib.pyplot as plt  # after hsikit.writers.quicklook chose the Agg backend

    area = all(c["hectares"] is not None for c in classes)
    values = [c["hectares"] if area else c["pixels"] for c in classes]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(classes) + 1.2), dpi=100)
    ax.barh(
        [c["name"] for c in classes],
        values,
        color=[c["colour"] for c in classes],
        edgecolor="black",
        linewidth=0.4,
    )
    ax.invert_yaxis()
    ax.set_xlabel("area (ha)" if area else "pixels (no CRS: no ground area)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def _html(report: dict, folder: Path, table: ClassTable) -> str:
    from hsikit.jobs.run_layout import map_path
    from hsikit.writers.quicklook import class_map_png

    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>hsikit map run {esc(folder.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px;"
        "text-align:right}th{background:#eee}td.l{text-align:left}.err{color:#b00}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>Batch mapping: {esc(folder.name)}</h1>",
        f"<p>{esc(report['software'])}, planned {esc(report['created'])}; bundle "
        f"<code>{esc(report['bundle']['path'])}</code> (sha256 "
        f"<code>{esc(report['bundle']['sha256'][:16])}…</code>).</p>",
    ]
    total = report["total"]
    parts.append(
        f"<p>{total['mapped']} of {total['scenes']} scenes mapped, {total['tiles_run']} tiles "
        f"run in {total['wall_seconds']:.1f} s.</p>"
    )
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        if total["mapped"]:
            chart = _area_chart(total["classes"], scratch_path / "total.png", "all scenes")
            parts.append("<h2>All scenes</h2>" + _class_table(total["classes"]))
            parts.append(f"<img alt='area per class, all scenes' src='{_png_data(chart)}'>")
        for scene in report["scenes"]:
            parts.append(f"<h2>{esc(scene['id'])}</h2><p><code>{esc(scene['source'])}</code></p>")
            if scene["status"] != "mapped":
                parts.append(f"<p class='err'>failed: {esc(scene['error'] or '')}</p>")
                continue
            look = class_map_png(
                map_path(folder, scene["id"]), scratch_path / f"{scene['id']}_map.png"
            )
            chart = _area_chart(scene["classes"], scratch_path / f"{scene['id']}.png", scene["id"])
            note = f" ({esc(scene['area_note'])})" if scene.get("area_note") else ""
            parts.append(
                f"<p>{scene['classified_pixels']} pixels classified, {scene['nodata_pixels']} "
                f"nodata{note}; tiles {scene['tile_seconds']:.1f} s, assembly "
                f"{scene['assembly_seconds']:.1f} s.</p>"
            )
            parts.append(_class_table(scene["classes"]))
            parts.append(
                f"<img alt='map of {esc(scene['id'])}' src='{_png_data(look)}'>"
                f"<img alt='area per class, {esc(scene['id'])}' src='{_png_data(chart)}'>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _class_table(classes: list[dict]) -> str:
    esc = html.escape
    rows = [
        "<table><tr><th>value</th><th>class</th><th>pixels</th><th>hectares</th>"
        "<th>mean confidence</th></tr>"
    ]
    for c in classes:
        hectares = "—" if c["hectares"] is None else f"{c['hectares']:,.2f}"
        confidence = "—" if c["mean_confidence"] is None else f"{c['mean_confidence']:.1%}"
        swatch = f"<span style='color:{c['colour']}'>■</span> "
        rows.append(
            f"<tr><td>{c['value']}</td><td class='l'>{swatch}{esc(c['name'])}</td>"
            f"<td>{c['pixels']:,}</td><td>{hectares}</td><td>{confidence}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)
