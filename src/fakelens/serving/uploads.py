"""Read multipart uploads into memory under limits, streaming, without touching disk.

Starlette's form parser spools files over 1 MB to temporary files and has no per-file size
limit, so uploads are parsed here with python-multipart's streaming parser. A file over the
size limit is dropped as it streams in and answered on its own (`Upload.rejected`), so the
other files of the request are still judged; the request as a whole is refused (413, naming
the file being read) only when it passes the count limit or carries more than any request
may (`_PartCollector.max_body`), before the rest of the body is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

#: Room for part headers and boundaries when checking a request's size.
_PART_OVERHEAD = 16 * 1024
#: The multipart field names that carry images: `files`, as documented, and `file`, the name
#: people often type for one upload (`curl -F file=@photo.jpg`). Any other name is refused.
FILE_FIELDS = ("files", "file")
SEND_AS = "send images as multipart/form-data parts named `files` (or `file`)"


def megabytes(size: float) -> str:
    """`size` bytes in MB (2**20 bytes, as --max-upload-mb counts): "20 MB", "25.3 MB"."""
    value = size / 2**20
    return f"{value:,.1f}".removesuffix(".0") + " MB" if value >= 0.1 else f"{value:.2g} MB"


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name and bytes, or why it was refused unread (`rejected`)."""

    filename: str
    data: bytes
    rejected: str | None = None


class UploadRejected(Exception):
    """A request body the server refuses: `status` is the HTTP status, `detail` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _PartCollector:
    """python-multipart callbacks that gather each part's name and bytes under the limits."""

    def __init__(self, max_files: int, max_bytes: int, declared: int | None) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        #: The most a request may carry: `max_files` files at the size limit, with their headers.
        self.max_body = max_files * (max_bytes + _PART_OVERHEAD)
        self.declared = declared or 0
        #: Bytes of the body read so far.
        self.received = 0
        self.uploads: list[Upload] = []
        self.finished = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._filename: str | None = None
        self._field: str | None = None
        self._size = 0
        self._data = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _name(self) -> str:
        return self._filename or f"part {len(self.uploads) + 1}"

    def _part_begin(self) -> None:
        self._filename = self._field = None
        self._size = 0
        self._data = bytearray()

    def _header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            _, params = parse_options_header(bytes(self._header_value))
            self._filename = _text(params.get(b"filename"))
            self._field = _text(params.get(b"name"))
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        """Check the part before its bytes: its headers name the file to blame."""
        name = self._name()
        if self._field not in FILE_FIELDS:
            given = f"named {self._field!r}" if self._field else "unnamed"
            raise UploadRejected(400, f"{name}: its part is {given}; {SEND_AS}")
        if len(self.uploads) >= self.max_files:
            raise UploadRejected(
                413, f"{name}: more than {self.max_files} files in one request; send them in batches"
            )
        self.check_body(named=True)

    def check_body(self, *, named: bool = False) -> None:
        """Refuse the request once it has carried more than `max_body`, or as soon as a part's
        headers name a file (or the first bytes bring none) when its declared length is over."""
        declared_over = self.declared > self.max_body and (named or self.received > _PART_OVERHEAD)
        if declared_over or self.received > self.max_body:
            size = max(self.declared, self.received)
            raise UploadRejected(
                413,
                f"{self._name()}: the request is {megabytes(size)} or more, over the most one request "
                f"may carry ({self.max_files} files of at most {megabytes(self.max_bytes)}); "
                "send fewer or smaller files",
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._size > self.max_bytes:  # dropped as it streams: only its size is kept
            self._data = bytearray()
            return
        self._data.extend(data[start:end])

    def _part_end(self) -> None:
        rejected = None
        if self._size > self.max_bytes:
            rejected = (
                f"the file is {megabytes(self._size)}, over the {megabytes(self.max_bytes)} "
                "upload limit; send a smaller one"
            )
        self.uploads.append(Upload(self._name(), bytes(self._data), rejected))
        self._data = bytearray()

    def _end(self) -> None:
        self.finished = True


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


async def read_uploads(request: Request, *, max_files: int, max_bytes: int) -> list[Upload]:
    """Every part of a multipart/form-data body, in order, a file over `max_bytes` with its
    reason in `rejected`; UploadRejected when the request as a whole is refused."""
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRejected(400, SEND_AS)
    declared = request.headers.get("content-length", "")
    collector = _PartCollector(max_files, max_bytes, int(declared) if declared.isdigit() else None)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    try:
        async for chunk in request.stream():
            collector.received += len(chunk)
            parser.write(chunk)
            collector.check_body()
        parser.finalize()
    except MultipartParseError as exc:
        raise UploadRejected(400, f"malformed multipart body: {exc}") from None
    except ClientDisconnect:
        raise UploadRejected(400, "the client disconnected before the upload finished") from None
    if not collector.finished:
        raise UploadRejected(400, "malformed multipart body: it ends before its closing boundary")
    if not collector.uploads:
        raise UploadRejected(400, f"no files: {SEND_AS}")
    return collector.uploads
