"""Load a published release for serving: verified, extracted once per version, and ready to ``predict``.

Nothing is rebuilt between the gate and the server: the release unit's bundle is fetched from the release store,
every file is re-hashed against the bundle's own manifest before use (a tampered bundle is refused naming the
file), and the chain runs with the chain file the release was built with (recorded in the manifest).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from release_assets.chains.build import chain_knowledge
from release_assets.chains.render import environment
from release_assets.chains.runner import ChainRequest, ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.core.hashing import sha256_file
from release_assets.keys import is_evidence
from release_assets.manifest import installed_kinds
from release_assets.models.tabular import MODEL_FILE
from release_assets.models.trainers import MODEL_KINDS
from release_assets.provenance.keys import Trust
from release_assets.record.ledger import replay
from release_assets.record.verified import verified_manifest
from release_assets.release.bundle import BundleError, extract_bundle, member_digest, release_version
from release_assets.release.store import BUNDLE, ReleaseStore, StoreError, check_release_name, check_version
from release_assets.serving.requests import (
    PredictCall,
    RequestError,
    parse_chain_request,
    parse_features,
    parse_table_row,
)
from release_assets.serving.schemas import (
    CHAIN,
    CLASSIFIER,
    TABLE,
    Signature,
    chain_signature,
    classifier_signature,
    table_signature,
)

ALIASES = ("champion", "candidate", "canary")
VERIFIED = ".verified.json"  # written last into an extracted version: the manifest the files were checked against


class StepFailed(RuntimeError):
    """A chain step failed on a valid request (a model or template error): the server answers 500."""

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(message)
        self.errors = errors  # step -> error, counted as schema failures by the server's metrics


def resolve_version(store: ReleaseStore, release: str, version: str | None, alias: str | None) -> str:
    """An explicit version, or the one an alias points at: champion/candidate from the ledger, canary from the
    release's flag file (the version its canary variant serves)."""

    check_release_name(release)
    if version is not None and alias is not None:
        raise ValueError("give a version or an alias, not both")
    if version is not None:
        return check_version(version)
    alias = alias or "champion"
    if alias not in ALIASES:
        raise ValueError(f"alias {alias!r}: expected one of {', '.join(ALIASES)}")
    if alias == "canary":
        from release_assets.serving.flags import canary_version

        found = canary_version(store, release)
    else:
        state = replay(store.events(release))
        found = state.champion if alias == "champion" else state.candidate
    if found is None:
        hint = " (promote one, or pass --version)" if alias == "champion" else ""
        raise StoreError(f"{release} has no {alias}{hint}")
    return found


def _extract(
    store: ReleaseStore, release: str, version: str, cache_dir: Path, trust: Trust | None = None
) -> tuple[Path, dict[str, Any]]:
    """The verified files of ``release``/``version`` under ``cache_dir``, extracted once; every load re-hashes them.
    With ``trust`` (``serve --signed-only``), every load also checks the stored unit's signature by one of its
    keys, and that the extracted copy is of that signed bundle."""

    target = cache_dir / release / version
    marker = target / VERIFIED
    signed = verified_manifest(store, release, version, trust) if trust is not None else None
    if not marker.exists():
        manifest = verified_manifest(store, release, version)  # fetch, re-hash every entry, compare manifests
        work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{release}-{version}-"))
        try:
            bundle = store.fetch_bundle(release, version, work / BUNDLE)
            extract_bundle(bundle, work / "files", members=served_members(manifest))
            bundle.unlink()
            (work / VERIFIED).write_text(json.dumps(manifest, sort_keys=True))
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                work.rename(target)
            except OSError:  # another process extracted the same version first
                if not marker.exists():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    manifest = json.loads(marker.read_text())
    _check_marker(manifest, release, version, marker)
    if signed is not None and signed != manifest:
        raise BundleError(f"{marker}: the extracted copy is not of the signed bundle; refusing to serve it")
    # The extracted copy sits on a disk anyone may edit: it is trusted only file by file, on every load.
    listed = set()
    for name in served_members(manifest):
        for entry in manifest["members"][name]["files"]:
            path = target / "files" / entry["path"]
            listed.add(path)
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                raise BundleError(f"{path}: does not match the verified bundle's sha256; refusing to serve it")
    own = target / "files" / "manifest.json"  # the bundle's own copy, extracted with it: it must say the same
    if own.exists():
        listed.add(own)
        if json.loads(own.read_text()) != manifest:
            raise BundleError(f"{own}: differs from the manifest the files were verified against")
    # (A copy extracted before serving took only its own members holds the others too: listed, so not refused.)
    listed |= {target / "files" / f["path"] for m in manifest["members"].values() for f in m["files"]}
    unlisted = sorted(str(p) for p in (target / "files").rglob("*") if p.is_file() and p not in listed)
    if unlisted:
        raise BundleError(f"{unlisted[0]}: not in the verified bundle; refusing to serve {release} {version}")
    return target / "files", manifest


def served_members(manifest: dict[str, Any]) -> list[str]:
    """The members a server reads (models and chains): only these are extracted, so training data, splits and
    evaluation evidence never reach a serving machine's disk."""
    kinds = installed_kinds()
    return sorted(
        name
        for name, member in manifest["members"].items()
        if member["kind"] in kinds and kinds[member["kind"]].family in ("model", "chain")
    )


def _check_marker(manifest: dict[str, Any], release: str, version: str, marker: Path) -> None:
    """The marker vouches for the files, so it is itself tied to the version asked for: its member digests must
    recompute from its file list, and the release version from those digests (as ``verify_bundle`` does)."""

    if manifest.get("release") != release or manifest.get("version") != version:
        raise BundleError(f"{marker}: describes {manifest.get('release')} {manifest.get('version')}, not {version}")
    for name, member in manifest["members"].items():
        files = {f["path"].split("/", 1)[1]: f["sha256"] for f in member["files"]}
        if member_digest(files) != member["digest"]:
            raise BundleError(f"{marker}: member {name}'s digest does not match its files")
    roles = {n: {**m, "role": "evidence" if is_evidence(n) else "artifact"} for n, m in manifest["members"].items()}
    if release_version(roles) != version:
        raise BundleError(f"{marker}: its members do not make version {version}")


