"""Commands on scenes: info, quicklook, convert, rasterize."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hsikit.cli.app import (
    ClassTableOpt,
    LayerOpt,
    MemberOpt,
    OutputOpt,
    SceneArg,
    TimeOpt,
    app,
    out,
    scene_arg,
)
from hsikit.cli.common import check_map_outputs, with_sidecars
from hsikit.data.labels import VECTOR_SUFFIXES


@app.command()
def info(
    scene: SceneArg,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """Describe a scene (format, grid, bands, wavelengths, nodata; a class map's pixels and
    hectares per class), a model file (.safetensors: model, input, classes, training data, test
    scores) or a vector labels file (layers, fields, classes, CRS, extent)."""
    from hsikit.info import summarize
    from hsikit.model_info import is_model_file, summarize_model_file

    if is_model_file(scene):
        summary = summarize_model_file(scene)
        rows = _model_file_rows(summary)
    elif Path(scene).suffix.lower() in VECTOR_SUFFIXES and Path(scene).is_file():
        from hsikit.data.vector_layers import summarize_vector

        summary = summarize_vector(Path(scene))
        rows = _vector_rows(summary)
    else:
        summary = summarize(scene_arg(scene, member, time))
        rows = _scene_rows(summary)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(show_header=False, title=summary["path"], title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    out.print(table)


def _vector_rows(summary: dict) -> list[tuple[str, Any]]:
    """One block per layer: geometry, features, CRS, extent, and each field's values."""
    rows: list[tuple[str, Any]] = [("format", summary["format"])]
    for layer in summary["layers"]:
        left, bottom, right, top = layer["bounds"]
        rows += [
            ("layer", f"{layer['name']}: {layer['features']} {'/'.join(layer['geometry'])}"),
            ("  CRS", layer["crs"] or "none"),
            ("  extent", f"{left:.15g}, {bottom:.15g}, {right:.15g}, {top:.15g}"),
        ]
        for field, about in layer["fields"].items():
            listed = ", ".join(f"{k} ({v})" for k, v in about["values"].items())
            more = about["distinct"] - len(about["values"])
            styled = " — QGIS style colours" if field in layer["qgis_style_on"] else ""
            rows.append(
                (
                    f"  {field}",
                    f"{about['type']}, {about['distinct']} values: {listed}"
                    + (f" … and {more} more" if more > 0 else "")
                    + styled,
                )
            )
    return rows


def _wavelengths_text(summary: dict) -> str:
    wl = summary["wavelength_range_nm"]
    return "unknown" if wl is None else f"{wl[0]:.1f}–{wl[1]:.1f} nm"


def _scene_rows(summary: dict) -> list[tuple[str, Any]]:
    names = summary["band_names"]
    rows = [
        ("format", summary["format"]),
        ("size", f"{summary['bands']} bands × {summary['rows']} rows × {summary['cols']} cols"),
        ("dtype", summary["dtype"]),
        ("CRS", summary["crs"] or "none (pixel grid)"),
        (
            "resolution",
            "{:.15g} × {:.15g}".format(*summary["resolution"])
            + (" (rotated)" if summary["rotated"] else ""),
        ),
        # every digit a coordinate has: metres of a UTM northing are not rounded away
        (
            "bounds",
            "{left:.15g}, {bottom:.15g}, {right:.15g}, {top:.15g}".format(**summary["bounds"]),
        ),
        (
            "nodata",
            f"{summary['nodata']} — {summary['nodata_fraction']:.2%} of pixels"
            + ("" if summary["nodata_fraction_exact"] else " (estimated from a sample)"),
        ),
        (
            "wavelengths",
            _wavelengths_text(summary)
            + (
                ""
                if summary["wavelength_range_nm"] is None
                else f" (from {summary['spectral_metadata_source']})"
            ),
        ),
        ("bad bands", ", ".join(map(str, summary["bad_bands"])) or "none"),
        ("scale / offset", f"{_few(summary['scale'])} / {_few(summary['offset'])}"),
        ("band names", ", ".join(names[:6]) + (f", … ({len(names)})" if len(names) > 6 else "")),
    ]
    if summary["ground_truth"]:
        gt = summary["ground_truth"]
        rows.append(
            ("ground truth", f"{gt['classes']} classes, {gt['labelled_pixels']} labelled pixels")
        )
    rows += [
        ("off-grid truth", f"{truth['description']}; {truth['train']}")
        for truth in summary["ground_truth_candidates"]
    ]
    rows += _class_rows(summary)
    return rows + [("note", note) for note in summary["notes"]]


