"""The Optuna journal on object storage as a base object plus appended parts.

Object stores cannot append, and the journal only grows: uploading the whole file each time a
trial ends costs O(n) bytes per trial, O(n²) over a search (2,000 trials: gigabytes for a
journal of a few megabytes). Instead each push uploads only the bytes appended since the last
one, as `journal.log.parts/<offset>` (the offset in the journal where they start, zero-padded
so names sort), and a whole upload of `journal.log` (a compaction) happens only when the parts
add up to the base's size: the base doubles between compactions, so every byte is uploaded a
bounded number of times and the total stays linear in the journal's size.

Reading joins the base and the parts that continue it; a part that starts past the end (a
push cut short) ends the read there, a part already inside the base (a compaction that was
interrupted before it removed the parts) is skipped. Readers that take `journal.log` alone
(optuna-dashboard on a downloaded copy) see every run complete at its end, when the driver
uploads the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.fs as pafs

__all__ = ["PARTS_SUFFIX", "JournalUploads", "read_journal", "write_whole"]

PARTS_SUFFIX = ".parts"
_WIDTH = 16


def _parts_dir(path: str) -> str:
    return path + PARTS_SUFFIX


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as handle:
        return handle.read()


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as handle:
        handle.write(data)


def _parts(fs: pafs.FileSystem, path: str) -> list[tuple[int, str]]:
    infos = fs.get_file_info(pafs.FileSelector(_parts_dir(path), allow_not_found=True))
    found = []
    for info in infos:
        if info.type == pafs.FileType.File and info.base_name.isdigit():
            found.append((int(info.base_name), info.path))
    return sorted(found)


def read_journal(fs: pafs.FileSystem, path: str) -> bytes | None:
    """The stored journal (base and the parts that continue it); None when there is none."""
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    data = bytearray(_read(fs, path))
    for offset, part in _parts(fs, path):
        if offset > len(data):
            break  # a gap: the part before it never arrived
        chunk = _read(fs, part)
        if offset + len(chunk) > len(data):
            data += chunk[len(data) - offset :]
    return bytes(data)


def write_whole(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Upload the whole journal as the base, then drop the parts it now contains."""
    _write(fs, path, data)
    for _, part in _parts(fs, path):
        fs.delete_file(part)


@dataclass
class JournalUploads:
    """What one driver has uploaded of its journal: where the next part starts, and when to
    compact. Starts unknown (`stored=-1`): the first push uploads the whole file."""

    stored: int = -1
    """Bytes of the journal the storage holds (base and parts)."""
    base: int = 0
    """Bytes in the base object."""

    def push(self, fs: pafs.FileSystem, path: str, data: bytes) -> int:
        """Upload what `data` (the whole local journal) adds; returns the bytes uploaded."""
        if len(data) == self.stored:
            return 0
        parts_after = len(data) - self.base  # bytes the parts would hold after this push
        if self.stored < 0 or len(data) < self.stored or parts_after >= self.base:
            write_whole(fs, path, data)
            self.stored = self.base = len(data)
            return len(data)
        if self.stored == self.base:  # the first part since the base was written
            fs.create_dir(_parts_dir(path), recursive=True)
        _write(fs, f"{_parts_dir(path)}/{self.stored:0{_WIDTH}d}", data[self.stored :])
        appended, self.stored = len(data) - self.stored, len(data)
        return appended
