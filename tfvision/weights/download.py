"""The file cache and downloader behind `create_model(name, weights="imagenet")`.

Cache layout: `<home>/<subdir>/<filename>`, where `home` is `$TFVISION_HOME` or
`~/.cache/tfvision`, `subdir` is `downloads` unless told, and `filename` is the last
component of the URL's path unless told. A file found there is used without network
access (after checking its sha256 when one is given; a file that does not match is
downloaded again).

A download is written to `<filename>.part` and moved to its final name with `os.replace`
only once it is complete (all of Content-Length received) and its sha256 (when given)
matches, so the final name never holds a partial or wrong file. While downloading, a
process holds an flock on `<filename>.lock` (POSIX), so a second process wanting the same
file waits and then finds it cached instead of writing the same `.part`.

Resume: a `.part` left by a broken transfer is continued with an HTTP Range request
(`Range: bytes=<size>-`); a server that ignores Range (200) or rejects it (416) makes the
download start again from zero. A transfer that stops short is resumed up to `retries`
times within one call; after that the `.part` is kept and calling again resumes it.
Checksum: a downloaded file whose sha256 does not match is deleted, never kept.

http://, https:// and file:// URLs (mirrors on a shared disk) go through the same path.
"""
import contextlib
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
  import fcntl  # POSIX: two processes wanting the same file download it once
except ImportError:  # Windows: .part names and os.replace still keep the final file whole
  fcntl = None

DEFAULT_HOME = "~/.cache/tfvision"

_SCHEMES = ("http://", "https://", "file://")
_CHUNK = 1 << 16
_PROGRESS_INTERVAL = 0.1  # seconds between progress redraws: ~10 per second at most
_RETRY_DELAY = 1.0  # seconds before retrying a 5xx answer (times the attempt number)
_USER_AGENT = "tfvision-download"


class DownloadError(ValueError):
  """A file could not be downloaded (HTTP error, unreachable, transfer cut short)."""


class ChecksumError(DownloadError):
  """The downloaded file's sha256 differs from the expected one (the file is deleted)."""


def cache_home() -> str:
  """TFVISION_HOME env var if set, else ~/.cache/tfvision (expanded). Not created here."""
  return os.path.expanduser(os.environ.get("TFVISION_HOME") or DEFAULT_HOME)


def _check_url(url):
  if not isinstance(url, str) or not url.startswith(_SCHEMES):
    raise ValueError(f"url must be a str starting with http://, https:// or file://, "
                     f"received url={url!r}")
  try:
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname
  except ValueError as error:
    raise ValueError(f"url is malformed ({error}), received url={url!r}") from error
  if url.startswith("file://") and parsed.netloc not in ("", "localhost"):
    raise ValueError(f"a file:// url names a local path (file:///path), received url={url!r}")
  if not url.startswith("file://") and not host:
    raise ValueError(f"url names no host, received url={url!r}")


def _check_sha256(sha256):
  if sha256 is None:
    return None
  if (not isinstance(sha256, str) or len(sha256) != 64 or
      any(c not in "0123456789abcdef" for c in sha256.lower())):
    raise ValueError(f"sha256 must be 64 hexadecimal characters, received sha256={sha256!r}")
  return sha256.lower()


def _home(home):
  if home is None:
    return cache_home()
  if not isinstance(home, (str, os.PathLike)):
    raise ValueError(f"home must be a folder path, received home={home!r}")
  return os.path.expanduser(os.fspath(home))


def cached_path(url: str, filename: str = None, subdir: str = "downloads",
                home: str = None) -> str:
  """Where the file of `url` lives in the cache.

  That is <home>/<subdir>/<filename or basename of url path>; home is cache_home() when None.
  """
  _check_url(url)
  if filename is None:
    filename = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").split("/")[-1])
    if not filename:
      raise ValueError(f"the url's path has no file name; pass filename, received url={url!r}")
  if (not isinstance(filename, str) or filename in ("", ".", "..") or "/" in filename or
      os.sep in filename):
    raise ValueError(f"filename must be a plain file name, received filename={filename!r}")
  if not isinstance(subdir, str) or os.path.isabs(subdir) or ".." in subdir.split("/"):
    raise ValueError(f"subdir must be a relative folder inside the cache, received "
                     f"subdir={subdir!r}")
  return os.path.join(_home(home), subdir, filename)


