"""A file system for tests of what is read from object storage: the local disk behind
pyarrow's `PyFileSystem` (so not a `LocalFileSystem`: code takes it for object storage), each
call held a moment like a round trip, the calls in flight and the files opened counted, and
every write refused."""

from __future__ import annotations

import threading
import time

import pyarrow.fs as pafs

__all__ = ["CountingHandler"]


class CountingHandler(pafs.FileSystemHandler):
    """The local file system, each call held a moment (a round trip), the most calls in
    flight at once counted."""

    def __init__(self) -> None:
        self.local, self.lock = pafs.LocalFileSystem(), threading.Lock()
        self.in_flight = self.most = self.opened = 0
        self.paths: list[str] = []  # every file opened, in order

    def _held(self, call):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.005)
            return call()
        finally:
            with self.lock:
                self.in_flight -= 1

    def get_file_info(self, paths):
        return self._held(lambda: self.local.get_file_info(paths))

    def get_file_info_selector(self, selector):
        return self._held(lambda: self.local.get_file_info(selector))

    def open_input_stream(self, path):
        with self.lock:
            self.opened += 1
            self.paths.append(path)
        return self._held(lambda: self.local.open_input_stream(path))

    def open_input_file(self, path):
        with self.lock:
            self.paths.append(path)
        return self._held(lambda: self.local.open_input_file(path))

    def get_type_name(self):
        return "counting"

    def equals(self, other):
        return self is other

    def normalize_path(self, path):
        return path

    def _refused(self, *args):  # reading writes nothing
        raise AssertionError(f"a write while reading: {args}")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _refused
    delete_file = move = copy_file = open_output_stream = open_append_stream = _refused
