"""Paths and URIs (local path, file://, s3://) -> a pyarrow filesystem and a path on it.

S3 settings come from the standard AWS chain (environment variables, ~/.aws profiles;
AWS_ENDPOINT_URL for S3-compatible stores such as MinIO), resolved once on the driver; `configure_s3`
(the CLI's --s3-endpoint/--s3-region/--aws-profile) overrides them. The resolved filesystem object is
what travels to Ray workers and actors, so every node uses the same endpoint and credentials without
needing them in its own environment. Credentials never appear in a message: errors pass `redact`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from textcnn.errors import TextcnnError


class StorageError(TextcnnError, RuntimeError):
    """A URI cannot be reached or read; the message names the URI."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None   # e.g. http://127.0.0.1:9000 for MinIO or moto
    region: str | None = None
    profile: str | None = None


_s3_overrides = S3Settings()


def configure_s3(endpoint: str | None = None, region: str | None = None, profile: str | None = None) -> None:
    """Override the AWS chain's endpoint, region or profile for this process."""
    global _s3_overrides
    _s3_overrides = S3Settings(endpoint, region, profile)
    _s3_filesystem.cache_clear()


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _secrets() -> list[str]:
    names = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
    found = [os.environ.get(n) for n in names]
    if _s3_filesystem.cache_info().currsize:
        found += list(_s3_filesystem()[1])
    return [s for s in found if s and len(s) >= 4]


def redact(message: str) -> str:
    """message with every credential this process knows replaced by ***."""
    for secret in _secrets():
        message = message.replace(secret, "***")
    return message


@lru_cache(maxsize=1)
def _s3_filesystem() -> tuple[pafs.S3FileSystem, tuple[str, ...]]:
    import botocore.exceptions
    import botocore.session
    o = _s3_overrides
    try:
        session = botocore.session.Session(profile=o.profile)
        creds = session.get_credentials()
        region = o.region or session.get_config_variable("region") or "us-east-1"
    except botocore.exceptions.BotoCoreError as e:
        raise StorageError(f"AWS settings: {e}") from None
    endpoint = (o.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
                or session.get_config_variable("endpoint_url"))
    kwargs = dict(region=region, connect_timeout=5, request_timeout=60,
                  retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3))
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    secrets: tuple[str, ...] = ()
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        kwargs.update(access_key=frozen.access_key, secret_key=frozen.secret_key,
                      session_token=frozen.token)
        secrets = tuple(s for s in (frozen.access_key, frozen.secret_key, frozen.token) if s)
    else:
        kwargs.update(anonymous=True)
    return pafs.S3FileSystem(**kwargs), secrets


def path_of(uri: str) -> str:
    """uri's path on its filesystem (no scheme; local paths made absolute)."""
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if not is_remote(uri):
        return os.path.abspath(os.path.expanduser(uri))
    return uri.split("://", 1)[1].rstrip("/")


def filesystem(uri: str) -> pafs.FileSystem:
    """The filesystem that holds uri."""
    if not is_remote(uri):
        return pafs.LocalFileSystem()
    if uri.startswith(("s3://", "s3a://")):
        return _s3_filesystem()[0]
    try:
        return pafs.FileSystem.from_uri(uri)[0]
    except (OSError, ValueError) as e:
        raise StorageError(f"{uri}: {redact(str(e))}") from None


def resolve(uri: str, fs: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds uri (fs when given: resolved once on the driver), and the path."""
    return fs or filesystem(uri), path_of(uri)


def join(uri: str, *parts: str) -> str:
    if is_remote(uri):
        return posixpath.join(uri, *parts)
    return os.path.join(uri, *parts)


def dirname(uri: str) -> str:
    """The folder holding uri (a URI stays a URI)."""
    if is_remote(uri):
        scheme, path = uri.split("://", 1)
        parent = posixpath.dirname(path.rstrip("/"))
        return f"{scheme}://{parent}" if parent else uri
    return os.path.dirname(os.path.abspath(uri.rstrip("/")))


def reason(e: Exception) -> str:
    """An error's first line (or its type when it has no message), credentials redacted."""
    text = str(e).strip()
    return redact(text.splitlines()[0] if text else type(e).__name__)


def _fail(uri: str, e: Exception) -> StorageError:
    return StorageError(f"{uri}: {reason(e)}")


def read_bytes(uri: str, fs: pafs.FileSystem | None = None) -> bytes:
    fs, path = resolve(uri, fs)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except OSError as e:
        raise _fail(uri, e) from None


def write_bytes(uri: str, data: bytes, fs: pafs.FileSystem | None = None) -> None:
    fs, path = resolve(uri, fs)
    try:
        fs.create_dir(posixpath.dirname(path), recursive=True)
        with fs.open_output_stream(path) as f:
            f.write(data)
    except OSError as e:
        raise _fail(uri, e) from None


@contextlib.contextmanager
def open_input(uri: str, fs: pafs.FileSystem | None = None) -> Iterator[Any]:
    """A binary stream of uri, read as it goes (for files too large to hold); missing: StorageError."""
    reason_missing = missing_reason(uri, fs)
    if reason_missing:
        raise StorageError(f"{uri}: {reason_missing}")
    fs, path = resolve(uri, fs)
    try:
        stream = fs.open_input_stream(path)
    except OSError as e:
        raise _fail(uri, e) from None
    with stream:
        yield stream


def read_text(uri: str, fs: pafs.FileSystem | None = None) -> str:
    return read_bytes(uri, fs).decode("utf-8")


def write_text(uri: str, text: str, fs: pafs.FileSystem | None = None) -> None:
    write_bytes(uri, text.encode("utf-8"), fs)


def exists(uri: str, fs: pafs.FileSystem | None = None) -> bool:
    fs, path = resolve(uri, fs)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as e:
        raise _fail(uri, e) from None


def remove_tree(uri: str, fs: pafs.FileSystem | None = None) -> None:
    """Delete the folder uri and everything under it; nothing to do when it does not exist."""
    fs, path = resolve(uri, fs)
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _fail(uri, e) from None


def missing_reason(uri: str, fs: pafs.FileSystem | None = None) -> str | None:
    """Why uri cannot be found ("bucket ... does not exist", "not found"), or None when it exists."""
    if exists(uri, fs):
        return None
    fs, path = resolve(uri, fs)
    bucket = path.split("/", 1)[0]
    if isinstance(fs, pafs.S3FileSystem) and fs.get_file_info(bucket).type == pafs.FileType.NotFound:
        return f"bucket '{bucket}' does not exist"
    return "not found"


def _location(uri: str) -> tuple[str, str]:
    """(scheme, normalised path) of uri: a local path resolved through symlinks, a URI's as written."""
    if is_remote(uri):
        scheme, path = uri.split("://", 1)
        return scheme, posixpath.normpath("/" + path)
    path = uri.removeprefix("file://")
    return "file", os.path.realpath(os.path.expanduser(path))


def overlaps(a: str, b: str) -> bool:
    """Whether a and b are the same place, or one lies inside the other."""
    (scheme_a, path_a), (scheme_b, path_b) = _location(a), _location(b)
    if scheme_a != scheme_b:
        return False
    inside = lambda inner, outer: inner.startswith(outer.rstrip("/") + "/")  # noqa: E731
    return path_a == path_b or inside(path_a, path_b) or inside(path_b, path_a)
