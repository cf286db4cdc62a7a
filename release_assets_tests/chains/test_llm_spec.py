"""Load-time validation of llm steps, answer parsing and the response cache, without any model."""

import shutil
from pathlib import Path

import pytest
import yaml

from release_assets.chains import llm
from release_assets.chains.spec import ChainSpecError, load_chain
from release_assets_tests.chains.test_spec import LABELS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    target = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", target)
    return target


def _edit(chain_dir: Path, fn) -> None:
    path = chain_dir / "chain.llm.yaml"
    data = yaml.safe_load(path.read_text())
    fn(data["steps"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _load(chain_dir: Path):
    return load_chain(chain_dir, LABELS, chain_file="chain.llm.yaml")


def test_shipped_llm_variant_loads_next_to_the_offline_chain(chain_dir):
    spec, schemas = _load(chain_dir)
    assert [s.binding for s in spec.steps] == ["classifier:intent_model", "llm:openai", "llm:openai"]
    extract = spec.step("extract_entities")
    assert extract.llm.api_key_env == "OPENAI_API_KEY" and extract.llm.redact == ["email"]
    assert set(schemas["generate_response"].model_json_schema()["properties"]) == {"reply", "escalate"}
    offline, _ = load_chain(chain_dir, LABELS)
    assert all(s.llm is None and not s.is_llm for s in offline.steps)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s[1]["llm"].pop("model"), r"steps\[1\] \(extract_entities\): llm\.model: required for llm:openai"),
        (lambda s: s[1]["llm"].update(base_url="ftp://x"), r"llm\.base_url: 'ftp://x' is not an http\(s\)://"),
        (lambda s: s[2]["llm"].pop("base_url"), r"steps\[2\] \(generate_response\): llm\.base_url: required"),
        (lambda s: s[1].pop("llm"), r"llm: binding llm:openai needs an `llm:` mapping"),
        (lambda s: s[0].update(llm={"model": "m"}), r"llm: only a step with binding llm:openai"),
        (lambda s: s[1].update(binding="llm:anthropic"), r"binding: unknown LLM binding 'llm:anthropic'"),
        (lambda s: s[1]["llm"].update(redact=["ssn"]), r"llm\.redact: 'ssn' is neither an output field"),
        (lambda s: s[1]["llm"].update(temperature="hot"), r"steps\.1\.llm\.temperature: Input should be"),
        (lambda s: s[1]["llm"].update(concurrency=0), r"steps\.1\.llm\.concurrency: Input should be greater"),
        (lambda s: s[1]["llm"].update(path="/m"), r"llm\.path: only for llm:transformers"),
        (lambda s: s[1]["llm"].update(token="abc"), r"steps\.1\.llm: Value error, `token` is not allowed"),
    ],
)
def test_llm_config_errors_name_the_file_and_field(chain_dir, edit, message):
    _edit(chain_dir, edit)
    with pytest.raises(ChainSpecError, match=r"chain\.llm\.yaml: .*" + message):
        _load(chain_dir)


def test_extract_json_finds_the_first_object_in_prose():
    assert llm.extract_json('{"a": 1}') == {"a": 1}
    assert llm.extract_json('Sure: ```json\n{"a": {"b": 2}}\n``` and {"c": 3}') == {"a": {"b": 2}}
    assert llm.extract_json('{not json} then {"ok": true}') == {"ok": True}
    assert llm.extract_json("no json here") is None


def test_cache_is_atomic_sha256_named_and_tolerates_corruption(tmp_path):
    cache = llm.ResponseCache(tmp_path / "c")
    key = llm.ResponseCache.key({"messages": [{"role": "user", "content": "hi"}], "model": "m"})
    assert key == llm.ResponseCache.key({"model": "m", "messages": [{"content": "hi", "role": "user"}]})
    assert cache.get(key) is None
    cache.put(key, {"text": "hello", "tokens_in": 1})
    assert cache.get(key) == {"text": "hello", "tokens_in": 1}
    assert [p.name for p in (tmp_path / "c").iterdir()] == [f"{key}.json"]  # no temp files left behind
    (tmp_path / "c" / f"{key}.json").write_text("{trunc")
    assert cache.get(key) is None