def _class_rows(summary: dict) -> list[tuple[str, Any]]:
    """A class map's classes, one row each: value, name, pixels and hectares."""
    if summary["classes"] is None:
        return []
    note = summary["class_area_note"]
    rows: list[tuple[str, Any]] = [
        ("classes", f"{len(summary['classes'])}" + ("" if note is None else f" (no areas: {note})"))
    ]
    for entry in summary["classes"]:
        area = "" if entry["hectares"] is None else f", {entry['hectares']:,.2f} ha"
        rows.append((f"  {entry['value']}", f"{entry['name']}: {entry['pixels']:,} pixels{area}"))
    return rows


def _model_file_rows(summary: dict) -> list[tuple[str, Any]]:
    bands = f"{summary['bands']} bands, {_wavelengths_text(summary)}"
    if summary["kind"] == "restoration bundle":
        return _restorer_rows(summary, bands)
    trained_on = ", ".join(summary["trained_on"]) or "unrecorded"
    if summary["split"] not in (None, "none"):
        seed = summary.get("seed")
        trained_on += f" ({summary['split']} split{'' if seed is None else f', seed {seed}'})"
    if summary["kind"] == "pretrained encoder":
        before, after = summary["heldout_loss"]
        return [
            (
                "kind",
                f"pretrained encoder ({summary['objective']}; hsikit "
                f"{summary['hsikit_version']}) — fine-tune it with 'hsikit train --init'",
            ),
            ("model", f"{summary['model']}, {summary['stored_values']:,} stored values"),
            ("input", f"{bands}; {summary['patch_size']} × {summary['patch_size']} patches"),
            ("pretrained on", f"{trained_on}: {summary['train_patches']:,} patches"),
            (
                "held-out loss",
                f"{before:.4f} → {after:.4f} on {summary['heldout_patches']:,} "
                "patches (reconstruction)",
            ),
        ]
    classes = summary["classes"]
    preprocessing = f"PCA {summary['pca']}" if summary["pca"] else "no PCA"
    agnostic = "; runs on any subset with wavelengths" if summary["band_agnostic"] else ""
    rows = [
        ("kind", f"classifier bundle (hsikit {summary['hsikit_version']})"),
        (
            "model",
            f"{summary['model']} ({summary['family']}), {summary['parameters']:,} "
            "parameters"
            + (
                f" in an ensemble of {summary['members']} networks (class probabilities averaged)"
                if summary["members"] > 1
                else ""
            ),
        ),
        (
            "input",
            f"{bands}{agnostic}; {preprocessing}; {summary['patch_size']} × "
            f"{summary['patch_size']} patches",
        ),
        (
            "classes",
            f"{len(classes)}: " + ", ".join(classes[:8]) + (", …" if len(classes) > 8 else ""),
        ),
        ("trained on", trained_on),
        *(("skipped", note) for note in summary["skipped"]),
    ]
    if summary["fine_tuned_from"]:
        rows.append(
            (
                "fine-tuned from",
                summary["fine_tuned_from"] + (" (LoRA, merged)" if summary["lora"] else ""),
            )
        )
    if summary["smoothing"]:
        smoothing = summary["smoothing"]
        guide = (
            f"first {min(smoothing['guide'], summary['pca'])} principal component(s)"
            if summary["pca"]
            else "mean band"
        )
        rows.append(
            (
                "smoothing",
                f"guided filter, radius {smoothing['radius']}, ε "
                f"{smoothing['eps']:g}, guided by the {guide} (every map; "
                "'hsikit classify --smooth 0' turns it off)",
            )
        )
    scores = summary["test_metrics"]
    text = (
        f"OA {scores['oa']:.2%}, AA {scores['aa']:.2%}, kappa {scores['kappa']:.4f} on "
        f"{scores['n_test']:,} test pixels"
        if scores.get("n_test")
        else "none (no test pixels)"
    )
    if "unsmoothed" in scores:
        text += f" (unsmoothed: OA {scores['unsmoothed']['oa']:.2%})"
    return rows + [("test scores", text)]


