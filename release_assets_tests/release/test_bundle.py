import hashlib
import io
import json
import tarfile

import pytest

from release_assets.release.bundle import (
    BundleError,
    extract_bundle,
    member_digest,
    release_version,
    verify_bundle,
    write_bundle,
)


def _manifest(files: dict[str, bytes]) -> dict:
    entries = [{"path": n, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in sorted(files.items())]
    digest = member_digest({e["path"].split("/", 1)[1]: e["sha256"] for e in entries})
    members = {"m": {"digest": digest, "files": entries, "role": "artifact"}}
    return {"release": "r", "version": release_version(members), "members": members}


def _bundle(tmp_path, files, name="b.tar.gz"):
    for n, b in files.items():
        (tmp_path / n.replace("/", "_")).write_bytes(b)
    out = tmp_path / name
    write_bundle({n: tmp_path / n.replace("/", "_") for n in files}, _manifest(files), out)
    return out


FILES = {"m/model.json": b'{"w": [1, 2]}', "m/report.md": b"# report\n"}


def test_same_content_gives_identical_bytes(tmp_path):
    a = _bundle(tmp_path, FILES, "a.tar.gz")
    b = _bundle(tmp_path, FILES, "b.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        assert [i.name for i in tar.getmembers()] == ["m/model.json", "m/report.md", "manifest.json"]
        assert {(i.mtime, i.uid, i.gid) for i in tar.getmembers()} == {(0, 0, 0)}


def test_verify_accepts_a_good_bundle_and_extracts_it(tmp_path):
    bundle = _bundle(tmp_path, FILES)
    assert verify_bundle(bundle)["release"] == "r"
    extract_bundle(bundle, tmp_path / "x")
    assert (tmp_path / "x" / "m" / "model.json").read_bytes() == FILES["m/model.json"]


def _rewrite(bundle, mutate):
    with tarfile.open(bundle) as tar:
        items = [(i, tar.extractfile(i).read() if i.isfile() else None) for i in tar.getmembers()]
    items = mutate(items)
    with tarfile.open(bundle, "w:gz") as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_tampered_file_is_named(tmp_path):
    bundle = _bundle(tmp_path, FILES)

    def tamper(items):
        out = []
        for info, data in items:
            if info.name == "m/model.json":
                data = b'{"w": [9, 9]}'
                info.size = len(data)
            out.append((info, data))
        return out

    _rewrite(bundle, tamper)
    with pytest.raises(BundleError, match=r"m/model\.json: sha256 .* does not match"):
        verify_bundle(bundle)


def test_links_and_escaping_entries_are_refused(tmp_path):
    bundle = _bundle(tmp_path, FILES)

    def add_link(items):
        link = tarfile.TarInfo("m/evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [*items, (link, None)]

    _rewrite(bundle, add_link)
    with pytest.raises(BundleError, match="link or special file"):
        verify_bundle(bundle)

    bundle2 = _bundle(tmp_path, FILES, "c.tar.gz")

    def escape(items):
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        return [*items, (info, b"x")]

    _rewrite(bundle2, escape)
    with pytest.raises(BundleError, match="escapes"):
        verify_bundle(bundle2)


def test_missing_file_and_wrong_version_are_refused(tmp_path):
    bundle = _bundle(tmp_path, FILES)
    _rewrite(bundle, lambda items: [(i, d) for i, d in items if i.name != "m/report.md"])
    with pytest.raises(BundleError, match=r"missing from the bundle: \['m/report.md'\]"):
        verify_bundle(bundle)

    bundle2 = _bundle(tmp_path, FILES, "d.tar.gz")

    def bump(items):
        out = []
        for info, data in items:
            if info.name == "manifest.json":
                m = json.loads(data)
                m["version"] = "0" * 16
                data = json.dumps(m).encode()
                info.size = len(data)
            out.append((info, data))
        return out

    _rewrite(bundle2, bump)
    with pytest.raises(BundleError, match="does not match its members' digest"):
        verify_bundle(bundle2)


def test_not_a_bundle(tmp_path):
    (tmp_path / "x.tar.gz").write_text("nope")
    with pytest.raises(BundleError, match=r"not a readable tar\.gz"):
        verify_bundle(tmp_path / "x.tar.gz")


def test_version_ignores_evidence_but_not_artifacts():
    base = {
        "model": {"digest": "a" * 64, "role": "artifact"},
        "model_report": {"digest": "b" * 64, "role": "evidence"},
    }
    remeasured = {**base, "model_report": {"digest": "c" * 64, "role": "evidence"}}
    retrained = {**base, "model": {"digest": "d" * 64, "role": "artifact"}}
    assert release_version(base) == release_version(remeasured)
    assert release_version(base) != release_version(retrained)


def test_flipped_bits_in_the_compressed_stream_are_a_clear_error(tmp_path):
    bundle = _bundle(tmp_path, {"m/big.bin": bytes(range(256)) * 400})
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"corrupt bundle|does not match|has no manifest\.json"):
        verify_bundle(bundle)


def test_a_manifest_rewritten_to_match_tampered_files_is_still_refused(tmp_path):
    """Rewriting a file's sha256 in the manifest does not help: the member digest no longer matches."""
    bundle = _bundle(tmp_path, FILES)

    def forge(items):
        out = []
        for info, data in items:
            if info.name == "m/model.json":
                data = b'{"w": [6, 6]}'
                info.size = len(data)
            if info.name == "manifest.json":
                m = json.loads(data)
                m["members"]["m"]["files"][0]["sha256"] = hashlib.sha256(b'{"w": [6, 6]}').hexdigest()
                data = json.dumps(m).encode()
                info.size = len(data)
            out.append((info, data))
        return out

    _rewrite(bundle, forge)
    with pytest.raises(BundleError, match=r"member m: digest .* does not match its files"):
        verify_bundle(bundle)


def _held(files: dict[str, bytes], held: set[str]) -> dict:
    manifest = _manifest(files)
    for entry in manifest["members"]["m"]["files"]:
        if entry["path"] in held:
            entry.update(stored="reference", uri=f"data/{entry['sha256']}")
    return manifest


ROWS = {**FILES, "m/rows.jsonl": b'{"id": 1}\n'}


def test_a_file_held_by_reference_counts_towards_the_version_but_is_not_in_the_bundle(tmp_path):
    manifest = _held(ROWS, {"m/rows.jsonl"})
    assert manifest["version"] == _manifest(ROWS)["version"]  # the same version however the file travels
    for n, b in FILES.items():
        (tmp_path / n.replace("/", "_")).write_bytes(b)
    out = tmp_path / "held.tar.gz"
    write_bundle({n: tmp_path / n.replace("/", "_") for n in FILES}, manifest, out)
    assert verify_bundle(out)["version"] == manifest["version"]
    extract_bundle(out, tmp_path / "x")
    assert not (tmp_path / "x" / "m" / "rows.jsonl").exists()

    blobs = {hashlib.sha256(ROWS["m/rows.jsonl"]).hexdigest(): ROWS["m/rows.jsonl"]}

    def fetch(digest, dest):
        dest.write_bytes(blobs[digest])
        return dest

    extract_bundle(out, tmp_path / "y", fetch_data=fetch)
    assert (tmp_path / "y" / "m" / "rows.jsonl").read_bytes() == ROWS["m/rows.jsonl"]
    blobs = dict.fromkeys(blobs, b"other rows\n")
    with pytest.raises(BundleError, match=r"m/rows.jsonl \(held by reference\) does not match its sha256"):
        extract_bundle(out, tmp_path / "z", fetch_data=fetch)


def test_a_file_marked_held_by_reference_but_bundled_is_refused(tmp_path):
    for n, b in ROWS.items():
        (tmp_path / n.replace("/", "_")).write_bytes(b)
    out = tmp_path / "both.tar.gz"
    write_bundle({n: tmp_path / n.replace("/", "_") for n in ROWS}, _held(ROWS, {"m/rows.jsonl"}), out)
    with pytest.raises(BundleError, match=r"entry 'm/rows.jsonl' is not listed"):
        verify_bundle(out)


def test_extract_can_take_only_some_members(tmp_path):
    files = {**FILES, "d/rows.jsonl": b"x\n"}
    entries = [{"path": n, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in sorted(files.items())]
    members = {}
    for name in ("m", "d"):
        own = [e for e in entries if e["path"].startswith(name + "/")]
        digest = member_digest({e["path"].split("/", 1)[1]: e["sha256"] for e in own})
        members[name] = {"digest": digest, "files": own, "role": "artifact"}
    manifest = {"release": "r", "version": release_version(members), "members": members}
    for n, b in files.items():
        (tmp_path / n.replace("/", "_")).write_bytes(b)
    out = tmp_path / "two.tar.gz"
    write_bundle({n: tmp_path / n.replace("/", "_") for n in files}, manifest, out)
    extract_bundle(out, tmp_path / "x", members={"m"})
    assert sorted(p.relative_to(tmp_path / "x").as_posix() for p in (tmp_path / "x").rglob("*") if p.is_file()) == [
        "m/model.json",
        "m/report.md",
        "manifest.json",
    ]
