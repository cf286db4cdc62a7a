"""The prompt-chain config schema (``prompts/<chain>/chain.yaml``): steps, templates, bindings, output fields and
the golden-suite mapping, as pydantic models. What a loaded chain must also satisfy across steps and files is in
``spec_checks.py``; ``spec.load_chain`` runs both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LLM_BINDINGS = {"llm:openai", "llm:transformers"}
# Used to redact a `redact:` name from prompt text when the step declares no pattern of that name.
REDACT_PATTERNS = {
    "email": r"[\w.+-]+@[\w-]+\.[\w.-]+\w",
    "phone": r"\+?\d[\d ()-]{7,}\d",
}
# Keys that look like a credential: a key belongs in the environment, never in a versioned chain file.
SECRET_KEYS = {"api_key", "apikey", "key", "token", "secret", "password", "authorization"}
SCALARS: dict[str, type] = {"str": str, "float": float, "int": int, "bool": bool}


class ChainSpecError(ValueError):
    """A chain config that cannot run; the message names the file and the field."""


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["str", "float", "int", "bool", "enum"] = "str"
    optional: bool = False
    enum: list[str] | None = None
    enum_from: str | None = None  # "<model member>.labels": the values a classifier can emit


class PriceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)  # USD per 1000 prompt tokens
    output: float = Field(ge=0)  # USD per 1000 completion tokens


class LLMSpec(BaseModel):
    """The ``llm:`` mapping of a step bound to ``llm:openai`` or ``llm:transformers``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=512, gt=0)
    seed: int | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)  # first retry delay; doubles per attempt, with jitter
    schema_retries: int = Field(default=1, ge=0, le=5)
    concurrency: int = Field(default=4, ge=1, le=64)
    cache: bool = True
    price_per_1k: PriceSpec | None = None
    redact: list[str] = Field(default_factory=list)
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    # llm:transformers only
    path: str | None = None
    max_new_tokens: int = Field(default=128, gt=0)
    do_sample: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower() in SECRET_KEYS:
                    # The message names the field only: echoing the value would leak the key into logs.
                    raise ValueError(
                        f"`{key}` is not allowed: never put a credential in chain.yaml; name the environment "
                        "variable that holds it with `api_key_env`"
                    )
        return data


class ClarifySpec(BaseModel):
    """The ``clarify:`` mapping of a template step: when to ask a question instead of acting on the decision.

    Declared in the chain, not in code: which intents need which entities is a support policy, and the release
    that changes it is one YAML edit that the golden suite then measures.
    """

    model_config = ConfigDict(extra="forbid")
    template: str  # rendered with `clarify.missing` and `clarify.unsure` (CLARIFY_FIELDS)
    # "<step>.<bool field>" refs: any of them true means an earlier step is not sure enough to act on
    when: list[str] = Field(default_factory=list)
    # <value an earlier step decided>: [<entity field of an earlier step>, ...] it cannot be acted on without
    requires: dict[str, list[str]] = Field(default_factory=dict)


class RetrievalSpec(BaseModel):
    """The ``retrieval:`` mapping of a retrieve step: how a question is scored against each fact (retrieval.py).

    Without it a step keeps the default of its binding: ``embedding`` for ``retrieve:<model>``, ``tfidf`` for
    ``retrieve``. Every fact is indexed with its title (the id) and its help-centre headings.
    """

    model_config = ConfigDict(extra="forbid")
    # tfidf: character n-grams; embedding: cosine of the release's sentence embeddings; bm25: keywords (bm25.py);
    # hybrid: (1 - bm25_weight) * cosine + bm25_weight * BM25, both in [0, 1]; trained: a logistic-regression head
    # over the frozen sentence embeddings, fitted at load on each fact's title, headings and sentence (classes =
    # facts), scoring a question by the probability of each fact
    method: Literal["tfidf", "embedding", "bm25", "hybrid", "trained"]
    # embedding side only: `joined` embeds title, headings and fact as one passage; `each` embeds them apart
    # and a fact scores its best passage (max-pooling)
    passages: Literal["joined", "each"] | None = None
    bm25_weight: float | None = Field(default=None, gt=0, lt=1)  # hybrid only, and required there
    k1: float | None = Field(default=None, gt=0)  # bm25 and hybrid: term-frequency saturation (default 1.2)
    b: float | None = Field(default=None, ge=0, le=1)  # bm25 and hybrid: passage-length normalisation (0.75)
    # abstain also when the best fact beats the second by less than this: the question is between two facts
    min_margin: float = Field(default=0.0, ge=0, le=1)
    # trained only: the head's inverse L2 regularisation strength (scikit-learn's C; default 1.0): smaller keeps the
    # fact probabilities flatter, so fewer questions reach min_score
    c: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fields_of_the_method(self) -> RetrievalSpec:
        uses_bm25 = self.method in ("bm25", "hybrid")
        if self.method == "hybrid" and self.bm25_weight is None:
            raise ValueError("bm25_weight: method hybrid needs the weight of BM25 against the embedding cosine")
        if self.method != "hybrid" and self.bm25_weight is not None:
            raise ValueError(f"bm25_weight: only method hybrid takes it (method is {self.method})")
        for name in ("k1", "b"):
            if not uses_bm25 and getattr(self, name) is not None:
                raise ValueError(f"{name}: a BM25 parameter; method {self.method} uses no BM25")
        if self.passages is not None and self.method not in ("embedding", "hybrid"):
            raise ValueError(
                f"passages: how facts are embedded; method {self.method} "
                + ("learns from every passage apart" if self.method == "trained" else "embeds nothing")
            )
        if self.c is not None and self.method != "trained":
            raise ValueError(f"c: the trained head's regularisation; method {self.method} trains nothing")
        return self

    @property
    def embeds(self) -> bool:
        return self.method in ("embedding", "hybrid", "trained")


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    template: str
    binding: str
    output: dict[str, FieldSpec | str]
    patterns: dict[str, str] = Field(default_factory=dict)
    catalogue: str | None = None
    attachment: str | None = None  # e.g. vision:vision_model reads an attached image sequence ...
    attachment_field: str = "order_id"  # ... into this output field
    escalate_intents: list[str] = Field(default_factory=list)
    min_score: float | None = Field(default=None, ge=0, le=1)  # retrieve only: below it, no fact (abstain)
    retrieval: RetrievalSpec | None = None  # retrieve only: the scoring method (default: its binding's)
    # classifier only: below it the step outputs `unsure: true`; "model" reads the threshold the model's trainer
    # chose on its validation split (a number overrides it, e.g. 0 never abstains)
    min_confidence: float | Literal["model"] | None = Field(default=None)
    clarify: ClarifySpec | None = None  # template only: ask instead of acting (see ClarifySpec)
    llm: LLMSpec | None = None  # only for llm:openai / llm:transformers bindings

    @property
    def is_llm(self) -> bool:
        return self.binding in LLM_BINDINGS

    @property
    def binding_kind(self) -> str:
        return self.binding.split(":", 1)[0]

    @property
    def binding_target(self) -> str | None:
        return self.binding.split(":", 1)[1] if ":" in self.binding else None

    @property
    def python_function(self) -> str | None:
        """``package.module:function`` of a ``python:`` binding (spec_checks checks its shape), else None."""
        return self.binding_target if self.binding_kind == "python" else None

    def fields(self) -> dict[str, FieldSpec]:
        """Output fields, accepting the shorthand ``name: float?`` for ``{type: float, optional: true}``."""
        out = {}
        for name, spec in self.output.items():
            if isinstance(spec, str):
                base = spec.rstrip("?")
                if base not in SCALARS:
                    raise ValueError(f"output.{name}: unknown type {spec!r} (use str, float, int, bool)")
                spec = FieldSpec(type=base, optional=spec.endswith("?"))
            out[name] = spec
        return out


class EvaluationSpec(BaseModel):
    """Which step output each golden field is scored against (evaluation/golden.py reads nothing else).

    The chain names its own steps, so the mapping lives with them: a release whose steps are called differently
    is still one YAML file. A key left out is a metric not measured, not a metric that fails.
    """

    model_config = ConfigDict(extra="forbid")
    intent: str | None = None  # "<step>.<field>": compared with expected.intent -> intent_accuracy
    entities: str | None = None  # "<step>": its whole output compared with expected.entities -> entity_f1
    reply: str | None = None  # "<step>.<field>", a str: must_contain, must_not_contain, reference_reply
    # "<step>.<field>", a bool: the chain asked instead of acting -> abstain_rate, confident_wrong_rate
    abstained: str | None = None

    def target(self, key: str) -> tuple[str, str | None] | None:
        """``(step, field)`` a key is mapped to (field None for a whole step), or None when it is not mapped."""
        ref = getattr(self, key)
        if ref is None:
            return None
        step, _, name = ref.partition(".")
        return step, name or None


class RubricSpec(BaseModel):
    """One rubric of the judge: the template that words it (for an LLM judge, the whole prompt; for the trained
    judge, the rubric's definition, part of its cache key) and the score a reply needs to pass it."""

    model_config = ConfigDict(extra="forbid")
    template: str  # a file of the chain folder, rendered with `message`, `facts` (a list of sentences) and `reply`
    threshold: float = Field(default=0.5, ge=0, le=1)


class JudgeSpec(BaseModel):
    """The ``judge:`` section: who judges each golden reply, on which rubrics, against which facts.

    ``backend`` is ``model`` (the judge_model among the models the chain uses, run by onnxruntime: no endpoint;
    found when the evaluation runs, so serving and the chain's own tests need not load it) or ``llm:openai`` (any
    OpenAI-compatible endpoint, configured by ``llm:`` as a step's). The facts a reply is
    judged against are the ones it was given: the knowledge-base entries the reply step's template read, and the
    output fields of the steps named in ``facts_from`` (e.g. the extracted order number).
    """

    model_config = ConfigDict(extra="forbid")
    backend: Literal["model", "llm:openai"]
    llm: LLMSpec | None = None  # llm:openai only
    rubrics: dict[str, RubricSpec] = Field(min_length=1)
    facts_from: list[str] = Field(default_factory=list)  # step ids whose outputs the reply step also saw

    @property
    def by_model(self) -> bool:
        return self.backend == "model"


class ChainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    steps: list[StepSpec] = Field(min_length=1)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    judge: JudgeSpec | None = None  # judges each golden reply (evaluation/judge.py); needs `evaluation.reply`
    directory: Path | None = Field(default=None, exclude=True)
    chain_file: str = Field(default="chain.yaml", exclude=True)  # which file of `directory` it was read from

    @property
    def path(self) -> Path:
        """The chain file, as error messages name it."""
        return (self.directory or Path()) / self.chain_file

    def step(self, step_id: str) -> StepSpec:
        return next(s for s in self.steps if s.id == step_id)


BINDINGS = {"classifier", "vision", "patterns", "template", "llm", "retrieve", "python"}
# A python binding names a function of the team's own package: `python:package.module:function` (bindings.py).
PYTHON_BINDING = "python:package.module:function"
# What the offline bindings that build their output themselves emit (bindings.py): a declared field they never
# fill, or one they fill that is not declared, would fail every case at run time instead of once, here.
RETRIEVE_OUTPUT = {"fact": "str", "score": "float"}
TEMPLATE_OUTPUT = {"reply": "str", "escalate": "bool", "abstained": "bool"}  # escalate is optional
