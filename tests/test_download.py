"""Tests of lebm.data.download against a loopback HTTP server and file:// URLs."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import importlib
import io
import socket
import struct
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lebm.data import DownloadError, Resource, download, load_dataset, sources

# `lebm.data.download` is the function (the package re-exports it); this is the module.
download_module = importlib.import_module("lebm.data.download")


class Server:
    """A loopback HTTP server over a folder that records the paths it was asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    folder = tmp_path / "served"
    folder.mkdir()
    srv = Server(folder)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LEBM_DATA", str(cache))
    monkeypatch.setattr(sources, "DEFAULT_DIRS", {})
    return cache


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def serve_files(server: Server, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (server.folder / name).write_bytes(data)


def register(monkeypatch: pytest.MonkeyPatch, name: str, resources: list[Resource]) -> None:
    monkeypatch.setitem(download_module.RESOURCES, name, resources)


# --------------------------------------------------------------------------- download()


def test_download_verifies_and_is_idempotent(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"a.bin": b"alpha" * 1000, "b.bin": bytes(range(256)) * 50}
    serve_files(server, files)
    register(
        monkeypatch,
        "toyset",
        [
            Resource(f"{server.url}/a.bin", "a.bin", md5(files["a.bin"])),
            Resource(f"{server.url}/b.bin", "b.bin", hashlib.sha256(files["b.bin"]).hexdigest()),
        ],
    )
    dest = download("toyset", tmp_path / "dest")
    assert dest == tmp_path / "dest"
    assert sorted(p.name for p in dest.iterdir()) == ["a.bin", "b.bin"]  # no .part left over
    assert (dest / "b.bin").read_bytes() == files["b.bin"]
    assert server.requests == ["/a.bin", "/b.bin"]
    download("toyset", tmp_path / "dest")
    assert len(server.requests) == 2  # already there with the right checksum: no request
    download("toyset", tmp_path / "dest", force=True)
    assert len(server.requests) == 4


def test_download_defaults_to_cache_dir(
    server: Server, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_files(server, {"a.bin": b"x"})
    register(monkeypatch, "toyset", [Resource(f"{server.url}/a.bin", "a.bin", md5(b"x"))])
    assert download("toyset") == isolated_cache / "toyset"
    assert (isolated_cache / "toyset" / "a.bin").read_bytes() == b"x"


def test_checksum_mismatch_deletes_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_files(server, {"a.bin": b"corrupted bytes"})
    register(monkeypatch, "toyset", [Resource(f"{server.url}/a.bin", "a.bin", md5(b"good"))])
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download("toyset", tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_wrong_existing_file_is_replaced(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_files(server, {"a.bin": b"good"})
    register(monkeypatch, "toyset", [Resource(f"{server.url}/a.bin", "a.bin", md5(b"good"))])
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "a.bin").write_bytes(b"stale")
    download("toyset", tmp_path / "dest")
    assert (tmp_path / "dest" / "a.bin").read_bytes() == b"good"
    assert len(server.requests) == 1


def test_file_url_and_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(b"payload")
    url = (mirror / "a.bin").as_uri()
    register(monkeypatch, "toyset", [Resource(url, "a.bin", md5(b"payload"))])
    assert (download("toyset", tmp_path / "d1") / "a.bin").read_bytes() == b"payload"
    register(
        monkeypatch,
        "toyset",
        [Resource("https://example.invalid/x/a.bin", "a.bin", md5(b"payload"))],
    )
    dest = download("toyset", tmp_path / "d2", base_url=mirror.as_uri())
    assert (dest / "a.bin").read_bytes() == b"payload"


def test_network_error_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register(monkeypatch, "toyset", [Resource(f"http://127.0.0.1:{port}/a.bin", "a.bin", "0" * 32)])
    with pytest.raises(DownloadError, match="offline") as info:
        download("toyset", tmp_path / "dest")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "dest") in message
    assert list((tmp_path / "dest").iterdir()) == []


def test_http_404_is_download_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("svhn", tmp_path / "dest", base_url=server.url)


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="mnist"):
        download("imagenet")


def test_registry_has_the_standard_files() -> None:
    names = {r.filename for r in download_module.RESOURCES["mnist"]}
    assert names == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert set(download_module.RESOURCES) == {"mnist", "fashion-mnist", "cifar10", "svhn"}
    for resources in download_module.RESOURCES.values():
        for r in resources:
            assert r.algorithm == "md5" and r.url.endswith(r.filename)


# --------------------------------------------------------------------------- loaders + download


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def fake_idx_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", 8), ("t10k", 4)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = idx_gz(rng.integers(0, 256, (n, 28, 28)))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = idx_gz(np.arange(n) % 10)
    return files


def patch_registry(
    monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes], host: str | None = None
) -> None:
    """Keep the real registry entry's file names but expect the test files' md5s (and, with
    ``host``, fetch them from there)."""
    patched = []
    for r in download_module.RESOURCES[name]:
        url = r.url if host is None else f"{host}/{r.filename}"
        patched.append(dataclasses.replace(r, url=url, checksum=md5(files[r.filename])))
    monkeypatch.setitem(download_module.RESOURCES, name, patched)


def test_mnist_registry_via_mirror_then_load(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = fake_idx_files()
    serve_files(server, files)
    patch_registry(monkeypatch, "mnist", files)
    dest = download("mnist", tmp_path / "mnist", base_url=server.url)
    assert sorted(server.requests) == sorted("/" + name for name in files)
    ds = load_dataset("mnist", "test", root=dest)
    assert len(ds) == 4 and ds.sample_shape == (1, 28, 28)


def test_load_fashion_mnist_with_download_true(
    server: Server, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = fake_idx_files()
    serve_files(server, files)
    patch_registry(monkeypatch, "fashion-mnist", files, host=server.url)
    ds = load_dataset("fashion-mnist", download=True)
    assert len(ds) == 8
    assert (isolated_cache / "fashion-mnist" / "train-labels-idx1-ubyte.gz").is_file()
    n_requests = len(server.requests)
    assert len(load_dataset("fashion-mnist", "test", download=True)) == 4
    assert len(server.requests) == n_requests  # found in the cache the second time


def test_load_cifar10_with_download_true(
    server: Server, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            record = bytes([3]) + bytes(3072)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(record) * 2
            tar.addfile(info, io.BytesIO(record * 2))
    files = {"cifar-10-binary.tar.gz": buffer.getvalue()}
    serve_files(server, files)
    patch_registry(monkeypatch, "cifar10", files, host=server.url)
    ds = load_dataset("cifar10", "test", download=True)
    assert len(ds) == 2 and ds.targets is not None and ds.targets.tolist() == [3, 3]
    assert len(load_dataset("cifar10", "train")) == 10  # extracted into the cache
    folder = isolated_cache / "cifar10"
    with pytest.raises(DownloadError):  # a failed forced re-download keeps the good file
        download("cifar10", base_url=server.url + "/missing", force=True)
    assert (folder / "cifar-10-binary.tar.gz").read_bytes() == files["cifar-10-binary.tar.gz"]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