def sha256_of(path) -> str:
  """Hex sha256 digest of the file at `path`."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _note(stream, text):
  stream.write(text + "\n")
  if hasattr(stream, "flush"):
    stream.flush()


def _mb(n):
  return f"{n / 1e6:.1f}"


class _Progress:
  """One '\\r'-redrawn line: percent, MB done / MB total and rate (MB and rate if no total)."""

  def __init__(self, stream, total, initial):
    self.stream, self.total, self.initial = stream, total, initial
    self.done = initial
    self.start = time.monotonic()
    self.last = None
    self.width = 0

  def update(self, done, force=False):
    self.done = done
    now = time.monotonic()
    if not force and self.last is not None and now - self.last < _PROGRESS_INTERVAL:
      return
    self.last = now
    rate = (done - self.initial) / max(now - self.start, 1e-3) / 1e6
    if self.total:
      percent = min(100, 100 * done // self.total)
      text = f"{percent:3d}% {_mb(done)}/{_mb(self.total)} MB {rate:.1f} MB/s"
    else:
      text = f"{_mb(done)} MB {rate:.1f} MB/s"
    # Pad so a shorter line fully covers the previous one.
    self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
    self.width = len(text)
    if hasattr(self.stream, "flush"):
      self.stream.flush()

  def close(self):
    self.update(self.done, force=True)
    _note(self.stream, "")


class _RangeMismatch(Exception):
  """A 206 answer that does not start where the .part ends."""


def _file_path(url):
  return urllib.request.url2pathname(urllib.parse.urlsplit(url).path)


def _content_range(value):
  """'bytes 100-299/300' -> (100, 300); total None when '*'; (None, None) if unreadable."""
  try:
    unit, spec = value.split(" ", 1)
    span, total = spec.split("/", 1)
    if unit.strip() != "bytes":
      return None, None
    return int(span.split("-", 1)[0]), (None if total.strip() == "*" else int(total))
  except (AttributeError, ValueError):
    return None, None


def _open(url, start, timeout):
  """Opens url from byte `start`; returns (body, offset the body starts at, total size or None).

  offset is 0 when the source cannot start at `start` (the .part must then be truncated).
  """
  if url.startswith("file://"):
    path = _file_path(url)
    size = os.path.getsize(path)
    body = open(path, "rb")  # pylint: disable=consider-using-with
    if 0 < start <= size:
      body.seek(start)
      return body, start, size
    return body, 0, size
  headers = {"User-Agent": _USER_AGENT}
  if start:
    headers["Range"] = f"bytes={start}-"
  response = urllib.request.urlopen(  # pylint: disable=consider-using-with
      urllib.request.Request(url, headers=headers), timeout=timeout)
  try:
    length = int(response.headers.get("Content-Length"))
  except (TypeError, ValueError):
    length = None
  if response.status == 206:
    first, total = _content_range(response.headers.get("Content-Range"))
    if first != start:
      response.close()
      raise _RangeMismatch(response.headers.get("Content-Range"))
    if total is None and length is not None:
      total = start + length
    return response, start, total
  return response, 0, length


def _size(path):
  try:
    return os.path.getsize(path)
  except OSError:
    return 0


def _remove(path):
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


def _offline_message(url, reason, final, home, part):
  message = (f"could not reach {url} ({reason}). To use the weights offline, download the "
             f"file elsewhere and place it at {final} (the cache folder is {home}; set "
             f"TFVISION_HOME to use another one)")
  if _size(part):
    message += f"; {_size(part)} bytes are kept in {part} and calling download again resumes"
  return message


def _fetch(url, part, final, home, progress, timeout, retries, stream):
  """Fills `part` with the whole file of `url`, resuming and retrying; raises DownloadError."""
  failures = 0  # failed attempts, counted against `retries`
  while True:
    start = _size(part)
    try:
      body, offset, total = _open(url, start, timeout)
    except _RangeMismatch as error:
      if not start:
        raise DownloadError(f"the server answered {url} with a partial file (Content-Range "
                            f"{error}) although none was asked for") from error
      _note(stream, f"the server answered the range request for {url} with Content-Range "
                    f"{error}; restarting from zero")
      _remove(part)
      continue
    except urllib.error.HTTPError as error:
      error.close()
      if error.code == 416 and start:
        # The .part is complete or longer than the file (another version): start over.
        _note(stream, f"the server rejected resuming {url} at byte {start} (HTTP 416); "
                      f"restarting from zero")
        _remove(part)
        continue
      if error.code >= 500 and failures < retries:
        failures += 1
        _note(stream, f"HTTP {error.code} {error.reason} from {url}; retrying "
                      f"({failures}/{retries})")
        time.sleep(_RETRY_DELAY * failures)
        continue
      raise DownloadError(f"download of {url} failed: HTTP {error.code} {error.reason}"
                          + (f" (after {failures + 1} attempts)" if failures else "")) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
      reason = getattr(error, "reason", None) or error
      raise DownloadError(_offline_message(url, reason, final, home, part)) from error

    if start and offset != start:
      _note(stream, f"{url} cannot be resumed at byte {start} (no range support); "
                    f"restarting from zero")
    received = offset
    error = None
    bar = _Progress(stream, total, offset) if progress else None
    try:
      with body, open(part, "ab" if offset else "wb") as f:
        while total is None or received < total:
          try:
            chunk = body.read(_CHUNK)
          except (http.client.HTTPException, OSError) as read_error:
            # IncompleteRead, ConnectionResetError, socket timeouts: what was written stays.
            error = read_error
            break
          if not chunk:
            break
          f.write(chunk)
          received += len(chunk)
          if bar is not None:
            bar.update(received)
    finally:
      if bar is not None:
        bar.close()

    on_disk = _size(part)
    if error is None and (total is None or received == total == on_disk):
      return
    if on_disk != received:
      # Someone else wrote to the same .part: its content cannot be trusted.
      _remove(part)
    why = f"{error.__class__.__name__}: {error}" if error else "connection closed"
    expected = "unknown" if total is None else str(total)
    if failures < retries:
      failures += 1
      _note(stream, f"the transfer of {url} stopped after {received} of {expected} bytes "
                    f"({why}); resuming (retry {failures}/{retries})")
      continue
    kept = (f"The partial file is kept at {part}; calling download again resumes from there"
            if _size(part) else "Calling download again starts over")
    raise DownloadError(f"the download of {url} stopped after {received} of {expected} bytes "
                        f"({why}; {failures + 1} attempts). {kept}")


def _cached(final, sha256, stream):
  """Whether `final` is there (and matches sha256); a file that does not match is deleted."""
  if not os.path.isfile(final):
    return False
  if sha256 is None:
    return True
  actual = sha256_of(final)
  if actual == sha256:
    return True
  _note(stream, f"the cached {final} has sha256 {actual}, not the expected {sha256}; "
                f"deleting it and downloading it again")
  _remove(final)
  return False


@contextlib.contextmanager
def _locked(lock_path, final, stream):
  """Holds an exclusive lock on `lock_path` where the OS has flock (a no-op elsewhere)."""
  if fcntl is None:
    yield
    return
  with open(lock_path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      _note(stream, f"waiting for another process downloading {final}")
      fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def download(url: str, filename: str = None, sha256: str = None, *, subdir: str = "downloads",
             home: str = None, progress: bool = True, timeout: float = 30.0, retries: int = 2,
             stream=None) -> str:
  """Returns the local path of url's file in the cache, downloading it only when absent.

  Args:
    url: http://, https:// or file:// URL of the file.
    filename: name in the cache; the last component of the URL's path when None.
    sha256: expected hex digest; checked on cached and downloaded files.
    subdir: folder under the cache home.
    home: cache home; cache_home() ($TFVISION_HOME or ~/.cache/tfvision) when None.
    progress: draw a progress bar on `stream` (notes about re-downloads and retries are
      written to `stream` either way).
    timeout: seconds to wait for the connection and for each read.
    retries: how many times a transfer cut short (or a 5xx answer) is retried.
    stream: where progress and notes go; sys.stderr when None.
  """
  _check_url(url)
  sha256 = _check_sha256(sha256)
  if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
    raise ValueError(f"retries must be an int >= 0, received retries={retries!r}")
  if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
    raise ValueError(f"timeout must be a number of seconds > 0, received timeout={timeout!r}")
  stream = sys.stderr if stream is None else stream
  home = _home(home)
  final = cached_path(url, filename, subdir, home)

  if _cached(final, sha256, stream):
    return final
  os.makedirs(os.path.dirname(final), exist_ok=True)
  part = final + ".part"
  with _locked(final + ".lock", final, stream):
    # Another process may have placed the file while this one waited for the lock.
    if _cached(final, sha256, stream):
      return final
    if progress:
      _note(stream, f"Downloading {url} to {final}")
    _fetch(url, part, final, home, progress, timeout, retries, stream)
    if sha256 is not None:
      actual = sha256_of(part)
      if actual != sha256:
        _remove(part)
        raise ChecksumError(f"the file downloaded from {url} has sha256 {actual}, expected "
                            f"{sha256}; it was deleted (a corrupted transfer or a changed "
                            f"file on the server)")
    os.replace(part, final)
  return final
