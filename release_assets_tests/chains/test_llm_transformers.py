"""llm:transformers with a tiny random GPT-2 saved by the test: it loads once, generates, and fails the format gate."""

import shutil
from pathlib import Path

import pytest
import yaml

from release_assets.chains import llm
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden import evaluate
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
WORDS = ["the", "a", "order", "refund", "email", "product", "amount", "date", "message", "json", "null"]
WORDS += ["{", "}", ":", ",", '"', "12345"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide GPT-2 with random weights and a word-level tokenizer: seconds to build, pure nonsense."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[UNK]", "[PAD]", "[EOS]", *dict.fromkeys(WORDS)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()  # joins tokens with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=512, n_embd=32, n_layer=2, n_head=2, bos_token_id=2, eos_token_id=2
    )
    path = tmp_path_factory.mktemp("tiny_lm")
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def chain_dir(tmp_path, tiny_lm, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local path must never need the hub
    target = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", target)
    data = yaml.safe_load((target / "chain.yaml").read_text())
    data["steps"][1].update(
        template="extract_entities.llm.j2",
        binding="llm:transformers",
        llm={"path": str(tiny_lm), "max_new_tokens": 6, "do_sample": False, "schema_retries": 1},
    )
    (target / "chain.tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def _runner(chain_dir: Path, cache_dir: Path | None = None) -> ChainRunner:
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()}, "chain.tiny.yaml")
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    return ChainRunner(spec, schemas, predictors, kb, llm_cache_dir=cache_dir)


def test_tiny_lm_generates_but_fails_the_format_gate(chain_dir, tiny_lm, tmp_path):
    cases = [
        {"id": "1", "message": "refund for order 12345", "expected": {"intent": "refund", "entities": {}}},
        {"id": "2", "message": "where is my order", "expected": {"intent": "order_status", "entities": {}}},
    ]
    summary, results = evaluate(_runner(chain_dir, tmp_path / "cache"), cases)
    assert summary["metrics"]["format_valid"] == 0.0
    assert all(r.errors["extract_entities"].startswith("schema: ") for r in results)
    assert all("generate_response" not in r.outputs for r in results)
    traces = results[0].traces
    assert len(traces) == 2 and all(t["raw"].strip() and t["tokens_out"] > 0 for t in traces), traces  # it generated
    assert summary["metrics"]["tokens_out"] > 0 and summary["metrics"]["llm_calls"] == 4
    assert "cost_usd" not in summary["metrics"]  # no price table configured
    # Loaded once per process, keyed by the resolved path; a second evaluation is answered by the cache.
    assert str(tiny_lm.resolve()) in llm._MODELS
    model = llm.load_causal_lm(str(tiny_lm))
    assert model is llm.load_causal_lm(str(tiny_lm))
    again, results2 = evaluate(_runner(chain_dir, tmp_path / "cache"), cases)
    assert again["metrics"]["llm_calls"] == 0 and again["metrics"]["cache_hits"] == 4
    assert [r.errors for r in results2] == [r.errors for r in results]


def test_transformers_step_needs_a_path(chain_dir):
    data = yaml.safe_load((chain_dir / "chain.tiny.yaml").read_text())
    data["steps"][1]["llm"] = {"max_new_tokens": 4}
    (chain_dir / "chain.tiny.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ValueError, match=r"chain\.tiny\.yaml: steps\[1\] \(extract_entities\): llm\.path: required"):
        _runner(chain_dir)
