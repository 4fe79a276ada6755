"""Pickle streams judged by their opcodes, never by loading them.

Unpickling runs code chosen by whoever wrote the file, so crownguard only walks the opcode
stream of the first bytes with `pickletools.genops` and notes which classes it would import
(GLOBAL / STACK_GLOBAL / INST). The classes say what the object is: a scikit-learn estimator,
PyTorch tensors, plain NumPy arrays, a pandas frame.
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass

from .formats import ModelFormat

# torch.save's legacy (non-zip) format starts by pickling this magic number with protocol 2.
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")

# Top-level packages whose classes in a pickle mean a trained model.
ML_PACKAGES = frozenset({
    "sklearn", "xgboost", "lightgbm", "catboost", "keras", "tensorflow", "tf_keras",
    "transformers", "statsmodels", "spacy", "gensim", "fastai", "prophet", "pmdarima",
    "river", "mlflow", "torch", "torchvision", "timm", "sentence_transformers", "peft",
    "jax", "flax", "optax", "haiku", "onnx", "skl2onnx", "imblearn", "hdbscan", "umap",
    "pycaret", "autogluon", "h2o", "sktime", "darts", "tensorflow_probability",
})
ARRAY_PACKAGES = frozenset({"numpy", "scipy", "cupy"})
DATA_PACKAGES = frozenset({"pandas", "polars", "pyarrow", "datetime", "decimal"})

_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                         "SHORT_BINSTRING", "BINSTRING", "STRING"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_FIRST_OPS = frozenset(b"(}]c")
MAX_OPCODES = 20_000


@dataclass(frozen=True)
class PickleScan:
    """What the opcodes of a pickle prefix reveal."""

    protocol: int | None
    globals: tuple[str, ...]
    opcodes: int
    truncated: bool

    def packages(self) -> set[str]:
        return {g.split(".", 1)[0].split(" ", 1)[0] for g in self.globals}


def looks_like_pickle(head: bytes) -> bool:
    """A cheap gate before the opcode walk: protocol 2+ header or a protocol 0/1 first opcode."""
    if len(head) < 2:
        return False
    if head[0] == 0x80:
        return 2 <= head[1] <= 5
    return head[0] in _FIRST_OPS


def scan_pickle(head: bytes) -> PickleScan | None:
    """Walk the opcodes of a pickle prefix; None when the bytes are not a pickle stream."""
    if not looks_like_pickle(head):
        return None
    found: list[str] = []
    # The top of the pickle's stack as far as STACK_GLOBAL cares: text, or None for anything
    # else. The memo holds what MEMOIZE/PUT saved, so a module name pushed again by GET (the
    # second class from `collections`) is named right.
    recent: list[str | None] = []
    memo: dict[int, str | None] = {}
    protocol: int | None = None
    count = 0
    truncated = False
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(head)):
            count += 1
            name = opcode.name
            if name == "PROTO":
                protocol = int(arg) if isinstance(arg, int) else None
            elif name in _STRING_OPS and isinstance(arg, (str, bytes)):
                recent = [*recent[-1:], arg if isinstance(arg, str) else arg.decode("latin-1")]
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in _PUT_OPS and isinstance(arg, int):
                memo[arg] = recent[-1] if recent else None
            elif name in _GET_OPS and isinstance(arg, int):
                recent = [*recent[-1:], memo.get(arg)]
            elif name == "STACK_GLOBAL":
                if len(recent) == 2 and recent[0] is not None and recent[1] is not None:
                    found.append(f"{recent[0]}.{recent[1]}")
                recent = [None]
            else:
                if name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", ".", 1) if " " in arg else arg)
                if opcode.stack_after:
                    recent = [*recent[-1:], None]
            if name == "STOP" or count >= MAX_OPCODES:
                break
    except ValueError:
        # genops raises at the end of a truncated prefix or on a byte that is no opcode.
        truncated = True
    except Exception:  # a hostile stream must not break detection
        truncated = True
    if protocol is None and (not found or count < 5):
        return None  # protocol 0/1 streams only count when they name a class
    if count < 2:
        return None
    return PickleScan(protocol, tuple(dict.fromkeys(found)), count, truncated)


def classify_pickle(scan: PickleScan) -> tuple[float, ModelFormat, str]:
    """Confidence that the pickle is a model, its format (pickle or joblib) and why."""
    packages = scan.packages()
    joblib = any(g.startswith("joblib.") for g in scan.globals)
    fmt = ModelFormat.JOBLIB if joblib else ModelFormat.PICKLE
    shown = ", ".join(scan.globals[:4])
    ml = sorted(packages & ML_PACKAGES)
    if "torch" in packages:
        return 0.95, ModelFormat.PYTORCH, f"pickle referencing PyTorch classes ({shown})"
    if ml:
        return 0.92, fmt, f"pickle of {', '.join(ml)} objects ({shown})"
    if packages & DATA_PACKAGES:
        return 0.15, fmt, f"pickle of tabular data ({shown})"
    if packages & ARRAY_PACKAGES:
        return 0.55, fmt, f"pickle of arrays that may be weights ({shown})"
    if scan.globals:
        return 0.3, fmt, f"pickle of other Python objects ({shown})"
    return 0.25, fmt, "pickle of plain Python values (no classes in the first bytes)"


# --- a symbolic reading of a pickle's value (structural fingerprints) ---------------------------


@dataclass(frozen=True)
class PickleGlobal:
    """A class or function the pickle names (never imported)."""

    name: str


@dataclass(frozen=True)
class PickleCall:
    """`callable(*args)` as the pickle would call it (REDUCE, NEWOBJ): never called."""

    func: object
    args: tuple[object, ...]


@dataclass(frozen=True)
class PicklePersistent:
    """A persistent id (how torch.save points at a tensor's storage)."""

    pid: object


class PickleDict(dict):
    """A dict the pickle builds (also an `OrderedDict()` call's result)."""


_MARK = object()
MAX_SYMBOLIC_OPCODES = 2_000_000


def symbolic_load(data: bytes) -> object | None:
    """The value a pickle would build, with every class and call left symbolic.

    Runs the pickle machine over `pickletools.genops` without importing or calling anything:
    a GLOBAL is a `PickleGlobal`, a REDUCE a `PickleCall`, a BINPERSID a `PicklePersistent`
    (an `OrderedDict()` call is a `PickleDict`, so a state dict reads as one). None when the
    stream breaks off before STOP or uses an opcode this reading does not know.
    """
    stack: list[object] = []
    memo: dict[int, object] = {}
    count = 0

    def pop_mark() -> list[object]:
        for at in range(len(stack) - 1, -1, -1):
            if stack[at] is _MARK:
                items = stack[at + 1:]
                del stack[at:]
                return items
        raise ValueError("no mark")

    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            count += 1
            if count > MAX_SYMBOLIC_OPCODES:
                return None
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                return stack[-1] if stack else None
            if name == "MARK":
                stack.append(_MARK)
            elif name == "EMPTY_DICT":
                stack.append(PickleDict())
            elif name in ("EMPTY_LIST",):
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in _STRING_OPS or name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
                                                 "BININT", "BININT1", "BININT2", "INT", "LONG",
                                                 "LONG1", "LONG4", "BINFLOAT", "FLOAT"):
                stack.append(arg)
            elif name in ("NEWTRUE", "NEWFALSE", "NONE"):
                stack.append({"NEWTRUE": True, "NEWFALSE": False, "NONE": None}[name])
            elif name in ("GLOBAL", "INST") and isinstance(arg, str):
                stack.append(PickleGlobal(arg.replace(" ", ".", 1)))
                if name == "INST":
                    stack.append(PickleCall(stack.pop(), tuple(pop_mark())))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                stack.append(PickleGlobal(f"{module}.{attr}"))
            elif name in _PUT_OPS:
                memo[int(arg)] = stack[-1]  # type: ignore[arg-type]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in _GET_OPS:
                stack.append(memo[int(arg)])  # type: ignore[arg-type]
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                stack[-n:] = [tuple(stack[-n:])]
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "DICT":
                pairs = pop_mark()
                stack.append(PickleDict(zip(pairs[::2], pairs[1::2], strict=False)))
            elif name in ("REDUCE", "NEWOBJ"):
                args, func = stack.pop(), stack.pop()
                args = args if isinstance(args, tuple) else (args,)
                if isinstance(func, PickleGlobal) and func.name == "collections.OrderedDict" \
                        and not args:
                    stack.append(PickleDict())
                else:
                    stack.append(PickleCall(func, args))
            elif name == "BINPERSID":
                stack.append(PicklePersistent(stack.pop()))
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                target = stack[-1]
                if isinstance(target, dict):
                    target[_hashable(key)] = value
            elif name == "SETITEMS":
                pairs = pop_mark()
                target = stack[-1]
                if isinstance(target, dict):
                    for key, value in zip(pairs[::2], pairs[1::2], strict=False):
                        target[_hashable(key)] = value
            elif name == "APPEND":
                value = stack.pop()
                if isinstance(stack[-1], list):
                    stack[-1].append(value)
            elif name == "APPENDS":
                values = pop_mark()
                if isinstance(stack[-1], list):
                    stack[-1].extend(values)
            elif name == "BUILD":
                stack.pop()  # the state a __setstate__ would get: not needed for structure
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            else:
                return None
    except Exception:  # a truncated or hostile stream: no structure, never an error
        return None
    return None


def _hashable(key: object) -> object:
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key