def _restorer_rows(summary: dict, bands: str) -> list[tuple[str, Any]]:
    low, high = summary["data_range"]
    regions = "; ".join(
        ", ".join(f"{role} {pixels:,} px" for role, pixels in scene.items())
        for scene in summary["regions"]
    )
    rows = [
        (
            "kind",
            f"restoration bundle (hsikit {summary['hsikit_version']}) — use it with "
            f"'hsikit {summary['job']}'",
        ),
        ("model", f"{summary['model']}, {summary['parameters']:,} parameters"),
        (
            "input",
            f"{bands}; values scaled from {low:g}–{high:g}"
            + (f"; output pixels ×{summary['scale']} smaller" if summary["scale"] > 1 else ""),
        ),
        ("learnt", "; ".join(summary["degradations"])),
        ("trained on", f"{', '.join(summary['trained_on']) or 'unrecorded'} ({regions})"),
        ("made by", f"{summary['command'] or 'unrecorded'} (data {summary['data_checksum']})"),
    ]
    for task, scores in summary["test_metrics"].items():
        restored = scores["restored"]
        anchor = "bicubic" if "bicubic" in scores else "input"  # super-resolution: bicubic
        given = scores[anchor]
        rows.append(
            (
                f"test: {task}",
                f"MPSNR {restored['mpsnr']:.2f} dB ({anchor} {given['mpsnr']:.2f}), SAM "
                f"{restored['sam_deg']:.2f}° ({anchor} {given['sam_deg']:.2f}) on "
                f"{restored['pixels']:,} px",
            )
        )
    return rows


def _few(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values[:3]) + (" …" if len(values) > 3 else "")


@app.command()
def quicklook(
    scene: SceneArg,
    output: OutputOpt,
    bands: Annotated[
        str | None, typer.Option(help="Three 1-based bands, e.g. 30,20,10 (or one, for grey).")
    ] = None,
    max_size: Annotated[int, typer.Option(min=1, help="Longest side in pixels.")] = 1024,
    member: MemberOpt = None,
    time: TimeOpt = None,
) -> None:
    """PNG quicklook: true colour for cubes, a legend for class maps."""
    from hsikit.writers.classmap import read_class_table
    from hsikit.writers.quicklook import (
        bands_shown,
        check_png_output,
        class_map_quicklook,
        decimation,
        display_bands,
        parse_bands,
        scene_quicklook,
    )

    chosen = None if bands is None else parse_bands(bands)
    opened = scene_arg(scene, member, time)
    check_png_output(output)
    table = read_class_table(opened.path) if opened.format == "GeoTIFF" else None
    if table is not None:
        step = decimation(opened.height, opened.width, max_size)
        class_map_quicklook(
            opened.read_raw(bands=[0], step=step)[0],
            table,
            output,
            title=Path(opened.path).name,
            source=opened.path,
        )
        out.print(f"wrote {output}")
        return
    scene_quicklook(opened, output, chosen, max_size)
    shown = bands_shown(opened, chosen, display_bands(opened, chosen))
    out.print(f"wrote {output}: {shown}", highlight=False)


@app.command()
def convert(
    scene: SceneArg, output: OutputOpt, member: MemberOpt = None, time: TimeOpt = None
) -> None:
    """Copy a cube to GeoTIFF (.tif), ENVI (.hdr) or Zarr (.zarr) with its band metadata."""
    from hsikit.progress import progress_bar
    from hsikit.writers.cube import check_cube_output, write_cube

    opened = scene_arg(scene, member, time)
    check_cube_output(output)
    with progress_bar("converting") as tell:
        written = write_cube(opened, output, on_window=tell)
    out.print(f"wrote {written}")


@app.command()
def rasterize(
    scene: SceneArg,
    labels: Annotated[
        Path, typer.Argument(help="Vector (GeoPackage, GeoJSON, Shapefile) or raster labels.")
    ],
    output: OutputOpt,
    class_field: Annotated[str | None, typer.Option(help="Field holding the class.")] = None,
    name_field: Annotated[
        str | None, typer.Option(help="Field with class names for numeric classes.")
    ] = None,
    layer: LayerOpt = None,
    class_table: ClassTableOpt = None,
    png: Annotated[Path | None, typer.Option(help="Also write a PNG with a legend.")] = None,
) -> None:
    """Put labels on the scene grid and write them as a class-map COG (in the class colours of
    the labels' QGIS style, when they have one)."""
    from hsikit.data.labels import load_labels
    from hsikit.writers.classmap import write_class_map
    from hsikit.writers.provenance import provenance
    from hsikit.writers.quicklook import class_map_quicklook

    opened = scene_arg(scene)
    check_map_outputs(output, png, inputs=[labels])
    placed = load_labels(labels, opened, class_field, name_field, layer, class_table)
    write_class_map(
        output,
        placed.values,
        opened.grid,
        placed.classes,
        tags=provenance(source=opened.path, labels=labels),
    )
    if png is not None:
        class_map_quicklook(
            placed.values, placed.classes, png, title=labels.name, source=str(labels)
        )
    counts = placed.counts()
    out.print(
        f"wrote {with_sidecars(output)}: {len(placed.classes)} classes, "
        f"{sum(counts.values())} labelled pixels"
    )
