"""What ``hsikit info`` reports about a model file — a trained bundle or a pretrained encoder —
as a plain dict: which model, what input it expects, what it was trained on and how it scored,
without the user opening the JSON header by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hsikit.bundle import PretrainedMeta, load_bundle, read_description, read_safetensors


def is_model_file(path: str) -> bool:
    """Bundles and pretrained encoders are safetensors files; scenes never are."""
    return Path(path).suffix.lower() == ".safetensors"


def _wavelength_range(wavelengths: list[float | None]) -> list[float] | None:
    known = [w for w in wavelengths if w is not None]
    return [min(known), max(known)] if known else None


def summarize_model_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if read_safetensors(path)[0].get("task") == "restoration":
        return _summarize_restorer(path)
    meta, arrays = read_description(path)
    if isinstance(meta, PretrainedMeta):
        training, config = meta.training, meta.training.get("config", {})
        return {
            "path": str(path),
            "kind": "pretrained encoder",
            "model": meta.model,
            "hsikit_version": meta.hsikit_version,
            "objective": meta.objective,
            "bands": len(meta.band_wavelengths),
            "wavelength_range_nm": _wavelength_range(meta.band_wavelengths),
            "patch_size": meta.patch_size,
            "stored_values": int(sum(a.size for k, a in arrays.items() if k.startswith("model."))),
            "trained_on": _sources(config),
            "split": config.get("split"),
            "train_patches": training.get("train_patches"),
            "heldout_patches": training.get("heldout_patches"),
            "heldout_loss": [
                training.get("heldout_loss_before"),
                training.get("heldout_loss_after"),
            ],
        }
    bundle = load_bundle(path)  # a full load: a file that would not classify is refused here
    config = meta.training.get("config", {})
    return {
        "path": str(path),
        "kind": "classifier bundle",
        "model": meta.model.name,
        "family": meta.model.family,
        "members": meta.model.members,
        "hsikit_version": meta.hsikit_version,
        "parameters": bundle.parameter_count,
        "bands": len(meta.band_names),
        "wavelength_range_nm": _wavelength_range(meta.band_wavelengths),
        "band_agnostic": bundle.band_agnostic,
        "pca": meta.pca,
        "patch_size": meta.patch_size,
        "classes": [entry["name"] for entry in meta.classes],
        "trained_on": meta.training.get("sources", []),
        "skipped": meta.training.get("skipped", []),
        "split": meta.training.get("split_protocol"),
        "seed": config.get("seed"),
        "fine_tuned_from": config.get("init"),
        "lora": bool(config.get("lora")),
        "smoothing": meta.smoothing.model_dump() if meta.smoothing else None,
        "test_metrics": {
            k: meta.metrics[k]
            for k in ("oa", "aa", "kappa", "n_test", "unsmoothed")
            if k in meta.metrics
        },
    }


def _summarize_restorer(path: Path) -> dict[str, Any]:
    """A restoration bundle: its task, model, bands, what it learnt and how it scored on its
    test region (against the degraded input, or bicubic for super-resolution)."""
    from hsikit.degrade import Degradation
    from hsikit.restorer import load_restorer

    restorer = load_restorer(path)  # a full load: a file that would not restore is refused
    meta, training = restorer.meta, restorer.meta.training
    return {
        "path": str(path),
        "kind": "restoration bundle",
        "job": meta.job,
        "model": meta.model.name,
        "hsikit_version": meta.hsikit_version,
        "parameters": int(sum(p.numel() for p in restorer.model.parameters())),
        "bands": meta.in_bands,
        "wavelength_range_nm": _wavelength_range(meta.band_wavelengths),
        "scale": meta.scale,
        "data_range": list(meta.data_range),
        "degradations": [Degradation.model_validate(d).describe() for d in meta.degradations],
        "trained_on": training.get("sources", []),
        "regions": training.get("regions", []),
        "command": training.get("command"),
        "data_checksum": training.get("data_checksum"),
        "test_metrics": meta.metrics,
    }


def _sources(config: dict) -> list[str]:
    return [config["dataset"]] if config.get("dataset") else list(config.get("scenes", []))
