"""Paths and URIs (local path, file://, s3://) -> a pyarrow filesystem and a path on it.

Credentials come from the environment (the standard AWS variables and profiles); they are never
logged, and nothing here returns them in a message.
"""

from __future__ import annotations

import os
import posixpath

import pyarrow.fs as pafs


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem that holds uri, and uri's path on it."""
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if not is_remote(uri):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path


def join(uri: str, *parts: str) -> str:
    if is_remote(uri):
        return posixpath.join(uri, *parts)
    return os.path.join(uri, *parts)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound
