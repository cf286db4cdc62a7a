"""Content hashes: canonical JSON, file digests and the code version an asset is keyed on.

Only the module-list form of ``code_version`` is tested here; how modules are collected is not.
"""

from __future__ import annotations

import hashlib

from release_assets.core.hashing import code_version, files_digest, sha256_file, sha256_json

MODULE = "release_assets.release.watch"  # any small module of the project: its source is hashed, never imported


def test_sha256_json_ignores_key_order_and_whitespace_but_not_values():
    a = {"b": [1, 2], "a": {"y": 1, "x": None}}
    b = {"a": {"x": None, "y": 1}, "b": [1, 2]}
    assert sha256_json(a) == sha256_json(b)
    assert sha256_json(a) == hashlib.sha256(b'{"a":{"x":null,"y":1},"b":[1,2]}').hexdigest()
    assert sha256_json(a) != sha256_json({**a, "b": [2, 1]})  # list order is content
    assert sha256_json(1) != sha256_json("1")


def test_sha256_file_reads_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("release_assets.core.hashing.CHUNK", 3)  # several chunks, one partial
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    assert sha256_file(path) == hashlib.sha256(b"0123456789").hexdigest()


def test_files_digest_maps_each_path_once_in_order(tmp_path):
    b, a = tmp_path / "b.txt", tmp_path / "a.txt"
    a.write_text("alpha")
    b.write_text("beta")
    out = files_digest([b, a, b])
    assert list(out) == [str(a), str(b)]
    assert out[str(a)] == hashlib.sha256(b"alpha").hexdigest()
    a.write_text("alpha2")
    assert files_digest([a, b])[str(a)] != out[str(a)]


def test_code_version_is_stable_and_follows_config_and_files(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text("x: 1\n")
    base = code_version([MODULE], [data], {"lr": 0.1, "epochs": 2})
    assert len(base) == 16
    # Same inputs in another order, repeated entries: same version.
    assert code_version([MODULE, MODULE], [data, data], {"epochs": 2, "lr": 0.1}) == base
    assert code_version([MODULE], [data], {"lr": 0.2, "epochs": 2}) != base
    assert code_version([MODULE], [data], None) != base
    assert code_version([MODULE], [], {"lr": 0.1, "epochs": 2}) != base
    data.write_text("x: 2\n")
    assert code_version([MODULE], [data], {"lr": 0.1, "epochs": 2}) != base
