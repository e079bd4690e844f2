"""Reading a registry from a directory and over HTTP from a real server on 127.0.0.1: errors
name the registry and the file, and reads stop at their caps."""

from __future__ import annotations

import http.server
import io
import json
from pathlib import Path

import pytest

from plugin_registry import serve
from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.source import DirectorySource, HttpSource, open_source

INDEX = {"format": 1, "plugins": {}}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    (root / "index.json").write_text(json.dumps(INDEX))
    (root / "big.zip").write_bytes(b"x" * 5000)
    return root


def test_a_directory_and_a_file_url_read_the_same_index(registry: Path) -> None:
    assert isinstance(open_source(str(registry)), DirectorySource)
    assert open_source(str(registry)).read_index().plugins == {}
    assert open_source(registry.as_uri()).read_index().format == 1


def test_an_http_registry_is_read_and_capped(registry: Path) -> None:
    with serve(registry) as url, open_source(url) as source:
        assert isinstance(source, HttpSource)
        assert source.read_index().plugins == {}
        sink = io.BytesIO()
        assert source.download("big.zip", 5000, sink) == 5000
        with pytest.raises(RegistryError, match=r"big.zip is larger than 4999 bytes; refused"):
            source.download("big.zip", 4999, io.BytesIO())
        with pytest.raises(RegistryError) as caught:
            source.download("missing.zip", 10, io.BytesIO())
        assert str(caught.value) == f"{url}: missing.zip: HTTP 404 Not Found"


class _Broken(http.server.BaseHTTPRequestHandler):
    """Answers 500, or a body longer than its missing Content-Length would allow."""

    def do_GET(self) -> None:
        if self.path.endswith("index.json"):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"y" * 200_000)  # no Content-Length: counted while it streams

    def log_message(self, *args: object) -> None:
        pass


def test_server_errors_and_endless_bodies_are_clear_errors(tmp_path: Path) -> None:
    with serve(tmp_path, _Broken) as url, open_source(url) as source:
        with pytest.raises(RegistryError) as caught:
            source.read_index()
        assert str(caught.value) == f"{url}: index.json: HTTP 500 Internal Server Error"
        with pytest.raises(RegistryError, match="larger than 1000 bytes"):
            source.download("x.zip", 1000, io.BytesIO())


def test_nobody_listening_is_a_clear_error(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        pass  # stopped: the port is closed now
    with pytest.raises(RegistryError) as caught:
        open_source(url).read_index()
    # It said "index.json: ConnectError: [Errno 111] Connection refused".
    assert str(caught.value) == f"{url}: index.json: cannot connect (connection refused)"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="nowhere: no such registry directory"):
        open_source(str(tmp_path / "nowhere")).read_index()


def test_a_link_out_of_a_directory_registry_is_refused(registry: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.zip"
    secret.write_bytes(b"secret")
    (registry / "bundles").mkdir()
    (registry / "bundles" / "a.zip").symlink_to(secret)
    with pytest.raises(RegistryError, match=r"bundles/a\.zip leads out of the registry"):
        open_source(str(registry)).download("bundles/a.zip", 100, io.BytesIO())


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("ftp://example.com/r", "a registry is an http://, https:// or file:// URL"),
        ("https:///r", "the URL names no host"),
        ("https://example.com/r?x=1", "no query or fragment"),
        ("file://other-host/r", "on this machine"),
    ],
)
def test_an_unusable_location_is_named(location: str, reason: str) -> None:
    with pytest.raises(RegistryError, match=f"^{location.replace('?', '.')}: .*{reason}"):
        open_source(location)
