"""Download the public image data sets into a cache folder, with checksums.

``download("mnist")`` fetches the files listed in :data:`RESOURCES` into
``cache_dir() / "mnist"``. Each file is streamed into a temporary file in the
destination folder, its checksum checked, and only then renamed into place, so a
failed or interrupted download never leaves a file that looks complete. A file that is
already there with the right checksum is not fetched again.

On a machine without network, put the files by hand in the folder the error message
names (or pass ``root``) and the loaders will find them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
TIMEOUT_S = 60.0


def cache_dir() -> Path:
    """Root of the data cache: ``$LEBM_DATA`` if set, else ``~/.cache/lebm/data``."""
    env = os.environ.get("LEBM_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lebm" / "data"


class DownloadError(RuntimeError):
    """A download failed (network error or checksum mismatch); the message says what to do."""


@dataclass(frozen=True)
class Resource:
    """One file to fetch: its URL, the name to save it under, and its md5 or sha256 (hex)."""

    url: str
    filename: str
    checksum: str

    @property
    def algorithm(self) -> str:
        """``"md5"`` (32 hex digits) or ``"sha256"`` (64 hex digits)."""
        if len(self.checksum) == 32:
            return "md5"
        if len(self.checksum) == 64:
            return "sha256"
        raise ValueError(f"{self.filename}: checksum must be an md5 or sha256 hex digest")


_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx_resources(base_url: str, md5s: tuple[str, str, str, str]) -> list[Resource]:
    """The four gzipped IDX files of an MNIST-format data set under ``base_url``."""
    return [
        Resource(base_url + name, name, md5) for name, md5 in zip(_IDX_FILES, md5s, strict=True)
    ]


_SVHN = "http://ufldl.stanford.edu/housenumbers/"

RESOURCES: dict[str, list[Resource]] = {
    "mnist": _idx_resources(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "9fb629c4189551a2d022fa330f9573f3",
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    "fashion-mnist": _idx_resources(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bef4ecab320f06d8554ea6380940ec79",
            "bb300cfdad3c16e7a12a480ee83cd310",
        ),
    ),
    "cifar10": [
        Resource(
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            "cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
        ),
    ],
    "svhn": [
        Resource(_SVHN + "train_32x32.mat", "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d0373"),
        Resource(_SVHN + "test_32x32.mat", "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
    ],
}


def file_checksum(path: str | os.PathLike[str], algorithm: str) -> str:
    """Hex digest of a file's contents."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _url_for(resource: Resource, base_url: str | None) -> str:
    """The resource's URL, or the same file name under ``base_url`` (a mirror)."""
    if base_url is None:
        return resource.url
    return base_url.rstrip("/") + "/" + resource.url.rsplit("/", 1)[-1]


def _chunks(response: BinaryIO, total: int | None, desc: str) -> Iterator[bytes]:
    """Yield the response body in chunks, with a tqdm progress bar when tqdm is available."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        yield from iter(lambda: response.read(CHUNK), b"")
        return
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False) as bar:
        for chunk in iter(lambda: response.read(CHUNK), b""):
            bar.update(len(chunk))
            yield chunk


def _fetch(url: str, target: Path, resource: Resource) -> None:
    """Stream ``url`` into a temporary file next to ``target``, verify, rename into place."""
    digest = hashlib.new(resource.algorithm)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            for chunk in _chunks(resp, int(length) if length else None, target.name):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != resource.checksum.lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected {resource.algorithm} "
                f"{resource.checksum}, got {digest.hexdigest()}; the file was deleted, try again "
                "or download it by hand"
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise DownloadError(
            f"could not download {url} ({_reason(e)}); "
            + ("" if isinstance(e, urllib.error.HTTPError) else "this machine may be offline: ")
            + f"download {resource.filename} by hand and put it in {target.parent}"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)


def _reason(error: Exception) -> str:
    """A short description of a network error."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", None)
    return str(reason if reason is not None else error) or type(error).__name__


def download(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    force: bool = False,
) -> Path:
    """Download data set ``name`` (a key of :data:`RESOURCES`) and return its folder.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or ``"svhn"``.
        root: folder to put the files in; default ``cache_dir() / name``.
        base_url: fetch the same file names from this host or folder instead (a mirror,
            ``http://...`` or ``file:///...``).
        force: fetch again even if a file with the right checksum is already there.

    Raises:
        ValueError: ``name`` has no download resources.
        DownloadError: a network error, or a downloaded file with the wrong checksum
            (which is deleted).
    """
    if name not in RESOURCES:
        raise ValueError(f"no download for {name!r}; downloadable: {', '.join(sorted(RESOURCES))}")
    dest = Path(root).expanduser() if root is not None else cache_dir() / name
    dest.mkdir(parents=True, exist_ok=True)
    for resource in RESOURCES[name]:
        target = dest / resource.filename
        if not force and target.is_file():
            if file_checksum(target, resource.algorithm) == resource.checksum.lower():
                continue
        _fetch(_url_for(resource, base_url), target, resource)
    return dest
