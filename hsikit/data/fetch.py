"""Download and import catalog files into the cache: resumable, sha256-verified, atomic.

A download goes to ``NAME.part`` (resumed with an HTTP Range request if interrupted) and is renamed
to ``NAME`` only after its sha256 matches the card. A mismatch deletes the partial file and is
refused: nothing ever appears at the final path unverified. Files whose card has no published
checksum are refused unless the caller explicitly allows unverified files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from rich.progress import Progress

from hsikit import __version__
from hsikit.data.catalog import DatasetCard, FileSpec, dataset_folder, get_card
from hsikit.errors import DownloadError, InputError

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_url(spec: FileSpec, card: DatasetCard, mirror: str | None) -> str:
    if mirror:
        url = mirror.rstrip("/") + "/" + spec.name
    elif spec.url is not None:
        url = str(spec.url)
    else:
        raise DownloadError(
            None,
            f"{card.name}: {spec.name} has no direct download link",
            f"download it from {card.download_page} and run 'hsikit data import {card.name} FILE…'",
        )
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(None, f"refusing to download from '{url}'", "use an http(s) URL")
    return url


def download(
    url: str, part: Path, total: int | None, progress: Progress | None = None, label: str = ""
) -> None:
    """Fetch ``url`` into ``part``, resuming from its current size when the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    if total is not None and offset > total:  # a stale partial file larger than the real one
        part.unlink()
        offset = 0
    if total is not None and offset == total:
        return
    headers = {"User-Agent": f"hsikit/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    task = (
        progress.add_task(label or part.name, total=total, completed=offset) if progress else None
    )
    received = offset
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=60
        ) as rsp:
            resumed = offset > 0 and rsp.status == 206
            start = offset if resumed else 0
            length = rsp.headers.get("Content-Length")
            expected_end = start + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as fh:
                received = start
                for block in iter(lambda: rsp.read(CHUNK), b""):
                    fh.write(block)
                    received += len(block)
                    if progress is not None and task is not None:
                        progress.update(task, completed=received)
            if expected_end is not None and received < expected_end:
                raise ConnectionError(f"{expected_end - received} bytes missing")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and total is not None and offset == total:
            return
        raise DownloadError(
            url,
            f"the server answered HTTP {exc.code} {exc.reason}",
            "check the URL or try again later",
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        if received == 0:
            raise DownloadError(
                url, f"could not download ({exc})", "check the network connection, or use --mirror"
            ) from exc
        raise DownloadError(
            url,
            f"the download was interrupted after {received} bytes ({exc})",
            "run the same command again to resume",
        ) from exc


def fetch(
    name: str,
    *,
    mirror: str | None = None,
    allow_unverified: bool = False,
    progress: Progress | None = None,
) -> list[Path]:
    """Download every file of dataset ``name`` into the cache; returns the verified paths."""
    card = get_card(name)
    if not card.files:
        raise DownloadError(
            None,
            f"'{name}' is a {card.kind} card with no files to fetch",
            "open your own products with 'hsikit info PATH'",
        )
    folder = dataset_folder(name)
    for spec in card.files:  # refuse before downloading anything
        if spec.sha256 is None and not allow_unverified:
            raise DownloadError(
                folder / spec.name,
                "the catalog has no published sha256 for this file",
                "pass --allow-unverified to accept it unverified",
            )
        _source_url(spec, card, mirror)
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for spec in card.files:
        final = folder / spec.name
        if final.exists() and (spec.sha256 is None or sha256_of(final) == spec.sha256):
            done.append(final)
            continue
        part = folder / (spec.name + ".part")
        download(_source_url(spec, card, mirror), part, spec.bytes, progress, spec.name)
        _verify_and_place(part, final, spec)
        done.append(final)
    return done


def _verify_and_place(candidate: Path, final: Path, spec: FileSpec) -> None:
    if spec.bytes is not None and candidate.stat().st_size != spec.bytes:
        size = candidate.stat().st_size
        candidate.unlink()
        raise DownloadError(
            final,
            f"size mismatch: got {size} bytes, the catalog says {spec.bytes}",
            "the file is corrupt or changed upstream; nothing was kept — try again",
        )
    if spec.sha256 is not None:
        digest = sha256_of(candidate)
        if digest != spec.sha256:
            candidate.unlink()
            raise DownloadError(
                final,
                f"checksum mismatch: sha256 {digest[:12]}… but the "
                f"catalog expects {spec.sha256[:12]}…",
                "the file is corrupt or changed upstream; nothing was kept",
            )
    os.replace(candidate, final)


def import_files(name: str, files: Iterable[Path]) -> list[Path]:
    """Verify files the user already has and copy them into the cache under their catalog names."""
    card = get_card(name)
    folder = dataset_folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    placed = []
    for source in map(Path, files):
        if not source.is_file():
            raise InputError(source, "no such file", "check the path")
        digest = sha256_of(source)
        spec = next((s for s in card.files if s.sha256 == digest), None) or next(
            (s for s in card.files if s.name.lower() == source.name.lower()), None
        )
        if spec is None:
            expected = ", ".join(s.name for s in card.files) or "none"
            raise InputError(
                source,
                f"not a file of dataset '{name}' (expected: {expected})",
                "check the dataset name",
            )
        if spec.sha256 is not None and digest != spec.sha256:
            raise DownloadError(
                source,
                f"checksum mismatch for {spec.name}: sha256 "
                f"{digest[:12]}… but the catalog expects {spec.sha256[:12]}…",
                "this is not the official file; nothing was imported",
            )
        final = folder / spec.name
        part = folder / (spec.name + ".part")
        shutil.copyfile(source, part)
        _verify_and_place(part, final, spec)
        placed.append(final)
    return placed


def cached_file(card: DatasetCard, role: str) -> Path | None:
    spec = card.file(role)
    if spec is None:
        return None
    path = dataset_folder(card.name) / spec.name
    return path if path.is_file() else None
