"""A pickle module for pysyncobj that cannot run code: no class, no function, no global.

pysyncobj stores its log entries as `type byte + pickle` and unpickles them as it applies them
(and its snapshot and journal meta too). Our Raft transport never carries those bytes over the
network (it rebuilds them from validated MessagePack, specs/0005 RAFT-4), so this is the second
wall: every `loads` pysyncobj performs goes through `find_class`, which refuses everything but
the one callable protocol 2 needs for `bytes` (`_codecs.encode(text, "latin1")`), and that one
is replaced by a function that can do nothing else.
"""

import io
import pickle
from typing import Any

PROTOCOL = 2  # what pysyncobj writes; fixed so that entries are byte-identical on every replica


class RefusedPickle(pickle.UnpicklingError):
    """A pickle that names a global: never loaded, whatever it names."""


def _latin1(text: str, encoding: str) -> bytes:
    if encoding != "latin1" or not isinstance(text, str):
        raise RefusedPickle(f"refused _codecs.encode with {encoding!r}")
    return text.encode("latin1")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        raise RefusedPickle(f"refused global {module}.{name}")


def loads(data: bytes | str) -> Any:
    return _Unpickler(io.BytesIO(to_bytes(data))).load()


def load(file: io.BufferedIOBase) -> Any:
    return _Unpickler(file).load()


def dumps(obj: object, protocol: int | None = None) -> bytes:
    return pickle.dumps(obj, PROTOCOL)


def dump(obj: object, file: io.BufferedIOBase, protocol: int | None = None) -> None:
    pickle.dump(obj, file, PROTOCOL)


def to_bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode("utf-8")