class LoadedRelease:
    """One verified release version, ready to answer requests; safe to call from several threads."""

    def __init__(
        self,
        release: str,
        version: str,
        root: Path,
        manifest: dict[str, Any],
        member_dirs: dict[str, Path] | None = None,
    ) -> None:
        """``member_dirs``: each member's folder, when not ``root / <member>`` (see :func:`release_from_dirs`)."""

        self.release, self.version, self.manifest = release, version, manifest
        members = manifest["members"]
        dirs = member_dirs if member_dirs is not None else {name: root / name for name in members}
        chains = [name for name, m in members.items() if m["kind"] == "prompt_chain"]
        models = {name: m["kind"] for name, m in members.items() if m["kind"] in MODEL_KINDS}
        self._predictors = {name: MODEL_KINDS[kind].load(dirs[name]) for name, kind in models.items()}
        # What it takes and answers (serving/schemas.py): the request model validates every request, and is what
        # /openapi.json and the Open Inference Protocol's metadata describe.
        self.signature: Signature
        if chains:
            self.kind = CHAIN
            self._chain_member = chains[0]
            self._runner = self._chain_runner(dirs[chains[0]], members[chains[0]].get("chain_file", "chain.yaml"))
            self.signature = chain_signature()
        elif len(self._predictors) == 1:
            [(self._model_name, self._model)] = self._predictors.items()
            # A table model (python_model, imported_model) takes the columns its signature declares.
            self._columns: dict[str, dict[str, Any]] | None = getattr(self._model, "features", None)
            self.kind = TABLE if isinstance(self._columns, dict) else CLASSIFIER
            labels = list(getattr(self._model, "labels", None) or [])
            if self.kind == CLASSIFIER:
                self._n_features = _feature_count(dirs, members)
                self.signature = classifier_signature(self._n_features, labels)
            else:
                task = getattr(self._model, "task", "multiclass")
                self.signature = table_signature(self._columns or {}, labels, task, _title(release))
        else:
            raise BundleError(f"{release} {version}: no chain and not exactly one model: nothing to serve")

    @property
    def embedding_model(self) -> Any:
        """The release's sentence-embedding model (the first by member name), or None: what compares a shadow
        pair's replies by meaning."""
        return next((p for _, p in sorted(self._predictors.items()) if hasattr(p, "similarity")), None)

    def _chain_runner(self, chain_dir: Path, chain_file: str):
        labels = {name: p.labels for name, p in self._predictors.items()}
        spec, schemas = load_chain(chain_dir / "chain", labels, chain_file)
        kb = chain_knowledge(chain_dir)
        self.chain_file = chain_file
        runner = ChainRunner(spec, schemas, self._predictors, kb)
        _freeze_templates(runner.directory)
        return runner

    def predict(
        self, request: Any, *, variant: str = "champion", request_id: str | None = None, observer: Any = None
    ) -> dict[str, Any]:
        """Answer one request; :class:`RequestError` for bad input, :class:`StepFailed` when a step fails."""
        # Hyphenated: a bare 32-hex id would look like a secret to the trace redactor and be masked.
        request_id = request_id or str(uuid.uuid4())
        head = {"release": self.release, "version": self.version, "variant": variant}
        if self.kind == TABLE:
            row = parse_table_row(request, self._columns or {}, self.signature.request)
            return {**head, **self._table_answer(row), "request_id": request_id}
        if self.kind == CLASSIFIER:
            features = parse_features(request, self._n_features, self.signature.request)
            proba = self._model.predict_proba([{"features": features}])[0]
            label = self._model.labels[int(proba.argmax())]
            probabilities = {name: round(float(p), 6) for name, p in zip(self._model.labels, proba, strict=True)}
            return {**head, "label": label, "probabilities": probabilities, "request_id": request_id}
        return {**head, **self._run_chain(parse_chain_request(request), request_id, observer)}

    @property
    def batchable(self) -> bool:
        """A chain whose steps all run here (no ``llm:`` binding): several requests answered in one run of the
        chain cost a fraction of what they cost one by one, as each model step takes them as one batch. A chain
        that calls an LLM is not: its requests would wait for each other's calls."""
        return self.kind == CHAIN and not self._runner.has_llm

    def predict_many(self, calls: Sequence[PredictCall]) -> list[dict[str, Any] | Exception]:
        """Answer several requests at once: for a :attr:`batchable` chain, one run of the chain over all of them;
        else one :meth:`predict` each. Each answer is what ``predict`` would have given that request alone, or
        the exception it would have raised (:class:`RequestError`, :class:`StepFailed`), returned, not raised."""
        if not self.batchable:
            return [self._answer_or_error(call) for call in calls]
        answers: list[dict[str, Any] | Exception] = []
        requests: list[ChainRequest] = []
        asked: list[PredictCall] = []
        for call in calls:
            try:
                parsed = parse_chain_request(call.request)
            except RequestError as exc:
                answers.append(exc)
                continue
            answers.append({})  # filled in below, in order
            # Positions, not the request ids, name the requests in the run: two clients may send the same id.
            requests.append(ChainRequest(str(len(asked)), parsed.message, parsed.digits))
            asked.append(call)
        if not requests:
            return answers
        if len(requests) == 1:  # nothing to share: exactly predict's path, exceptions included
            return [answer if isinstance(answer, Exception) else self._answer_or_error(asked[0]) for answer in answers]
        observers = {str(n): (c.request_id, c.observer) for n, c in enumerate(asked) if c.observer is not None}
        start = time.perf_counter()
        try:
            ran = self._runner.run(requests, observer=_ByRequest(observers) if observers else None)
        except Exception:
            # A binding or model raised for the batch as a whole (a step error of one request is in its result):
            # each request again alone, so only the one that makes it raise fails, as predict would have.
            alone = iter(self._answer_or_error(call) for call in asked)
            return [answer if isinstance(answer, Exception) else next(alone) for answer in answers]
        # Each request waited for the whole batch: that is its total (the steps show its share of each).
        waited_ms = (time.perf_counter() - start) * 1000
        results, calls_asked = iter(ran), iter(asked)
        for i, answer in enumerate(answers):
            if isinstance(answer, Exception):
                continue
            result, call = next(results), next(calls_asked)
            if result.errors:
                listed = "; ".join(f"{step}: {error}" for step, error in result.errors.items())
                answers[i] = StepFailed(f"request {call.request_id}: {listed}", dict(result.errors))
                continue
            head = {"release": self.release, "version": self.version, "variant": call.variant}
            fields = self._chain_fields(result.outputs)
            answers[i] = {**head, **fields, "latency_ms": _latencies(result, waited_ms), "request_id": call.request_id}
        return answers

    def _answer_or_error(self, call: PredictCall) -> dict[str, Any] | Exception:
        try:
            return self.predict(call.request, variant=call.variant, request_id=call.request_id, observer=call.observer)
        except Exception as exc:  # returned as predict_many promises; the caller raises it for that request
            return exc

    def _table_answer(self, features: dict[str, Any]) -> dict[str, Any]:
        rows = [{"features": features}]
        if getattr(self._model, "task", "multiclass") == "regression":
            return {"prediction": float(self._model.predict_values(rows)[0])}
        proba = self._model.predict_proba(rows)[0]
        probabilities = {name: round(float(p), 6) for name, p in zip(self._model.labels, proba, strict=True)}
        return {"label": self._model.labels[int(proba.argmax())], "probabilities": probabilities}

    def _run_chain(self, parsed, request_id: str, observer: Any) -> dict[str, Any]:
        run_kwargs = {"observer": observer} if observer is not None else {}
        start = time.perf_counter()
        [result] = self._runner.run([ChainRequest(request_id, parsed.message, parsed.digits)], **run_kwargs)
        total_ms = (time.perf_counter() - start) * 1000
        if result.errors:
            listed = "; ".join(f"{step}: {error}" for step, error in result.errors.items())
            raise StepFailed(f"request {request_id}: {listed}", dict(result.errors))
        fields = self._chain_fields(result.outputs)
        return {**fields, "latency_ms": _latencies(result, total_ms), "request_id": request_id}

    def _chain_fields(self, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The response's named fields, found through the chain's own ``evaluation:`` mapping (no step names)."""
        mapping = self._runner.spec.evaluation

        def value(key: str) -> Any:
            target = mapping.target(key) if hasattr(mapping, key) else None
            if target is None:
                return None
            step, field = target
            return outputs.get(step, {}) if field is None else outputs.get(step, {}).get(field)

        decided = mapping.target("intent")
        reply = mapping.target("reply")
        decision_step = outputs.get(decided[0], {}) if decided else {}
        reply_step = outputs.get(reply[0], {}) if reply else {}
        return {
            "intent": value("intent"),
            "confidence": decision_step.get("confidence", decision_step.get("score")),
            "entities": {k: v for k, v in (value("entities") or {}).items() if v is not None},
            "reply": value("reply"),
            "escalate": bool(reply_step.get("escalate", False)),
            "abstained": bool(value("abstained") if hasattr(mapping, "abstained") else reply_step.get("abstained")),
        }


class _ByRequest:
    """A chain observer for a batch run under positional ids: each request's steps go to that request's own
    observer, under its own request id."""

    def __init__(self, observers: dict[str, tuple[str, Any]]) -> None:
        self._observers = observers

    def on_step(self, position: str, *step: Any) -> None:
        found = self._observers.get(position)
        if found is not None:
            request_id, observer = found
            observer.on_step(request_id, *step)


def _freeze_templates(template_dir: Path) -> None:
    """Compile every template now, from the files just verified, and never read them again: Jinja otherwise
    loads a template on first use and re-reads it when its mtime changes, which would serve an unverified edit."""

    env = environment(str(template_dir))
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)
    env.auto_reload = False


def _latencies(result, total_ms: float) -> dict[str, float]:
    steps = {step: round(u.get("latency_ms", 0.0), 3) for step, u in result.usage.items()}
    return {**steps, "total": round(total_ms, 3)}


def _title(release: str) -> str:
    """A release name as the prefix of its models' names in /openapi.json: loans_v2 -> LoansV2."""
    return "".join(part[:1].upper() + part[1:] for part in release.replace("-", "_").split("_")) or "Table"


def _feature_count(dirs: dict[str, Path], members: dict[str, Any]) -> int:
    for name, member in members.items():
        if member["kind"] == "tabular_classifier":
            model = json.loads((dirs[name] / MODEL_FILE).read_text())
            return len(model["mean"])
    raise BundleError("no tabular model to read the feature count from")


def release_from_dirs(
    release: str, version: str, members: dict[str, tuple[str, Path]], chain_file: str = "chain.yaml"
) -> LoadedRelease:
    """A release that is not published yet, from its members' build folders (name -> (kind, folder)): answered by
    the very code (and response fields) serving uses, e.g. the candidate side of the shadow replay. Nothing is
    verified here: the folders are the build cache's own artifacts, not a downloaded bundle."""
    manifest = {
        "release": release,
        "version": version,
        "members": {
            name: {"kind": kind, **({"chain_file": chain_file} if kind == "prompt_chain" else {})}
            for name, (kind, _) in members.items()
        },
    }
    return LoadedRelease(release, version, Path(), manifest, {name: path for name, (_, path) in members.items()})


def load_release(
    store: ReleaseStore,
    release: str,
    version: str | None = None,
    alias: str | None = None,
    cache_dir: Path | None = None,
    trust: Trust | None = None,
) -> LoadedRelease:
    """Load ``release`` at ``version`` (or the version ``alias`` points at; default: the champion), verified; with
    ``trust``, only signed by one of its keys (refused unsigned, by another key, or changed since signing)."""
    version = resolve_version(store, release, version, alias)
    cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "release_assets_serving")
    cache_dir.mkdir(parents=True, exist_ok=True)
    root, manifest = _extract(store, release, version, cache_dir, trust)
    return LoadedRelease(release, version, root, manifest)


__all__ = ["LoadedRelease", "RequestError", "StepFailed", "load_release", "release_from_dirs", "resolve_version"]
