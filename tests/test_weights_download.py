"""tfvision.weights.download against a real HTTP server on 127.0.0.1 (no other network).

Server paths, /<kind>/<token>/weights.bin (a fresh token per test, so the per-path request
log belongs to one test):
  files     200, or 206 + Content-Range for a Range request, 416 past the end
  norange   always 200 with the whole payload (ignores Range)
  drop      first request: Content-Length of the whole payload, half of it, then closes;
            later requests as `files`
  stall     first request: half of the payload, then silence until the test ends;
            later requests as `files`
  nolength  200 without Content-Length, closes after the payload
  flaky     always 503
  missing   always 404
"""
import hashlib
import http.server
import io
import os
import random
import re
import socket
import threading
import uuid

import pytest

from tfvision.weights import download as dl

PAYLOAD = random.Random(20240611).randbytes(300_000)
HALF = len(PAYLOAD) // 2
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves PAYLOAD in the ways named in the module docstring; logs each request's Range."""

  def log_message(self, *args):  # keep pytest output clean
    pass

  def _send(self, status, body, headers=()):
    self.send_response(status)
    for key, value in headers:
      self.send_header(key, value)
    self.end_headers()
    self.wfile.write(body)

  def do_GET(self):  # pylint: disable=invalid-name
    server = self.server
    with server.lock:
      log = server.requests.setdefault(self.path, [])
      log.append(self.headers.get("Range"))
      count = len(log)
    kind = self.path.split("/")[1]
    size = len(PAYLOAD)
    if kind == "missing":
      self.send_error(404, "Not Found")
      return
    if kind == "flaky":
      self.send_error(503, "Service Unavailable")
      return
    if kind == "nolength":
      self._send(200, PAYLOAD)
      return
    if kind in ("drop", "stall") and count == 1:
      self._send(200, PAYLOAD[:HALF], [("Content-Length", str(size))])
      self.wfile.flush()
      if kind == "stall":
        server.release.wait(10)  # until the test ends; the client times out first
      self.close_connection = True
      return
    range_header = self.headers.get("Range")
    if kind != "norange" and range_header:
      start = int(range_header.split("=")[1].split("-")[0])
      if start >= size:
        self._send(416, b"", [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")])
        return
      self._send(206, PAYLOAD[start:], [("Content-Range", f"bytes {start}-{size - 1}/{size}"),
                                        ("Content-Length", str(size - start))])
      return
    self._send(200, PAYLOAD, [("Content-Length", str(size))])


@pytest.fixture(scope="module")
def server():
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  httpd.daemon_threads = True
  httpd.lock = threading.Lock()
  httpd.requests = {}
  httpd.release = threading.Event()
  thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
  thread.start()
  yield httpd
  httpd.release.set()
  httpd.shutdown()
  httpd.server_close()
  thread.join(5)


@pytest.fixture
def url(server):
  """url(kind) -> a fresh URL of that kind; url.requests(u) -> the Range headers it got."""
  port = server.server_address[1]

  def make(kind="files"):
    return f"http://127.0.0.1:{port}/{kind}/{uuid.uuid4().hex}/weights.bin"

  def requests(full_url):
    path = full_url.split(str(port), 1)[1]
    with server.lock:
      return list(server.requests.get(path, []))

  make.requests = requests
  return make


@pytest.fixture
def home(tmp_path):
  return str(tmp_path / "cache")


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def test_download_writes_payload_and_shows_progress(url, home):
  u = url()
  out = io.StringIO()
  path = dl.download(u, home=home, stream=out)
  assert path == os.path.join(home, "downloads", "weights.bin") == dl.cached_path(u, home=home)
  assert _read(path) == PAYLOAD
  assert not os.path.exists(path + ".part")
  assert url.requests(u) == [None]
  text = out.getvalue()
  assert "\r" in text and text.endswith("\n")
  last = text.rstrip("\n").split("\r")[-1]
  mb = f"{len(PAYLOAD) / 1e6:.1f}"
  assert last.startswith("100%") and f"{mb}/{mb} MB" in last and "MB/s" in last


def test_progress_without_content_length_shows_mb_and_rate(url, home):
  u = url("nolength")
  out = io.StringIO()
  assert _read(dl.download(u, home=home, stream=out)) == PAYLOAD
  last = out.getvalue().rstrip("\n").split("\r")[-1]
  assert "%" not in last and f"{len(PAYLOAD) / 1e6:.1f} MB" in last and "MB/s" in last


def test_progress_false_writes_nothing(url, home):
  out = io.StringIO()
  assert _read(dl.download(url(), home=home, progress=False, stream=out)) == PAYLOAD
  assert out.getvalue() == ""


def test_second_call_is_a_cache_hit(url, home):
  u = url()
  first = dl.download(u, home=home, stream=io.StringIO())
  out = io.StringIO()
  assert dl.download(u, home=home, stream=out) == first
  assert dl.download(u, sha256=SHA256, home=home, stream=out) == first  # verified hit
  assert url.requests(u) == [None]
  assert out.getvalue() == ""


def test_part_file_is_resumed_with_a_range_request(url, home):
  u = url()
  final = dl.cached_path(u, home=home)
  _write(final + ".part", PAYLOAD[:HALF])
  out = io.StringIO()
  assert _read(dl.download(u, home=home, stream=out)) == PAYLOAD
  assert url.requests(u) == [f"bytes={HALF}-"]
  assert not os.path.exists(final + ".part")
  assert out.getvalue().rstrip("\n").split("\r")[-1].startswith("100%")


def test_server_without_range_support_restarts_from_zero(url, home):
  u = url("norange")
  final = dl.cached_path(u, home=home)
  _write(final + ".part", b"x" * HALF)  # would corrupt the file if appended to
  out = io.StringIO()
  assert _read(dl.download(u, home=home, stream=out)) == PAYLOAD
  assert url.requests(u) == [f"bytes={HALF}-"]
  assert "restarting from zero" in out.getvalue()


def test_range_not_satisfiable_restarts_from_zero(url, home):
  u = url()
  final = dl.cached_path(u, home=home)
  _write(final + ".part", b"x" * (len(PAYLOAD) + 10))  # longer than the file: 416
  out = io.StringIO()
  assert _read(dl.download(u, home=home, stream=out)) == PAYLOAD
  assert url.requests(u) == [f"bytes={len(PAYLOAD) + 10}-", None]
  assert "416" in out.getvalue()


def test_interrupted_transfer_is_resumed_within_one_call(url, home):
  u = url("drop")
  out = io.StringIO()
  assert _read(dl.download(u, home=home, stream=out)) == PAYLOAD
  assert url.requests(u) == [None, f"bytes={HALF}-"]
  assert f"stopped after {HALF} of {len(PAYLOAD)} bytes" in out.getvalue()
  assert "resuming (retry 1/2)" in out.getvalue()


def test_interrupted_transfer_without_retries_raises_then_next_call_resumes(url, home):
  u = url("drop")
  final = dl.cached_path(u, home=home)
  with pytest.raises(dl.DownloadError) as info:
    dl.download(u, home=home, retries=0, stream=io.StringIO())
  message = str(info.value)
  assert u in message and f"{HALF} of {len(PAYLOAD)} bytes" in message
  assert "resumes" in message and final + ".part" in message
  assert isinstance(info.value, ValueError)
  assert not os.path.exists(final)
  assert _read(final + ".part") == PAYLOAD[:HALF]
  assert _read(dl.download(u, home=home, retries=0, stream=io.StringIO())) == PAYLOAD
  assert url.requests(u) == [None, f"bytes={HALF}-"]
  assert not os.path.exists(final + ".part")


def test_stalled_transfer_times_out_and_resumes(url, home):
  u = url("stall")
  out = io.StringIO()
  assert _read(dl.download(u, home=home, timeout=0.5, retries=1, stream=out)) == PAYLOAD
  requests = url.requests(u)
  # What was read before the timeout stays in the .part; the retry asks for the rest.
  assert len(requests) == 2 and requests[0] is None
  assert requests[1].startswith("bytes=") and 0 < int(requests[1][6:-1]) <= HALF
  assert "timed out" in out.getvalue()


def test_correct_checksum_passes(url, home):
  path = dl.download(url(), sha256=SHA256.upper(), home=home, stream=io.StringIO())
  assert dl.sha256_of(path) == SHA256 and _read(path) == PAYLOAD


def test_wrong_checksum_raises_and_keeps_no_file(url, home):
  u = url()
  wrong = "0" * 64
  with pytest.raises(dl.ChecksumError) as info:
    dl.download(u, sha256=wrong, home=home, stream=io.StringIO())
  assert isinstance(info.value, dl.DownloadError) and isinstance(info.value, ValueError)
  assert wrong in str(info.value) and SHA256 in str(info.value) and u in str(info.value)
  final = dl.cached_path(u, home=home)
  assert not os.path.exists(final) and not os.path.exists(final + ".part")


def test_cached_file_with_wrong_checksum_is_downloaded_again(url, home):
  u = url()
  final = dl.cached_path(u, home=home)
  _write(final, b"stale weights")
  out = io.StringIO()
  assert dl.download(u, sha256=SHA256, home=home, stream=out) == final
  assert _read(final) == PAYLOAD
  assert url.requests(u) == [None]
  assert "not the expected" in out.getvalue() and "downloading it again" in out.getvalue()
  # Without a checksum the cached file is trusted as it is.
  _write(final, b"stale weights")
  assert _read(dl.download(u, home=home, stream=out)) == b"stale weights"
  assert len(url.requests(u)) == 1


def test_http_404_raises_without_retry_and_keeps_no_file(url, home):
  u = url("missing")
  with pytest.raises(dl.DownloadError, match="HTTP 404 Not Found") as info:
    dl.download(u, home=home, retries=2, stream=io.StringIO())
  assert u in str(info.value)
  assert url.requests(u) == [None]
  final = dl.cached_path(u, home=home)
  assert not os.path.exists(final) and not os.path.exists(final + ".part")


def test_http_503_is_retried_then_raises(url, home, monkeypatch):
  monkeypatch.setattr(dl, "_RETRY_DELAY", 0.0)
  u = url("flaky")
  with pytest.raises(dl.DownloadError, match="HTTP 503") as info:
    dl.download(u, home=home, retries=2, stream=io.StringIO())
  assert u in str(info.value) and "3 attempts" in str(info.value)
  assert url.requests(u) == [None] * 3


def test_unreachable_server_names_the_path_to_place_the_file(home):
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  port = sock.getsockname()[1]
  sock.close()  # nothing listens there now: connection refused
  u = f"http://127.0.0.1:{port}/weights/resnet.h5"
  with pytest.raises(dl.DownloadError) as info:
    dl.download(u, home=home, stream=io.StringIO())
  message = str(info.value)
  final = os.path.join(home, "downloads", "resnet.h5")
  assert u in message and f"place it at {final}" in message and "TFVISION_HOME" in message
  assert not os.path.exists(final) and not os.path.exists(final + ".part")


@pytest.mark.parametrize("bad", [None, "ftp://x", "weights.h5", b"http://x"])
def test_bad_url_raises_value_error(bad, home):
  with pytest.raises(ValueError, match=re.escape(f"received url={bad!r}")):
    dl.download(bad, home=home)
  with pytest.raises(ValueError, match="url="):
    dl.cached_path(bad, home=home)


@pytest.mark.parametrize("bad", ["abc", "g" * 64, 123])
def test_bad_sha256_raises_value_error_before_any_request(bad, url, home):
  u = url()
  with pytest.raises(ValueError, match=re.escape(f"received sha256={bad!r}")):
    dl.download(u, sha256=bad, home=home)
  assert url.requests(u) == []


def test_bad_retries_and_filename_raise_value_error(url, home):
  with pytest.raises(ValueError, match="received retries=-1"):
    dl.download(url(), home=home, retries=-1)
  with pytest.raises(ValueError, match="received filename='a/b'"):
    dl.download(url(), "a/b", home=home)


def test_cache_home_honours_tfvision_home(url, tmp_path, monkeypatch):
  monkeypatch.delenv("TFVISION_HOME", raising=False)
  assert dl.cache_home() == os.path.expanduser("~/.cache/tfvision")
  monkeypatch.setenv("TFVISION_HOME", str(tmp_path / "env_home"))
  assert dl.cache_home() == str(tmp_path / "env_home")
  assert not os.path.exists(tmp_path / "env_home")  # cache_home does not create it
  u = url()
  path = dl.download(u, "renamed.bin", subdir="weights", stream=io.StringIO())
  assert path == os.path.join(str(tmp_path / "env_home"), "weights", "renamed.bin")
  assert _read(path) == PAYLOAD


def test_file_url_is_copied_with_progress_checksum_and_resume(tmp_path, home):
  source = tmp_path / "mirror" / "weights.bin"
  _write(str(source), PAYLOAD)
  u = source.as_uri()
  out = io.StringIO()
  path = dl.download(u, sha256=SHA256, home=home, stream=out)
  assert path == os.path.join(home, "downloads", "weights.bin") and _read(path) == PAYLOAD
  assert out.getvalue().rstrip("\n").split("\r")[-1].startswith("100%")
  # Resume from a .part, and a missing file reads as unreachable.
  other = dl.cached_path(u, "other.bin", home=home)
  _write(other + ".part", PAYLOAD[:HALF])
  assert _read(dl.download(u, "other.bin", SHA256, home=home, stream=out)) == PAYLOAD
  with pytest.raises(dl.DownloadError, match="place it at"):
    dl.download((tmp_path / "absent.bin").as_uri(), home=home, stream=out)


def test_two_concurrent_downloads_fetch_the_file_once(url, home):
  # flock locks conflict between separate opens of the lock file, so two threads stand in
  # for two processes sharing the cache.
  u = url()
  barrier = threading.Barrier(2)
  results, errors = [], []

  def fetch():
    try:
      barrier.wait(5)
      results.append(dl.download(u, sha256=SHA256, home=home, stream=io.StringIO()))
    except Exception as error:  # pylint: disable=broad-except
      errors.append(error)

  threads = [threading.Thread(target=fetch) for _ in range(2)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(10)
  assert not errors
  final = dl.cached_path(u, home=home)
  assert results == [final, final] and _read(final) == PAYLOAD
  assert url.requests(u) == [None]
  assert not os.path.exists(final + ".part")


def test_sha256_of_matches_hashlib(tmp_path):
  path = tmp_path / "f.bin"
  _write(str(path), PAYLOAD)
  assert dl.sha256_of(path) == SHA256
