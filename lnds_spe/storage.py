"""The object store for encrypted datasets: S3 (boto3, path-style) or a local directory.

Both give the same interface. An object appears only on explicit success: the writer of a local
store renames a temporary file at the end, the S3 writer completes its multipart upload at the
end; on any error (or interruption) the temporary file is removed or the upload aborted, so no
half object ever looks complete. Memory stays bounded: the S3 writer keeps at most
`MAX_PARTS_IN_FLIGHT` parts being sent plus one being filled.

Settings (environment): SPE_STORE_URL (s3://bucket[/prefix], file:///dir or a plain path; default
<state>/store), SPE_S3_ENDPOINT (e.g. http://127.0.0.1:9000), credentials the usual AWS way
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), AWS_DEFAULT_REGION (default us-east-1).
"""

from __future__ import annotations

import os
import secrets
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlparse

from lnds_spe.config import setting, state_dir
from lnds_spe.errors import SPEError

# S3's smallest part (5 MiB), two of them in flight while a third fills: the server receives one
# part while it stores the other, and an upload's three buffers (15 MiB) keep the
# whole `spe data upload` process under 100 MiB.
PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 9_500  # S3 allows 10,000; keep a margin
MAX_PARTS_IN_FLIGHT = 2
CLIENT_CONNECTIONS = 10  # a shared client serves several uploads and fetches at once (the hub)
PARTIAL_MARK = ".partial-"
FLUSH_EVERY = 32 * 1024 * 1024  # local store: start writing back to disk every 32 MiB


class ObjectWriter(Protocol):
    """A sink for one object's bytes; the store commits or aborts it."""

    def write(self, data: bytes | memoryview) -> int: ...


