"""Zip and tar archives judged by their entry names.

PyTorch checkpoints, Keras v3 files and NumPy .npz are zips with a fixed layout; SavedModel
directories, Core ML packages and Hugging Face snapshots travel zipped or tarred. The names in
the central directory (or the tar headers at hand) are enough to tell them from an Office
document or a folder of photos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .formats import MODEL_COMPANION_NAMES, ModelFormat, base_name, format_from_name
from .window import ArchiveListing

_TORCH_PICKLE = re.compile(r"^(?:[^/]+/)?data\.pkl$")
_TORCH_MARKERS = re.compile(r"^(?:[^/]+/)?(?:\.data/version|version|byteorder|data/\d+|"
                            r"constants\.pkl|code/.+)$")
_WEIGHT_WORDS = ("weight", "bias", "kernel", "embed", "layer", "attn", "conv", "dense", "lm_head")


@dataclass(frozen=True)
class ArchiveVerdict:
    format: ModelFormat
    confidence: float
    evidence: str


def classify_listing(listing: ArchiveListing) -> ArchiveVerdict:
    """What a zip or tar holds, from its entry names."""
    names = listing.names
    lowered = [n.lower() for n in names]
    bases = [base_name(n) for n in lowered]
    kind = listing.kind
    container = "folder" if kind == "directory" else f"{kind} archive"
    torch_pickles = [n for n in names if _TORCH_PICKLE.match(n)]
    if kind == "zip" and torch_pickles and any(_TORCH_MARKERS.match(n) for n in names):
        flavour = "TorchScript" if any("constants.pkl" in n for n in names) else "torch.save"
        return ArchiveVerdict(ModelFormat.PYTORCH, 0.97,
                              f"PyTorch {flavour} zip ({torch_pickles[0]} + version records)")
    if kind == "zip" and "config.json" in lowered and (
            "model.weights.h5" in lowered or "model.weights.npz" in lowered):
        return ArchiveVerdict(ModelFormat.KERAS, 0.95,
                              "Keras v3 archive (config.json + model.weights)")
    if any(b == "saved_model.pb" for b in bases):
        return ArchiveVerdict(ModelFormat.TF_SAVEDMODEL, 0.93,
                              f"TensorFlow SavedModel in a {container} (saved_model.pb)")
    if any(".mlpackage/" in n or n.startswith("data/com.apple.coreml/") for n in lowered):
        return ArchiveVerdict(ModelFormat.COREML, 0.93, f"Core ML package in a {container}")
    if kind == "tar" and {"pickle", "storages", "tensors"} <= set(bases):
        return ArchiveVerdict(ModelFormat.PYTORCH, 0.95, "legacy PyTorch tar checkpoint")
    if kind == "zip" and names and all(b.endswith(".npy") for b in bases if b):
        weighty = sum(any(w in b for w in _WEIGHT_WORDS) for b in bases)
        confidence = 0.8 if weighty * 2 >= len(bases) else 0.55
        return ArchiveVerdict(ModelFormat.NUMPY, confidence,
                              f"NumPy .npz of {len(names)} arrays"
                              + (" named like layer weights" if confidence > 0.6 else ""))
    inner = [(n, format_from_name(n)) for n in names]
    models = [(n, f) for n, f in inner if f is not None and base_name(n).lower()
              not in MODEL_COMPANION_NAMES]
    if models:
        name, fmt = models[0]
        more = f" and {len(models) - 1} more" if len(models) > 1 else ""
        return ArchiveVerdict(fmt, 0.85, f"{container} containing model files ({name}{more})")
    shown = ", ".join(names[:3])
    count = listing.total_entries if listing.total_entries is not None else len(names)
    return ArchiveVerdict(ModelFormat.ARCHIVE, 0.05,
                          f"{container} of {count} entries, none a model ({shown})")
