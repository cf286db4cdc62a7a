"""The change sensor's scan: stat every watched file, hash only those whose mtime or size moved."""

from __future__ import annotations

import hashlib
import os

import pytest

from release_assets.release import watch
from release_assets.release.watch import scan


@pytest.fixture
def files(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.yaml"
    a.write_text("x = 1\n")
    b.write_text("k: v\n")
    return str(a), str(b)


@pytest.fixture
def reads(monkeypatch):
    """The paths ``scan`` hashed, in order (the real hash still runs)."""
    seen: list[str] = []
    real = watch.sha256_file

    def counting(path):
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(watch, "sha256_file", counting)
    return seen


def test_first_scan_hashes_everything_and_reports_no_change(files, reads):
    a, _ = files
    first = scan(files, {})
    assert first.hashed == 2 and sorted(reads) == sorted(files)
    st = os.stat(a)
    assert first.files[a] == [st.st_mtime_ns, st.st_size, hashlib.sha256(b"x = 1\n").hexdigest()]
    assert first.changed == set() and first.missing == set()  # nothing to compare with yet


def test_unchanged_files_are_not_hashed_again(files, reads):
    first = scan(files, {})
    reads.clear()
    again = scan(files, first.files)
    assert again.hashed == 0 and reads == []
    assert again.files == first.files and again.changed == set()


def test_an_edit_is_seen_and_only_the_edited_file_is_read(files, reads):
    a, b = files
    first = scan(files, {})
    reads.clear()
    with open(a, "a") as fh:
        fh.write("y = 2\n")
    after = scan(files, first.files)
    assert after.changed == {a}
    assert reads == [a] and after.hashed == 1
    assert after.files[a][2] == hashlib.sha256(b"x = 1\ny = 2\n").hexdigest()
    assert after.files[b] == first.files[b]


def test_a_same_size_edit_is_seen_through_its_mtime(files):
    a, _ = files
    first = scan(files, {})
    with open(a, "w") as fh:
        fh.write("x = 2\n")  # same size
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, first.files[a][0] + 1_000_000))  # coarse clocks: make the move certain
    assert scan(files, first.files).changed == {a}


def test_a_touch_without_edit_is_hashed_but_not_a_change(files):
    a, _ = files
    first = scan(files, {})
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = scan(files, first.files)
    assert touched.hashed == 1 and touched.changed == set()
    assert touched.files[a][0] == st.st_mtime_ns + 1_000_000  # the new stat is remembered: not hashed next time


def test_a_missing_file_is_reported_and_its_last_content_kept(files, tmp_path, reads):
    a, b = files
    first = scan(files, {})
    os.remove(a)
    never = str(tmp_path / "never.txt")
    reads.clear()
    after = scan([a, b, never], first.files)
    assert after.missing == {a, never}
    assert after.files[a] == first.files[a]  # so a file that comes back unchanged is not a change
    assert never not in after.files
    assert after.changed == set() and reads == []
