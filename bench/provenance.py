"""Provenance costs (#28): signing and verifying the helpdesk release unit, and `release-assets reproduce` against
the cold release it rebuilds.

One workspace (a copy of the project's releases, prompts and data in a git repository of its own, fresh store,
instance and MLflow); a signing key is generated for the run:

1. **cold release**: `release-assets release helpdesk` in a fresh process, signed (RELEASE_ASSETS_SIGNING_KEY):
   the whole process, and inside it nothing is measured apart.
2. **signing and verification**, in this process, on the published bundle: the unit's model-signing signature
   alone, everything publishing adds (signature, SLSA provenance and test result in DSSE envelopes), and the check
   every verifier runs (signature by a trusted key over the bundle's bytes, both attestations). The first call
   (importing model_signing, sigstore and cryptography) is reported apart from the warm ones.
3. **reproduce**: `release-assets reproduce helpdesk VERSION --json` in a fresh process (clean worktree at the
   commit, cold rebuild into a scratch store, comparison), against the cold release of step 1.

Ratios are taken within the run (each against the cold release measured minutes before on the same machine).
`BENCH_RUNS` warm repetitions of step 2 (default 5); `BENCH_PROVENANCE_TINY=1` uses the tests' tiny model
settings. Prints the BENCHMARKS.md section; `--write` also puts it there between its markers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
BEGIN, END = "<!-- provenance: bench/provenance.py -->", "<!-- /provenance -->"
RELEASE = "helpdesk"
PY = sys.executable


def _key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args], cwd=root, check=True)


def _timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(
        [PY, "-m", "release_assets.cli.main", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return took, done


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from run import fmt, machine, replace_section, stats, workspace

    from bench.support.project import make_tiny
    from release_assets.provenance.attest import check_unit, unit_files
    from release_assets.provenance.keys import Trust, load_signing_key
    from release_assets.provenance.signing import KeySigner
    from release_assets.provenance.statements import BuildRecord

    tiny = os.environ.get("BENCH_PROVENANCE_TINY") == "1"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = [os.getloadavg()[0]]
    root, env = workspace()
    if tiny:
        make_tiny(root)
    (root / ".gitignore").write_text("store/\nhome/\nmlflow.db\nmlflow-artifacts/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "bench")
    pem = _key()
    env = {**env, "RELEASE_ASSETS_SIGNING_KEY": pem.decode()}

    cold_s, done = _timed(["release", RELEASE, "--quiet"], env, root)
    assert done.returncode == 0, done.stdout + done.stderr
    version = next(line.split()[-1] for line in done.stdout.splitlines() if "version:" in line)
    folder = root / "store" / "releases" / RELEASE / version
    bundle = folder / "bundle.tar.gz"
    manifest = json.loads((folder / "manifest.json").read_text())
    print(f"cold signed release {cold_s:.1f} s -> {version} ({bundle.stat().st_size:,} bytes)", flush=True)

    key = load_signing_key(pem, "bench")
    signer, trust = KeySigner(key), Trust({key.key_id: key.public}, "bench")
    build = BuildRecord("bench", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", signer.identity)

    def beside(name: str) -> bytes | None:
        path = folder / name
        return path.read_bytes() if path.is_file() else None

    def clock(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    first_sign = clock(lambda: signer.sign_bundle(bundle))
    first_check = clock(lambda: check_unit(bundle, beside, trust, str(bundle)))
    sign = [clock(lambda: signer.sign_bundle(bundle)) for _ in range(RUNS)]
    attest = [
        clock(lambda: unit_files(bundle, manifest, signer, lambda: build, "releases/helpdesk.yaml"))
        for _ in range(RUNS)
    ]
    check = [clock(lambda: check_unit(bundle, beside, trust, str(bundle))) for _ in range(RUNS)]
    print(f"sign {sign}, attest {attest}, check {check}", flush=True)

    reproduce_s, done = _timed(["reproduce", RELEASE, version, "--json"], env, root)
    outcome = json.loads(done.stdout)
    load.append(os.getloadavg()[0])
    mismatches = [m["member"] for m in outcome["members"] if m["role"] == "artifact" and m["status"] != "match"]
    print(f"reproduce {reproduce_s:.1f} s: reproduced={outcome['reproduced']} mismatches={mismatches}", flush=True)

    settings = "the tests' tiny model settings" if tiny else "the shipped (full-size) model settings"
    s_sign, s_attest, s_check = stats(sign), stats(attest), stats(check)
    lines = [
        BEGIN,
        "## Provenance: signing, verification and `reproduce` (`python bench/provenance.py`)",
        "",
        f"Produced by `python bench/provenance.py` on {started}, {machine()}; the {RELEASE} release with {settings}, "
        f"its bundle {bundle.stat().st_size:,} bytes. Key mode, a P-256 key made for the run. Warm figures: "
        f"min / median / max of {RUNS}. 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.",
        "",
        "| figure | value | share of the cold release |",
        "|---|---|---|",
        f"| cold release, signed, whole process | {cold_s:.1f} s | 1 |",
        f"| model-signing signature of the bundle, first call (imports included) | {first_sign:.3f} s | "
        f"{first_sign / cold_s:.4f} |",
        f"| model-signing signature of the bundle, warm | {fmt(s_sign, 's', 3)} | {s_sign['median'] / cold_s:.4f} |",
        f"| everything publishing adds (signature + SLSA provenance + test result, DSSE), warm | "
        f"{fmt(s_attest, 's', 3)} | {s_attest['median'] / cold_s:.4f} |",
        f"| verification (signature by a trusted key, both attestations), first call | {first_check:.3f} s | "
        f"{first_check / cold_s:.4f} |",
        f"| verification, warm | {fmt(s_check, 's', 3)} | {s_check['median'] / cold_s:.4f} |",
        f"| `reproduce` (worktree, cold rebuild, comparison), whole process | {reproduce_s:.1f} s | "
        f"{reproduce_s / cold_s:.2f} |",
        "",
        f"Reproduced bit for bit: {outcome['reproduced']}"
        + (f"; artifact members that differ: {', '.join(mismatches)}" if mismatches else "")
        + ".",
        "",
        END,
    ]
    if "--write" in sys.argv:
        replace_section(BEGIN, END, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
