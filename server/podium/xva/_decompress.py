"""Transparent decompression of a whole XVA: plain tar, gzip (XAPI's ``use_compression=true``) or zstd.

The kind is told by the first bytes (magic numbers), as XAPI tells it by trying. Output comes in bounded
pieces where the codec allows it: gzip through zlib's ``max_length``; zstd has no output limit in the
``zstandard`` API, so its input goes in 64 KiB slices (a piece is then at most what 64 KiB expand to).
Concatenated gzip members and zstd frames (pigz, pzstd) are read one after the other.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import zstandard

from ._errors import XvaError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OTHER_MAGICS = {b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x04\x22\x4d\x18": "lz4"}
PIECE = 4 * 1024 * 1024  # most bytes one zlib call may produce
ZSTD_SLICE = 64 * 1024


class Decompressor:
    """Push bytes in, get decompressed pieces out; ``close`` checks the compressed stream is whole."""

    def __init__(self) -> None:
        self.kind: str | None = None  # "tar", "gzip" or "zstd" once told
        self._head = b""
        self._zlib: zlib._Decompress | None = None
        self._zctx = zstandard.ZstdDecompressor()
        self._zobj: zstandard.ZstdDecompressionObj | None = None
        self._zfed = False

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[bytes | memoryview]:
        """Decompressed pieces of ``data`` (nothing until the kind of stream is known)."""
        if self.kind is None:
            self._head += bytes(data)
            if len(self._head) < len(ZSTD_MAGIC):
                return
            data, self._head = self._head, b""
            self.kind = self._tell(data)
        try:
            if self.kind == "gzip":
                yield from self._inflate(data)
            elif self.kind == "zstd":
                yield from self._unzstd(data)
            else:
                yield memoryview(data)
        except (zlib.error, zstandard.ZstdError) as e:
            raise XvaError(None, f"the {self.kind} stream is corrupt: {e}") from None

    def close(self) -> Iterator[bytes | memoryview]:
        """What is left; XvaError if the compressed stream stops inside a gzip member or zstd frame."""
        if self.kind is None:
            self.kind = "tar"
            if self._head:
                yield memoryview(self._head)
            return
        if self._zlib is not None:
            try:
                rest = self._zlib.flush()
            except zlib.error as e:
                raise XvaError(None, f"the gzip stream is corrupt: {e}") from None
            if rest:
                yield rest
            if not self._zlib.eof:
                raise XvaError(None, "the gzip stream is truncated (it stops inside a compressed member)")
        if self._zobj is not None and self._zfed and not self._zobj.eof:
            raise XvaError(None, "the zstd stream is truncated (it stops inside a compressed frame)")

    @staticmethod
    def _tell(head: bytes) -> str:
        if head.startswith(GZIP_MAGIC):
            return "gzip"
        if head.startswith(ZSTD_MAGIC):
            return "zstd"
        for magic, name in OTHER_MAGICS.items():
            if head.startswith(magic):
                raise XvaError(None, f"the stream is {name}-compressed: XVAs are plain, gzip or zstd")
        return "tar"

    def _inflate(self, data: bytes | bytearray | memoryview) -> Iterator[bytes]:
        buf: bytes | bytearray | memoryview = data
        while True:
            if self._zlib is None:
                if not buf:
                    return
                self._zlib = zlib.decompressobj(wbits=31)  # 31: gzip framing only
            z = self._zlib
            out = z.decompress(buf, PIECE)
            if out:
                yield out
            if z.eof:  # one gzip member done; another may follow (pigz, cat a.gz b.gz)
                buf, self._zlib = z.unused_data, None
                continue
            buf = z.unconsumed_tail
            if not buf and len(out) < PIECE:
                return

    def _unzstd(self, data: bytes | bytearray | memoryview) -> Iterator[bytes]:
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._zobj is None:
                self._zobj, self._zfed = self._zctx.decompressobj(), False
            piece = view[pos : pos + ZSTD_SLICE]
            out = self._zobj.decompress(piece)
            self._zfed = True
            if self._zobj.eof:  # one frame done; the rest of the slice belongs to the next one
                pos += len(piece) - len(self._zobj.unused_data)
                self._zobj = None
            else:
                pos += len(piece)
            if out:
                yield out
