"""The member kinds this package ships, declared exactly as a plugin declares its own: each object below is named
by an entry point of the group ``release_assets.member_kinds`` in ``pyproject.toml``, and the registry
(``kinds.py``) finds them there, as it finds a third-party package's.
"""

from __future__ import annotations

from release_assets.manifest.external_models import ImportedModel, PythonModel
from release_assets.manifest.gates import (
    CHAIN_GATES,
    DATASET_GATES,
    MODEL_GATES,
    TABLE_MODEL_GATES,
    TRAINED_MODEL_GATES,
)
from release_assets.manifest.judge_model import JudgeModel
from release_assets.manifest.kinds import TASKS, MemberKind
from release_assets.manifest.models import (
    ImageClassifier,
    JsonlDataset,
    PromptChain,
    SentenceEmbedder,
    SklearnDataset,
    TabularClassifier,
    TextClassifier,
)
from release_assets.manifest.table import TableDataset

SKLEARN_DATASET = MemberKind(
    "sklearn_dataset",
    "dataset",
    SklearnDataset,
    "release_assets.datasets.build:BUILTIN",
    "A dataset scikit-learn ships (iris, digits), validated row by row.",
    gates=DATASET_GATES,
    tags=frozenset({"sklearn"}),
)
JSONL_DATASET = MemberKind(
    "jsonl_dataset",
    "dataset",
    JsonlDataset,
    "release_assets.datasets.build:BUILTIN",
    "Support messages from a JSONL file, validated against the `support_message` schema.",
    gates=DATASET_GATES,
    tags=frozenset({"jsonl"}),
)
TABLE = MemberKind(
    "table",
    "dataset",
    TableDataset,
    "release_assets.datasets.table:RUNTIME",
    "A table from a CSV, Parquet or JSONL file, checked against its declared schema (pandera).",
    gates=DATASET_GATES,
    tags=frozenset({"table"}),
    tasks=frozenset(TASKS),
)
TABULAR_CLASSIFIER = MemberKind(
    "tabular_classifier",
    "model",
    TabularClassifier,
    "release_assets.models.trainers:TABULAR",
    "Standardised multinomial logistic regression (scikit-learn), stored as JSON parameters.",
    gates=MODEL_GATES,
    tags=frozenset({"sklearn"}),
)
IMAGE_CLASSIFIER = MemberKind(
    "image_classifier",
    "model",
    ImageClassifier,
    "release_assets.models.trainers:IMAGE",
    "Small CNN (torch) reading 8x8 digit images, stored as safetensors and exported to ONNX (served by onnxruntime).",
    gates=MODEL_GATES,
    tags=frozenset({"pytorch"}),
)
TEXT_CLASSIFIER = MemberKind(
    "text_classifier",
    "model",
    TextClassifier,
    "release_assets.models.trainers:TEXT",
    "BERT-style encoder (transformers) with a WordPiece vocabulary learned from the train split, stored as "
    "safetensors and exported to ONNX (served by onnxruntime with `tokenizers` alone).",
    gates=MODEL_GATES | {"invariance_rate", "directional_rate", "mft_accuracy"},
    tags=frozenset({"transformers"}),
)
PYTHON_MODEL = MemberKind(
    "python_model",
    "model",
    PythonModel,
    "release_assets.models.python_model:RUNTIME",
    "A model your own function trains from a table's train split, stored in a safe format (skops or ONNX).",
    gates=TRAINED_MODEL_GATES,
    tags=frozenset({"python"}),
    tasks=frozenset(TASKS),
)
IMPORTED_MODEL = MemberKind(
    "imported_model",
    "model",
    ImportedModel,
    "release_assets.models.imported:RUNTIME",
    "A model trained elsewhere (an ONNX or skops file): nothing is trained, the same evaluation and gates apply.",
    gates=TABLE_MODEL_GATES,
    tags=frozenset({"onnx"}),
    tasks=frozenset(TASKS),
)
PROMPT_CHAIN = MemberKind(
    "prompt_chain",
    "chain",
    PromptChain,
    "release_assets.chains.runner:ChainRunner",
    "A prompt chain (chain.yaml, templates, step schemas) evaluated on its golden suite.",
    gates=CHAIN_GATES,
    tags=frozenset({"jinja"}),
)
SENTENCE_EMBEDDER = MemberKind(
    "sentence_embedder",
    "model",
    SentenceEmbedder,
    "release_assets.models.embedding:RUNTIME",
    "Pre-trained sentence embeddings (weights from a pinned package or a folder, checked by sha256), exported to "
    "ONNX and served by onnxruntime: a chain's retrieval and the golden suite's semantic similarity.",
    gates=frozenset({"contract"}),
    tags=frozenset({"onnx", "transformers"}),
)
JUDGE_MODEL = MemberKind(
    "judge_model",
    "model",
    JudgeModel,
    "release_assets.models.judge_model:RUNTIME",
    "A judge of chain replies (factual consistency with the facts a reply was given; tone): a logistic regression "
    "per rubric over named features, trained on a hand-labelled set's train half and rows generated from golden "
    "facts, exported to ONNX and served by onnxruntime (a chain's `judge:` section names it: no endpoint).",
    gates=frozenset({"contract"}),
    tags=frozenset({"onnx", "sklearn"}),
)
