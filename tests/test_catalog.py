"""Catalog cards, and fetch / import against a local HTTP server (interrupted, corrupted, good)."""

from __future__ import annotations

import hashlib
import http.server
import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from hsikit.data.catalog import DatasetCard, catalog, get_card, load_card
from hsikit.errors import CatalogError
from tests.conftest import REPO, assert_one_sentence_error

EXPECTED_CARDS = {
    "indian_pines",
    "salinas",
    "salinas_a",
    "pavia_university",
    "pavia_centre",
    "ksc",
    "botswana",
    "whu_hi_longkou",
    "whu_hi_honghu",
    "whu_hi_hanchuan",
    "enmap_l2a",
    "era5",
}


def test_every_card_is_valid_and_present():
    cards = catalog()
    assert set(cards) == EXPECTED_CARDS
    ip = cards["indian_pines"]
    assert len(ip.classes) == 16 and sum(ip.class_counts) == 10249
    centres, fwhm = ip.spectral.kept_centres()
    assert centres.size == 200 and 399 < centres[0] < 401 and 2480 < centres[-1] < 2500
    assert cards["pavia_university"].file("cube").sha256.startswith("28447fa8")


def test_indian_pines_band_centres_match_the_aviris_file(shared_data):
    rows = [
        line.split()
        for line in (shared_data / "indian_pines" / "92AV3C.spc").read_text().splitlines()[2:]
        if line
    ]
    card = get_card("indian_pines").spectral
    assert [float(r[0]) for r in rows] == pytest.approx(card.centres_nm, abs=1e-3)
    assert [float(r[1]) for r in rows] == pytest.approx(card.fwhm_nm, abs=1e-3)


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda c: c["classes"].append(dict(c["classes"][0])), "class values repeat"),
        (lambda c: c["files"][0].update(name="../../etc/passwd"), "plain name"),
        (lambda c: c["files"][0].update(sha256="xyz"), "files[0].sha256"),
        (lambda c: c.update(unknown_key=1), "unknown_key"),
    ],
)
def test_a_broken_card_fails(tmp_path, mutation, message):
    card = yaml.safe_load((REPO / "data_catalog" / "indian_pines.yaml").read_text())
    mutation(card)
    path = tmp_path / "indian_pines.yaml"
    path.write_text(yaml.safe_dump(card))
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_card(path)


@pytest.mark.slow
def test_cards_and_every_module_ship_inside_a_built_wheel(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("hsikit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"hsikit/data_catalog/{n}.yaml" for n in EXPECTED_CARDS} <= set(names)
    modules = {str(p.relative_to(REPO)) for p in (REPO / "hsikit").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))


# -- fetch against a local server ----------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_first_request: set[str] = set()
    requests: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        self.requests.append((name, self.headers.get("Range")))
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in self.cut_first_request:  # die half-way through the first response
            self.cut_first_request.discard(name)
            self.wfile.write(body[start : start + len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.cut_first_request, _Handler.requests = {}, set(), []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mirror", _Handler
    httpd.shutdown()
    httpd.server_close()


def _register_card(monkeypatch, payloads: dict[str, bytes]):
    """A test-only card whose files are the payloads, added to the loaded catalog."""
    card = DatasetCard.model_validate(
        {
            "name": "tiny",
            "title": "tiny",
            "kind": "scene",
            "sensor": "test",
            "description": "t",
            "licence": "CC0",
            "citation": "none",
            "files": [
                {
                    "name": name,
                    "role": role,
                    "bytes": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
                for (name, body), role in zip(payloads.items(), ["cube", "ground_truth"])
            ],
        }
    )
    monkeypatch.setitem(catalog(), "tiny", card)
    return card


def test_fetch_resumes_an_interrupted_download(server, monkeypatch, private_cache, run_cli):
    url, handler = server
    handler.files = {"cube.bin": PAYLOAD, "gt.bin": b"labels" * 10}
    handler.cut_first_request = {"cube.bin"}
    _register_card(monkeypatch, handler.files)
    first = run_cli("data", "fetch", "tiny", "--mirror", url)
    assert_one_sentence_error(first, "interrupted", "run the same command again to resume")
    folder = private_cache / "data" / "tiny"
    assert not (folder / "cube.bin").exists() and (folder / "cube.bin.part").exists()
    second = run_cli("data", "fetch", "tiny", "--mirror", url)
    assert second.code == 0, second.stderr
    assert (folder / "cube.bin").read_bytes() == PAYLOAD
    assert ("cube.bin", f"bytes={len(PAYLOAD) // 3}-") in handler.requests  # resumed, not redone
    assert not (folder / "cube.bin.part").exists()


def test_fetch_refuses_a_corrupted_download(server, monkeypatch, private_cache, run_cli):
    url, handler = server
    _register_card(monkeypatch, {"cube.bin": PAYLOAD, "gt.bin": b"x"})
    corrupted = bytearray(PAYLOAD)
    corrupted[1000] ^= 0xFF
    handler.files = {"cube.bin": bytes(corrupted), "gt.bin": b"x"}
    result = run_cli("data", "fetch", "tiny", "--mirror", url)
    assert_one_sentence_error(result, "checksum mismatch", "nothing was kept")
    folder = private_cache / "data" / "tiny"
    assert not (folder / "cube.bin").exists() and not (folder / "cube.bin.part").exists()


def test_import_verifies_checksums(tmp_path, monkeypatch, private_cache, run_cli):
    _register_card(monkeypatch, {"cube.bin": PAYLOAD, "gt.bin": b"x"})
    good, bad = tmp_path / "cube.bin", tmp_path / "other" / "cube.bin"
    good.write_bytes(PAYLOAD)
    bad.parent.mkdir()
    bad.write_bytes(PAYLOAD[:-1] + b"!")
    assert_one_sentence_error(run_cli("data", "import", "tiny", bad), "checksum mismatch")
    assert not (private_cache / "data" / "tiny" / "cube.bin").exists()
    result = run_cli("data", "import", "tiny", good)
    assert result.code == 0 and (private_cache / "data" / "tiny" / "cube.bin").is_file()


def test_fetch_without_checksum_needs_consent(run_cli):
    result = run_cli("data", "fetch", "ksc")
    assert_one_sentence_error(result, "no published sha256", "--allow-unverified")


def test_manual_download_datasets_say_where_to_go(run_cli):
    result = run_cli("data", "fetch", "whu_hi_longkou", "--allow-unverified")
    assert_one_sentence_error(result, "rsidea.whu.edu.cn", "hsikit data import whu_hi_longkou")


def test_data_list_and_info(run_cli):
    listing = run_cli("data", "list")
    assert listing.code == 0 and "indian_pines" in listing.stdout and "tensorly" in listing.stdout
    info = run_cli("data", "info", "salinas")
    assert info.code == 0 and "Lettuce_romaine_7wk" in info.stdout and "5ec1c0d2" in info.stdout
    assert_one_sentence_error(run_cli("data", "info", "nope"), "unknown dataset 'nope'")


def test_data_list_shows_whole_names_in_a_narrow_terminal(run_cli, narrow_terminal):
    listing = run_cli("data", "list")
    assert listing.code == 0
    assert max(map(len, listing.stdout.splitlines())) <= narrow_terminal
    for name in catalog():
        assert f" {name} " in listing.stdout, name


def test_loaded_cards_are_path_safe():
    for card in catalog().values():
        for spec in card.files:
            assert Path(spec.name).name == spec.name
