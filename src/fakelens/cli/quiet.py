"""TensorFlow's start-up lines (oneDNN, CPU features, absl) kept off the terminal unless asked.

Set up before any command imports TensorFlow: `TF_CPP_MIN_LOG_LEVEL` silences what TensorFlow logs
once it runs, but the lines its C++ libraries log through absl as they load ignore it (TensorFlow
2.21: "WARNING: All log messages before absl::InitializeLog() ...", "oneDNN custom operations
are on ..."). So the first import of `tensorflow` runs with file descriptor 2 on /dev/null; a
failed import still raises, after stderr is back.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

#: TensorFlow's C++ log level: 0 everything, 1 no INFO, 2 no WARNING either, 3 no ERROR either.
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silence TensorFlow's own log lines for this process, or, `verbose`, show them all.

    An explicit TF_CPP_MIN_LOG_LEVEL in the environment is kept unless `verbose`.
    """
    if verbose:
        os.environ[LOG_LEVEL_ENV] = "0"
        if _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
        return
    os.environ.setdefault(LOG_LEVEL_ENV, "2")
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` where Python would, and hands it to a loader that silences stderr."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None  # not installed: the usual ModuleNotFoundError follows
        sys.meta_path.remove(self)  # only the first import loads the libraries
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the package sees its own loader
        with _stderr_to_null():
            self.loader.exec_module(module)


@contextmanager
def _stderr_to_null() -> Iterator[None]:
    """File descriptor 2 on /dev/null: C++ code writes there, past `sys.stderr`."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


_FINDER = _QuietFinder()