class ObjectStore(Protocol):
    """Put, get, size and delete objects by key; the same for S3 and a local directory."""

    def location(self, key: str) -> str: ...

    def writer(self, key: str, expected_size: int = 0) -> AbstractContextManager[ObjectWriter]: ...

    def reader(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def abort_incomplete(self, prefix: str, older_than: timedelta) -> int: ...


def check_key(key: str) -> str:
    """An object key: relative, '/'-separated, no '.' or '..' parts, no partial-upload mark."""
    parts = PurePosixPath(key).parts
    if (not key or key.startswith("/") or any(p in (".", "..") for p in parts)
            or PARTIAL_MARK in key):
        raise SPEError(f"invalid object key {key!r}: use names like project/dataset.c4gh")
    return key


def part_size_for(expected_size: int) -> int:
    """PART_SIZE parts, larger (whole MiB) only when the object would need more than MAX_PARTS."""
    needed = -(-expected_size // MAX_PARTS)
    mib = 1024 * 1024
    return max(PART_SIZE, -(-needed // mib) * mib)


# Local directory

class _LocalWriter:
    """Writes to a temporary name beside the target; `commit` fsyncs and renames.

    Every FLUSH_EVERY bytes a helper thread flushes what was written so far (fdatasync releases
    the GIL), so the disk writes back while the caller encrypts, and the final fsync waits only
    for the tail. A failed background flush raises at the next write or at commit.
    """

    def __init__(self, target: Path):
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = target.with_name(target.name + PARTIAL_MARK + secrets.token_hex(6))
        self.file = open(self.temporary, "xb")  # noqa: SIM115 (closed by commit/abort)
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="fdatasync")
        self._flushing: Future | None = None
        self._unflushed = 0

    def write(self, data: bytes | memoryview) -> int:
        written = self.file.write(data)
        self._unflushed += written
        if self._unflushed >= FLUSH_EVERY and (self._flushing is None or self._flushing.done()):
            self._wait_for_flush()
            self.file.flush()  # hand the buffered bytes to the OS, then sync them in the helper
            self._flushing = self._flusher.submit(os.fdatasync, self.file.fileno())
            self._unflushed = 0
        return written

    def _wait_for_flush(self) -> None:
        """Wait for the background flush in flight, raising its error if it failed."""
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            flushing.result()

    def commit(self) -> None:
        try:
            self._wait_for_flush()
        finally:
            self._flusher.shutdown()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temporary, self.target)

    def abort(self) -> None:
        self._flusher.shutdown()  # waits: the file must not close under a running fdatasync
        self.file.close()
        self.temporary.unlink(missing_ok=True)


class LocalStore:
    """Objects as files under one directory: the embedded default, no server needed."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def location(self, key: str) -> str:
        return self._path(key).absolute().as_uri()

    @contextmanager
    def writer(self, key: str, expected_size: int = 0) -> Iterator[_LocalWriter]:
        """A writer whose file appears under `key` only if the block ends without error."""
        try:
            writer = _LocalWriter(self._path(key))
        except OSError as exc:
            raise SPEError(f"cannot write to the store {self.root} ({exc.strerror}): check the "
                           "directory and its permissions") from None
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.abort()  # also when committing failed: no temporary file stays behind
            raise

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        """The object's bytes as a file."""
        try:
            file = open(self._path(key), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            raise SPEError(f"object {key} is not in the store {self.root}: was it uploaded "
                           "there?") from None
        with file:
            yield file

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise SPEError(f"object {key} is not in the store {self.root}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def abort_incomplete(self, prefix: str, older_than: timedelta) -> int:
        """Remove temporary files of uploads under `prefix` untouched for `older_than` (killed)."""
        folder = (self.root / prefix).parent
        if not folder.is_dir():
            return 0
        name = PurePosixPath(prefix).name
        cutoff = time.time() - older_than.total_seconds()
        stale = [p for p in folder.iterdir() if p.name.startswith(name) and PARTIAL_MARK in p.name
                 and p.stat().st_mtime < cutoff]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


# S3

def s3_endpoint() -> str | None:
    """$SPE_S3_ENDPOINT (or boto's own AWS_ENDPOINT_URL), None for AWS itself."""
    return setting("SPE_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None


# S3 credentials the hub moved out of its environment (see `hold_credentials`).
_HELD_CREDENTIALS: dict[str, str] = {}
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def hold_credentials() -> None:
    """Move the S3 credentials from the environment into this process's memory.

    The hub's children (configurable-http-proxy, services) inherit its environment; S3 clients
    made afterwards in this process still use the credentials.
    """
    for name in CREDENTIAL_ENV:
        if name in os.environ:
            _HELD_CREDENTIALS[name] = os.environ.pop(name)


def _s3_client(endpoint: str | None):
    """The S3 client for an endpoint and the credentials in force now (held or environment).

    Clients are thread-safe and cost about 10 MiB and a tenth of a second each (boto loads the
    S3 model per session), so stores opened with the same endpoint and credentials share one.
    """
    region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    held = tuple(_HELD_CREDENTIALS.get(name) for name in CREDENTIAL_ENV)
    environment = tuple(os.environ.get(name) for name in (*CREDENTIAL_ENV, "AWS_PROFILE"))
    return _new_s3_client(endpoint, region, held, environment)


@lru_cache(maxsize=4)
def _new_s3_client(endpoint: str | None, region: str, held: tuple[str | None, ...],
                   environment: tuple[str | None, ...]):
    """A boto3 S3 client: path-style, short connect timeout, few retries, no extra checksums.

    `environment` only keys the cache: a session reads those variables itself.
    """
    import boto3
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=60,
                    retries={"max_attempts": 2, "mode": "standard"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=CLIENT_CONNECTIONS)
    access_key, secret_key, token = held
    session = boto3.session.Session(aws_access_key_id=access_key,
                                    aws_secret_access_key=secret_key, aws_session_token=token)
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


@contextmanager
def _s3_errors(store: S3Store, key: str) -> Iterator[None]:
    """Turn boto errors into one-line SPEErrors naming the store, the key and what to do."""
    from botocore import exceptions as boto

    where = f"s3://{store.bucket}/{store.prefix}{key} at {store.endpoint or 'AWS'}"
    try:
        yield
    except boto.EndpointConnectionError:
        raise SPEError(f"the object store {store.endpoint} is unreachable: is it running, and "
                       "is SPE_S3_ENDPOINT right?") from None
    except boto.NoCredentialsError:
        raise SPEError("no S3 credentials: set AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY") from None
    except boto.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise SPEError(f"object {where} does not exist: was it uploaded there?") from None
        if code == "NoSuchBucket":
            raise SPEError(f"bucket {store.bucket} does not exist at {store.endpoint}: "
                           "create it first") from None
        raise SPEError(f"the object store refused {where}: {code or exc}") from None
    except boto.BotoCoreError as exc:
        raise SPEError(f"the object store failed on {where}: {exc}") from None


class _S3Body:
    """A GET response body as a reader with `readinto` (botocore's body has only `read`)."""

    def __init__(self, body):
        self.body = body

    def readinto(self, view) -> int:
        data = self.body.read(len(view))
        memoryview(view).cast("B")[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return self.body.read(None if size < 0 else size)


class _S3Writer:
    """A multipart upload: fills a part, sends it in a thread, at most N parts in flight.

    Part buffers are allocated once and reused (at most N + 1 of them), so memory stays flat
    instead of growing with allocator fragmentation from one fresh buffer per part.
    """

    def __init__(self, store: S3Store, key: str, part_size: int):
        self.store, self.key, self.part_size = store, key, part_size
        with _s3_errors(store, key):
            created = store.client.create_multipart_upload(Bucket=store.bucket,
                                                           Key=store.prefix + key)
        self.upload_id = created["UploadId"]
        self._filling = bytearray(part_size)
        self._filled = 0
        self._spare: list[bytearray] = []
        self._pool = ThreadPoolExecutor(MAX_PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self._in_flight: deque[tuple[Future, bytearray]] = deque()
        self._parts: list[dict] = []

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        taken = 0
        while taken < len(view):
            n = min(self.part_size - self._filled, len(view) - taken)
            self._filling[self._filled:self._filled + n] = view[taken:taken + n]
            self._filled += n
            taken += n
            if self._filled == self.part_size:
                self._send(self._filling)
                self._filling = self._spare.pop() if self._spare else bytearray(self.part_size)
                self._filled = 0
        return taken

    def _send(self, part: bytearray) -> None:
        """Upload `part` as the next part in a helper thread, once fewer than N are in flight."""
        while len(self._in_flight) >= MAX_PARTS_IN_FLIGHT:
            self._collect()
        number = len(self._parts) + len(self._in_flight) + 1
        self._in_flight.append((self._pool.submit(self._upload_part, number, part), part))

    def _collect(self) -> None:
        """Wait for the oldest part in flight (raising its error) and keep its buffer for reuse."""
        future, part = self._in_flight.popleft()
        self._parts.append(future.result())
        if len(part) == self.part_size:
            self._spare.append(part)

    def _upload_part(self, number: int, part: bytearray) -> dict:
        with _s3_errors(self.store, self.key):
            reply = self.store.client.upload_part(Bucket=self.store.bucket,
                                                  Key=self.store.prefix + self.key,
                                                  UploadId=self.upload_id, PartNumber=number,
                                                  Body=part)
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def commit(self) -> None:
        """Send the last part, wait for all, and only then complete the upload."""
        if self._filled or not (self._parts or self._in_flight):
            del self._filling[self._filled:]  # the short last part, trimmed in place
            self._send(self._filling)
        while self._in_flight:
            self._collect()
        self._pool.shutdown()
        with _s3_errors(self.store, self.key):
            self.store.client.complete_multipart_upload(
                Bucket=self.store.bucket, Key=self.store.prefix + self.key,
                UploadId=self.upload_id, MultipartUpload={"Parts": self._parts})

    def abort(self) -> None:
        """Drop the parts: the key never shows a half object."""
        for future, _part in self._in_flight:
            future.cancel()
        self._pool.shutdown(wait=True)
        self.store.client.abort_multipart_upload(Bucket=self.store.bucket,
                                                 Key=self.store.prefix + self.key,
                                                 UploadId=self.upload_id)


class S3Store:
    """Objects in an S3 bucket (any S3-compatible server), path-style addressing."""

    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint = endpoint if endpoint is not None else s3_endpoint()
        self.client = _s3_client(self.endpoint)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{check_key(key)}"

    @contextmanager
    def writer(self, key: str, expected_size: int = 0) -> Iterator[_S3Writer]:
        """A multipart upload completed only if the block ends without error."""
        writer = _S3Writer(self, check_key(key), part_size_for(expected_size))
        try:
            yield writer
            writer.commit()
        except BaseException:
            with suppress(Exception):  # the first error matters; an unfinished upload is invisible
                writer.abort()
            raise

    @contextmanager
    def reader(self, key: str) -> Iterator[_S3Body]:
        """The object's bytes, streamed."""
        with _s3_errors(self, check_key(key)):
            reply = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        body = reply["Body"]
        try:
            yield _S3Body(body)
        finally:
            body.close()

    def size(self, key: str) -> int:
        with _s3_errors(self, check_key(key)):
            reply = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        return reply["ContentLength"]

    def delete(self, key: str) -> None:
        with _s3_errors(self, check_key(key)):
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def abort_incomplete(self, prefix: str, older_than: timedelta) -> int:
        """Abort multipart uploads under `prefix` started over `older_than` ago (killed ones)."""
        cutoff = datetime.now(UTC) - older_than
        with _s3_errors(self, prefix):
            reply = self.client.list_multipart_uploads(Bucket=self.bucket,
                                                       Prefix=self.prefix + prefix)
            uploads = [u for u in reply.get("Uploads", []) if u["Initiated"] < cutoff]
            for upload in uploads:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                   UploadId=upload["UploadId"])
        return len(uploads)


# Opening a store

def default_store_url() -> str:
    """$SPE_STORE_URL, else a directory `store` in the state dir."""
    return setting("SPE_STORE_URL") or (state_dir() / "store").absolute().as_uri()


def open_store(url: str | None = None) -> ObjectStore:
    """The store named by a URL: s3://bucket[/prefix], file:///dir, or a plain directory path."""
    url = url or default_store_url()
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise SPEError(f"invalid store URL {url!r}: use s3://BUCKET[/PREFIX]")
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme == "":
        return LocalStore(Path(url))
    raise SPEError(f"unsupported store URL {url!r}: use s3://BUCKET[/PREFIX] or a directory")


def check_location(location: str) -> str:
    """A dataset location the SPE itself writes: s3://BUCKET/KEY.c4gh or file:///PATH.c4gh."""
    parsed = urlparse(location)
    path = unquote(parsed.path)
    good = ((parsed.scheme == "s3" and parsed.netloc) or (parsed.scheme == "file" and not parsed.netloc))
    if (not good or not path.endswith(".c4gh") or parsed.query or parsed.fragment
            or any(p in (".", "..") for p in PurePosixPath(path).parts)):
        raise SPEError(f"dataset location {location!r} is not an encrypted object in a store: "
                       "give s3://BUCKET/KEY.c4gh or file:///PATH.c4gh as `spe data upload` "
                       "printed it")
    return location


def open_location(location: str) -> tuple[ObjectStore, str]:
    """The store holding an object, and its key there, from the location a dataset records."""
    parsed = urlparse(location)
    if parsed.scheme == "s3" and parsed.netloc and parsed.path.strip("/"):
        return S3Store(parsed.netloc), parsed.path.lstrip("/")
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return LocalStore(path.parent), path.name
    raise SPEError(f"dataset location {location!r} is not an object in a store "
                   "(s3://BUCKET/KEY or file:///PATH): was it uploaded with `spe data upload`?")

