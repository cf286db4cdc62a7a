"""`make bench-judge`: the judge of chain replies (#27), measured (~1 min, no network; the LLM is a scripted
OpenAI-compatible server on 127.0.0.1).

1. The trained judge: trained as the release trains it (data/judge/labelled.jsonl's train half plus rows generated
   from both golden suites' facts), scored on the held-out half it never saw: agreement and Cohen's kappa with
   group-bootstrap and Wilson 95% intervals, per rubric, per kind of hard case; training and judging time.
2. The judge cache on a prompt-only change: helpdesk's chain (offline bindings: the test suite's keyword intent
   model and pixel-sum digit reader) over the whole golden suite, judged, then one response template reworded and
   judged again against the same cache: the hit rate, and how many replies the change touched.
3. The LLM path: the same judge section on `llm:openai` against the scripted endpoint (release_assets_tests/chains/
   llm_fakes.py, which fails a reply stating a number its facts do not hold, or saying "obviously"): calls, wall
   time and cases/s cold, then warm from the cache, then after the prompt-only change; and its calibration on the
   held-out half (a scripted judge is no real judge: the figure shows the gate machinery on an LLM, not a model).

``--print-only`` prints the section instead of writing it into BENCHMARKS.md.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from run import replace_section  # noqa: E402  (bench/ is not a package)

from release_assets.chains import llm  # noqa: E402
from release_assets.chains.build import build_chain  # noqa: E402
from release_assets.evaluation.chain_evaluation import build_chain_evaluation  # noqa: E402
from release_assets.evaluation.judge import Judge  # noqa: E402
from release_assets.evaluation.judge_calibration import calibrate  # noqa: E402
from release_assets.manifest import load_manifest  # noqa: E402
from release_assets.models import trainers as registry  # noqa: E402
from release_assets.models.judge_model import RUBRICS, RUNTIME, load_labelled  # noqa: E402
from release_assets_tests.chains.llm_fakes import FakeLLM, serve  # noqa: E402
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- judge: bench/judge.py -->", "<!-- /judge -->"
LABELLED = ROOT / "data" / "judge" / "labelled.jsonl"
KB = ROOT / "data" / "support" / "knowledge_base.yaml"
GOLDEN = ROOT / "data" / "golden" / "helpdesk.jsonl"
KEY_ENV = "BENCH_JUDGE_API_KEY"  # the scripted endpoint's key: any name an `llm:` mapping's api_key_env gives
# The prompt-only change: the cancellation reply reworded, nothing else.
CHANGED_TEMPLATE = "responses/cancel_order.j2"
CHANGE = ("We have received", "Thank you, we have received")


class _Loaded:
    def __init__(self, cls):
        self.cls = cls

    def load(self, path):
        return self.cls()


def train(work: Path) -> tuple[Path, float]:
    # The member as the releases declare it (helpdesk's and kbqa's judge are the same member).
    member = load_manifest(ROOT / "releases" / "helpdesk.yaml").members["judge"]
    out = work / "judge_model"
    out.mkdir()
    t0 = time.perf_counter()
    RUNTIME.build(member, None, out, ROOT)
    return out, time.perf_counter() - t0


def chain_with_judge(work: Path, name: str, section: dict) -> Path:
    chain = work / name
    shutil.copytree(ROOT / "prompts" / "helpdesk", chain)
    data = yaml.safe_load((chain / "chain.yaml").read_text())
    data["judge"] = section
    (chain / "chain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return chain


def evaluate(work: Path, chain: Path, model_dirs: dict, cache: Path, tag: str, labels: Path | None) -> tuple:
    labels_of = {"intent_model": KeywordIntents.labels, "vision_model": PixelSumDigits.labels, "judge_model": []}
    artifact = work / f"artifact_{tag}"
    build_chain(chain, KB, labels_of, artifact)
    out = work / f"eval_{tag}"
    out.mkdir()
    t0 = time.perf_counter()
    summary = build_chain_evaluation(artifact, model_dirs, GOLDEN, out, llm_cache_dir=cache, judge_labels=labels)
    return summary, time.perf_counter() - t0, out


def replies(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    return {r["id"]: json.dumps(r["outputs"].get("generate_response"), sort_keys=True) for r in rows}


def reword(chain: Path) -> None:
    path = chain / CHANGED_TEMPLATE
    path.write_text(path.read_text().replace(*CHANGE))


def cache_run(work: Path, section: dict, model_dirs: dict, tag: str, requests=lambda: 0) -> dict:
    """Cold, warm and after the prompt-only change, one cache; evaluation time, cache hits and (``requests``: the
    endpoint's request count so far) the requests each phase made."""
    chain, cache = chain_with_judge(work, f"chain_{tag}", section), work / f"cache_{tag}"
    runs = {}
    for phase in ("cold", "warm", "changed"):
        if phase == "changed":
            reword(chain)
        before = requests()
        summary, seconds, out = evaluate(work, chain, model_dirs, cache, f"{tag}_{phase}", None)
        part = summary["judge"]
        runs[phase] = {
            "seconds": seconds,
            "cases": part["cases"],
            "lookups": part["cache"]["lookups"],
            "hits": part["cache"]["hits"],
            "replies": replies(out),
            "pass_rate": part["pass_rate"],
            "requests": requests() - before,
        }
    runs["changed_replies"] = sum(runs["cold"]["replies"][k] != v for k, v in runs["changed"]["replies"].items())
    return runs


def _ci(pair: list[float]) -> str:
    return f"{pair[0]:.3f}-{pair[1]:.3f}"


def main() -> None:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t_all = time.perf_counter()
    labelled = load_labelled(LABELLED, list(RUBRICS))
    with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
        work = Path(tmp)
        model_dir, train_s = train(work)
        rubrics = {r: {"template": f"judge/{r}.j2"} for r in RUBRICS}
        spec_dir = ROOT / "prompts" / "helpdesk"
        model_section = {"backend": "model", "facts_from": ["extract_entities"], "rubrics": rubrics}
        from release_assets.chains.schema import JudgeSpec

        judge = Judge(JudgeSpec.model_validate(model_section), spec_dir, RUNTIME.load(model_dir), model_dir)
        t0 = time.perf_counter()
        cal = calibrate(judge, labelled)
        calibrate_s = time.perf_counter() - t0

        registry.MODEL_KINDS["bench_intent"] = _Loaded(KeywordIntents)
        registry.MODEL_KINDS["bench_vision"] = _Loaded(PixelSumDigits)
        registry.MODEL_KINDS["judge_model"] = RUNTIME
        models = {"intent_model": ("bench_intent", Path("-")), "vision_model": ("bench_vision", Path("-"))}
        model_runs = cache_run(work, model_section, {**models, "judge_model": ("judge_model", model_dir)}, "model")

        import os

        os.environ[KEY_ENV] = "sk-bench-judge"
        os.environ.pop(llm.CACHE_ENV, None)
        with serve(FakeLLM()) as fake:
            cfg = {"model": "scripted-judge", "base_url": fake.base_url, "api_key_env": KEY_ENV, "concurrency": 4}
            llm_section = {"backend": "llm:openai", "llm": cfg, "facts_from": ["extract_entities"], "rubrics": rubrics}
            llm_runs = cache_run(work, llm_section, models, "llm", fake.count)
            llm_judge = Judge(JudgeSpec.model_validate(llm_section), spec_dir, cache_dir=work / "cache_llm_cal")
            llm_cal = calibrate(llm_judge, labelled)
    spent = time.perf_counter() - t_all

    o = cal["overall"]
    lines = [
        MARK_BEGIN,
        "## The judge of chain replies (`make bench-judge`)",
        "",
        f"Measured {started} by `make bench-judge` (bench/judge.py) in {spent:.0f} s. The trained judge: "
        f"{cal['rows']} held-out rows of data/judge/labelled.jsonl ({o['groups']} customer messages) it never "
        f"trained on; trained in {train_s:.1f} s (200 labelled rows + rows generated from the golden suites' "
        f"facts), {cal['rows']} rows judged in {calibrate_s:.2f} s. Intervals: 95%, bootstrap over whole "
        "messages (2,000 resamples); Wilson's treats rows as independent.",
        "",
        "| judge on the held-out half | agreement (95% CI) | Wilson CI | Cohen's kappa (95% CI) |",
        "|---|---|---|---|",
        f"| trained judge, overall verdict | {o['accuracy']:.3f} ({_ci(o['accuracy_ci'])}) | "
        f"{_ci(o['accuracy_wilson_ci'])} | {o['kappa']:.3f} ({_ci(o['kappa_ci'])}) |",
        *(
            f"| trained judge, {r} | {v['accuracy']:.3f} | {_ci(v['accuracy_wilson_ci'])} | {v['kappa']:.3f} |"
            for r, v in cal["rubrics"].items()
        ),
        f"| scripted LLM judge (llm:openai, loopback), overall | {llm_cal['overall']['accuracy']:.3f} "
        f"({_ci(llm_cal['overall']['accuracy_ci'])}) | {_ci(llm_cal['overall']['accuracy_wilson_ci'])} | "
        f"{llm_cal['overall']['kappa']:.3f} ({_ci(llm_cal['overall']['kappa_ci'])}) |",
        "",
        "Which hard cases the trained judge gets right (agreement per kind, held-out rows): "
        + ", ".join(f"{k} {v:.0%}" for k, v in sorted(cal["by_kind"].items(), key=lambda kv: kv[1])),
        "",
        f"Judge cache on a prompt-only change (helpdesk, {model_runs['cold']['cases']} golden replies, two rubrics; "
        f"`{CHANGED_TEMPLATE}` reworded, which changed {model_runs['changed_replies']} replies):",
        "",
        "| backend | cold | warm (nothing changed) | after the prompt-only change |",
        "|---|---|---|---|",
    ]
    for name, runs in (("trained judge (onnxruntime)", model_runs), ("scripted LLM (llm:openai, loopback)", llm_runs)):
        cells = []
        for phase in ("cold", "warm", "changed"):
            r = runs[phase]
            cells.append(
                f"{r['hits']}/{r['lookups']} hits ({r['hits'] / r['lookups']:.1%}), evaluation {r['seconds']:.2f} s"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Requests to the scripted endpoint (concurrency 4): "
        + ", ".join(f"{phase} {llm_runs[phase]['requests']}" for phase in ("cold", "warm", "changed"))
        + ". An evaluation's seconds are the whole chain evaluation (chain run, latency sampling, judging, report), "
        "wall time on a shared 2-core machine.",
        MARK_END,
    ]
    if "--print-only" in sys.argv:
        print("\n".join(lines))
    else:
        replace_section(MARK_BEGIN, MARK_END, lines)


if __name__ == "__main__":
    main()
