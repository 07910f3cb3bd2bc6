"""Read multipart uploads into memory under limits, streaming, without touching disk.

Starlette's form parser spools files over 1 MB to temporary files and has no per-file size
limit, so uploads are parsed here with python-multipart's streaming parser: a request is
refused (413) as soon as a file passes the size limit or the file count passes its limit,
before the rest of the body is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

#: Room for part headers and boundaries when checking a declared Content-Length.
_PART_OVERHEAD = 16 * 1024


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


class UploadRejected(Exception):
    """A request body the server refuses: `status` is the HTTP status, `detail` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _PartCollector:
    """python-multipart callbacks that gather each part's name and bytes under the limits."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.uploads: list[Upload] = []
        self.finished = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._filename: str | None = None
        self._data = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        if len(self.uploads) >= self.max_files:
            raise UploadRejected(
                413, f"more than {self.max_files} files in one request; send them in batches"
            )
        self._filename = None
        self._data = bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            _, params = parse_options_header(bytes(self._header_value))
            raw = params.get(b"filename")
            if raw is not None:
                self._filename = raw.decode("utf-8", "replace")
        self._header_field.clear()
        self._header_value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if len(self._data) + (end - start) > self.max_bytes:
            name = self._filename or f"part {len(self.uploads) + 1}"
            raise UploadRejected(413, f"{name}: file is over the {self.max_bytes:,}-byte upload limit")
        self._data.extend(data[start:end])

    def _part_end(self) -> None:
        name = self._filename or f"part {len(self.uploads) + 1}"
        self.uploads.append(Upload(name, bytes(self._data)))
        self._data = bytearray()

    def _end(self) -> None:
        self.finished = True


async def read_uploads(request: Request, *, max_files: int, max_bytes: int) -> list[Upload]:
    """Every part of a multipart/form-data body, in order; UploadRejected if over a limit."""
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRejected(400, "send images as multipart/form-data parts named `files`")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_files * (max_bytes + _PART_OVERHEAD):
        raise UploadRejected(413, f"request body of {int(declared):,} bytes is over the upload limits")
    collector = _PartCollector(max_files, max_bytes)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise UploadRejected(400, f"malformed multipart body: {exc}") from None
    except ClientDisconnect:
        raise UploadRejected(400, "the client disconnected before the upload finished") from None
    if not collector.finished:
        raise UploadRejected(400, "malformed multipart body: it ends before its closing boundary")
    if not collector.uploads:
        raise UploadRejected(400, "no files: send one or more images as multipart parts named `files`")
    return collector.uploads
