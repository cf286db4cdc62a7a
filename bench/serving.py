"""`make bench-serving`: the serving figures of BENCHMARKS.md, measured in one run against a throwaway store.

Publishes iris and helpdesk (full-size models) into a fresh workspace, promotes them, then:
- starts `release-assets serve` in a fresh process and times until `/readyz` answers 200 (several times);
- offers a steady load (open loop: each request is sent at its scheduled time, and its latency is counted from
  that time, so a slow server cannot hide queueing by slowing the generator) of 100 requests/s for 60 s to
  helpdesk, then the same with 100% shadow sampling, and to iris;
- finds saturation throughput with a closed loop of concurrent clients;
- measures, in one process, what routing and flag evaluation add to a direct `predict` call (interleaved);
- compares /v1/{release}/predict with the Open Inference Protocol's /v2/models/{release}/infer on one server: one
  open-loop stream of 100 requests/s alternating request by request between the two routes (the same rows, so the
  same predictions), p50/p99 of each and their ratios; and, in one process, what the v2 conversion (the inference
  request's model, tensors to the /v1 body, the answer to tensors) adds to a prediction, interleaved with /v1's;
- reads the server's resident memory from /proc.

`python bench/serving.py --only protocols` (`make bench-serving-oip`: publish, then ~2 min) runs the /v1 vs /v2
comparison alone and rewrites only its part of the section.

The load generator runs in this process on the same 2-core machine as the server, so it competes for the CPU:
the figures are what one machine does with both on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, replace_section, workspace

PY = sys.executable
CLI = [PY, "-m", "release_assets.cli.main"]
MESSAGES = [
    "Where is my order 66102? It was due last week.",
    "I want a refund for order 12345, the jacket arrived torn.",
    "Please cancel my order 55555 before it ships.",
    "How do I reset my password? I cannot log in.",
    "Can I change the delivery address for order 70421?",
]
FLOWERS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class ServerProcess:
    def __init__(self, env: dict[str, str], releases: list[str]) -> None:
        self.port = _free_port()
        self.start = time.perf_counter()
        cmd = [*CLI, "serve", *releases, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        self.ready_s = self._wait_ready()

    def _wait_ready(self) -> float:
        while time.perf_counter() - self.start < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(self.url("/readyz"), timeout=1).status_code == 200:
                    return time.perf_counter() - self.start
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError("serve did not become ready in 120 s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _body(release: str, i: int) -> dict:
    if release == "iris":
        return {"features": FLOWERS[i % len(FLOWERS)], "user_id": f"user-{i}"}
    return {"message": MESSAGES[i % len(MESSAGES)], "user_id": f"user-{i}"}


async def _steady(url: str, release: str, rate: float, seconds: float) -> dict:
    """Open loop: request i is due at start + i / rate; its latency runs from when it was due."""
    latencies, errors = [], 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                response = await client.post(url, json=_body(release, i))
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - due) * 1000)
            errors += not ok

        await asyncio.gather(*(one(i) for i in range(int(rate * seconds))))
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": max(latencies),
    }


async def _saturate(url: str, release: str, clients: int, seconds: float) -> dict:
    done, errors = 0, 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=10) as client:
        end = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal done, errors
            i = w
            while time.perf_counter() < end:
                response = await client.post(url, json=_body(release, i))
                done += response.status_code == 200
                errors += response.status_code != 200
                i += clients

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - start
    return {"requests_per_s": done / elapsed, "errors": errors, "clients": clients}


def _routing_cost(env: dict[str, str], rounds: int = 2000) -> dict:
    """In one process: predict alone vs flag routing + predict, interleaved; p50 of each and of the difference."""
    code = f"""
import json, statistics, time
from pathlib import Path
from release_assets.cli.inspect import release_store
from release_assets.cli.serving import serving_cache
from release_assets.serving.flags import FlagRouter, flag_document, flags_path, store_flags_dir, write_flags
from release_assets.serving.loader import load_release
store = release_store()
loaded = load_release(store, "helpdesk", cache_dir=serving_cache())
flags = store_flags_dir(store)
write_flags(flags_path(flags, "helpdesk"), flag_document("helpdesk", loaded.version, loaded.version, 5))
router = FlagRouter(flags)
body = {{"message": "Where is my order 66102?"}}
for _ in range(50):
    loaded.predict(body); router.route("helpdesk", "warm")
direct, routed = [], []
for i in range({rounds}):
    t0 = time.perf_counter(); loaded.predict(body); t1 = time.perf_counter()
    variant, version = router.route("helpdesk", f"user-{{i}}"); loaded.predict(body, variant=variant)
    t2 = time.perf_counter()
    direct.append((t1 - t0) * 1000); routed.append((t2 - t1) * 1000)
route_only = []
for i in range({rounds}):
    t0 = time.perf_counter(); router.route("helpdesk", f"user-{{i}}")
    route_only.append((time.perf_counter() - t0) * 1000)
router.close()
flags_path(flags, "helpdesk").unlink()
print(json.dumps({{"direct_p50_ms": statistics.median(direct), "routed_p50_ms": statistics.median(routed),
                  "route_only_p50_ms": statistics.median(route_only)}}))
"""
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["added_p50_ms"] = result["routed_p50_ms"] - result["direct_p50_ms"]
    return result


def _v2_body(release: str, i: int) -> dict:
    """The Open Inference Protocol request carrying the same row as ``_body(release, i)``."""
    body = _body(release, i)
    user = {"name": "user_id", "datatype": "BYTES", "shape": [1], "data": [body["user_id"]]}
    if release == "iris":
        return {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": body["features"]}, user]}
    return {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1], "data": [body["message"]]}, user]}


async def _interleaved(server: ServerProcess, release: str, rate: float, seconds: float) -> dict:
    """One open-loop stream at ``rate``: request i goes to /v1 when i is even and to /v2 when it is odd, both with
    row i // 2 (the same prediction); each latency runs from when the request was due, kept per route."""
    routes = {
        "v1": (server.url(f"/v1/{release}/predict"), _body),
        "v2": (server.url(f"/v2/models/{release}/infer"), _v2_body),
    }
    latencies: dict[str, list[float]] = {"v1": [], "v2": []}
    errors = {"v1": 0, "v2": 0}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            route = "v1" if i % 2 == 0 else "v2"
            url, body = routes[route]
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                ok = (await client.post(url, json=body(release, i // 2))).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies[route].append((time.perf_counter() - due) * 1000)
            errors[route] += not ok

        await asyncio.gather(*(one(i) for i in range(int(rate * seconds))))
    out: dict = {}
    for route, values in latencies.items():
        out[route] = {
            "requests": len(values),
            "errors": errors[route],
            "p50_ms": _percentile(values, 50),
            "p99_ms": _percentile(values, 99),
            "max_ms": max(values),
        }
    out["p50_ratio"] = out["v2"]["p50_ms"] / out["v1"]["p50_ms"]
    out["p99_ratio"] = out["v2"]["p99_ms"] / out["v1"]["p99_ms"]
    return out


def _conversion_cost(env: dict[str, str], rounds: int = 2000) -> dict:
    """In one process, per release: a /v1 answer (validated body, predict, JSON) against a /v2 one (the inference
    request's model, tensors to the /v1 body, predict, answer to tensors, JSON), interleaved; p50 of each."""
    code = f"""
import json, statistics, sys, time
sys.path.insert(0, "bench")
from serving import _body, _v2_body
from release_assets.cli.inspect import release_store
from release_assets.cli.serving import serving_cache
from release_assets.serving import oip
from release_assets.serving.loader import load_release
from release_assets.serving.requests import validate
store = release_store()
out = {{}}
for release in ("iris", "helpdesk"):
    loaded = load_release(store, release, cache_dir=serving_cache())
    sig = loaded.signature
    def v1(i):
        answer = loaded.predict(_body(release, i), request_id="r")
        return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    def v2(i):
        parsed = validate(oip.infer_request(sig), _v2_body(release, i))
        answer = loaded.predict(oip.to_payload(sig, parsed), request_id="r")
        response = oip.infer_response(release, sig, answer, parsed.id, oip.requested_outputs(parsed))
        return json.dumps(response, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    for i in range(50):
        v1(i); v2(i)
    first, second = [], []
    for i in range({rounds}):
        t0 = time.perf_counter(); v1(i); t1 = time.perf_counter(); v2(i); t2 = time.perf_counter()
        first.append((t1 - t0) * 1000); second.append((t2 - t1) * 1000)
    out[release] = {{"v1_p50_ms": statistics.median(first), "v2_p50_ms": statistics.median(second),
                    "added_p50_ms": statistics.median(b - a for a, b in zip(first, second))}}
print(json.dumps(out))
"""
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _protocols(env: dict[str, str], seconds: float, command: str) -> dict:
    """/v1 against /v2 on one fresh server (iris and helpdesk), then the conversion cost in process."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = [os.getloadavg()[0]]
    out: dict = {"started": started, "seconds": seconds, "rate": 100, "command": command}
    server = ServerProcess(env, ["iris", "helpdesk"])
    try:
        for release in ("helpdesk", "iris"):
            asyncio.run(_interleaved(server, release, 20, 2))  # warm both routes, the pool and the models
            out[release] = asyncio.run(_interleaved(server, release, 100, seconds))
    finally:
        server.stop()
    out["conversion"] = _conversion_cost(env)
    out["load_average"] = [*load, os.getloadavg()[0]]
    return out


def _publish(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run([*CLI, "release", "iris", "helpdesk"], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-2000:])
    versions = {}
    for block in out.stdout.split("== ")[1:]:
        name = block.split(":")[0]
        versions[name] = block.split("version: ")[1].split()[0]
    for name, version in versions.items():
        subprocess.run(
            [*CLI, "promote", name, version, "--approved-by", "bench", "--reason", "serving benchmark"],
            env=env,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
    return versions


def _with_shadow(env: dict[str, str], release: str, version: str, percent: int) -> None:
    code = (
        "from release_assets.cli.inspect import release_store\n"
        "from release_assets.serving.flags import flag_document, flags_path, store_flags_dir, write_flags\n"
        f"write_flags(flags_path(store_flags_dir(release_store()), {release!r}), "
        f"flag_document({release!r}, {version!r}, shadow={version!r}, shadow_percent={percent}))\n"
    )
    subprocess.run([PY, "-c", code], env=env, check=True, cwd=ROOT)


def main() -> None:
    seconds = float(os.environ.get("BENCH_SERVING_SECONDS", "60"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    if only not in (None, "protocols"):
        raise SystemExit(f"--only {only}: the one part that runs alone is protocols")
    root, env = workspace()
    env = {**env, "RELEASE_ASSETS_STORE_ROOT": str(root / "store")}
    versions = _publish(env)
    if only == "protocols":  # the rest of the section stays as its own run measured it
        results = json.loads(RESULTS.read_text())
        results["protocols"] = _protocols(
            env, seconds, "make bench-serving-oip` (`python bench/serving.py --only protocols"
        )
        RESULTS.write_text(json.dumps(results, indent=1))
        section = (ROOT / "BENCHMARKS.md").read_text().split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0]
        kept = section.split(PROTOCOLS_HEADING, 1)[0].strip("\n").splitlines()
        replace_section(MARK_BEGIN, MARK_END, [MARK_BEGIN, *kept, *protocol_lines(results["protocols"]), MARK_END])
        print(json.dumps(results["protocols"], indent=1))
        return
    results: dict = {"seconds": seconds, "versions": versions, "started": started}

    ready = []
    for _ in range(3):
        server = ServerProcess(env, ["iris", "helpdesk"])
        ready.append(server.ready_s)
        server.stop()
    results["ready_s"] = {"min": min(ready), "median": statistics.median(ready), "max": max(ready)}

    server = ServerProcess(env, ["iris", "helpdesk"])
    try:
        for release in ("helpdesk", "iris"):
            url = server.url(f"/v1/{release}/predict")
            asyncio.run(_steady(url, release, 20, 2))  # warm the connection pool and the models
            results[f"{release}_steady"] = asyncio.run(_steady(url, release, 100, seconds))
            results[f"{release}_saturation"] = asyncio.run(_saturate(url, release, 8, 10))
        results["rss_mb"] = server.rss_mb()
    finally:
        server.stop()

    _with_shadow(env, "helpdesk", versions["helpdesk"], 100)
    server = ServerProcess(env, ["helpdesk"])
    try:
        url = server.url("/v1/helpdesk/predict")
        asyncio.run(_steady(url, "helpdesk", 20, 2))
        results["helpdesk_shadow_steady"] = asyncio.run(_steady(url, "helpdesk", 100, seconds))
        metrics = httpx.get(server.url("/metrics"), timeout=5).text
        results["shadow_pairs"] = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("release_assets_serving_shadow_comparisons_total") and 'field="intent"' in line
        )
    finally:
        server.stop()
    results["routing"] = _routing_cost(env)
    results["protocols"] = _protocols(env, seconds, "make bench-serving` (`python bench/serving.py")
    RESULTS.write_text(json.dumps(results, indent=1))
    write_section(results, started)
    print(json.dumps(results, indent=1))


MARK_BEGIN, MARK_END = "<!-- serving: bench/serving.py -->", "<!-- /serving -->"
RESULTS = ROOT / "bench" / "serving_results.json"
PROTOCOLS_HEADING = "### /v1 against the Open Inference Protocol's /v2, interleaved"


def protocol_lines(p: dict) -> list[str]:
    """The /v1 vs /v2 part of the section: its own command and time, as it may be measured alone."""
    c = p["conversion"]
    lines = [
        "",
        PROTOCOLS_HEADING,
        "",
        f"Produced by `{p['command']}`) on {p['started']} (`make bench-serving-oip` measures this part alone): "
        f"one fresh `release-assets serve iris helpdesk`, one open-loop stream of {p['rate']} "
        f"requests/s per release for {p['seconds']:.0f} s alternating request by request between "
        "`POST /v1/{release}/predict` and `POST /v2/models/{release}/infer` (JSON tensors, as httpx sends them), the "
        "same rows on both, so each route carries 50 requests/s under the same conditions. 1-minute load average "
        f"{p['load_average'][0]:.1f} before, {p['load_average'][1]:.1f} after. The ratios are the figures to read.",
        "",
        "| release | /v1 p50 / p99 | /v2 p50 / p99 | v2/v1 p50 | v2/v1 p99 | errors v1 / v2 |",
        "|---|---|---|---|---|---|",
    ]
    for release in ("helpdesk", "iris"):
        r = p[release]
        lines.append(
            f"| {release} | {r['v1']['p50_ms']:.2f} / {r['v1']['p99_ms']:.2f} ms | {r['v2']['p50_ms']:.2f} / "
            f"{r['v2']['p99_ms']:.2f} ms | {r['p50_ratio']:.2f}x | {r['p99_ratio']:.2f}x | "
            f"{r['v1']['errors']} / {r['v2']['errors']} |"
        )
    lines += [
        "",
        "In one process, no HTTP (2,000 rounds each, interleaved; p50): what the v2 conversion (the release's "
        "inference request model, tensors to the /v1 body, the answer to tensors) adds to a prediction and its JSON: "
        + "; ".join(
            f"{release} {c[release]['v1_p50_ms']:.3f} ms (v1) vs {c[release]['v2_p50_ms']:.3f} ms (v2), "
            f"+{c[release]['added_p50_ms'] * 1000:.0f} us"
            for release in ("helpdesk", "iris")
        )
        + ".",
    ]
    return lines


def write_section(r: dict, started: str) -> None:
    h, i, hs = r["helpdesk_steady"], r["iris_steady"], r["helpdesk_shadow_steady"]
    shadow_ratio = hs["p99_ms"] / h["p99_ms"]
    lines = [
        MARK_BEGIN,
        "## Serving",
        "",
        f"Produced by `make bench-serving` (`python bench/serving.py`) on {started}, against full-size iris and "
        "helpdesk releases published and promoted in a throwaway store; server and load generator on the same "
        "2-core machine. Latency counts from each request's scheduled send time (open loop).",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
        f"| helpdesk, steady {h['requests'] / r['seconds']:.0f} req/s for {r['seconds']:.0f} s: p50 / p99 / max | "
        f"{h['p50_ms']:.1f} / {h['p99_ms']:.1f} / {h['max_ms']:.1f} ms, {h['errors']} errors | p99 <= 25 ms, "
        f"no errors | {h['p99_ms'] <= 25 and h['errors'] == 0} |",
        f"| iris, steady {i['requests'] / r['seconds']:.0f} req/s for {r['seconds']:.0f} s: p50 / p99 / max | "
        f"{i['p50_ms']:.1f} / {i['p99_ms']:.1f} / {i['max_ms']:.1f} ms, {i['errors']} errors | p99 <= 5 ms | "
        f"{i['p99_ms'] <= 5 and i['errors'] == 0} |",
        f"| helpdesk saturation ({r['helpdesk_saturation']['clients']} concurrent clients, 10 s) | "
        f"{r['helpdesk_saturation']['requests_per_s']:.0f} req/s | | |",
        f"| iris saturation ({r['iris_saturation']['clients']} concurrent clients, 10 s) | "
        f"{r['iris_saturation']['requests_per_s']:.0f} req/s | | |",
        f"| routing + flag evaluation added to a direct predict, p50 (in process, interleaved) | "
        f"{r['routing']['added_p50_ms']:.3f} ms (route alone {r['routing']['route_only_p50_ms']:.3f} ms; predict "
        f"{r['routing']['direct_p50_ms']:.2f} ms) | <= 0.5 ms | {r['routing']['added_p50_ms'] <= 0.5} |",
        f"| server ready after start (`release-assets serve iris helpdesk`, min / median / max of 3) | "
        f"{r['ready_s']['min']:.2f} / {r['ready_s']['median']:.2f} / {r['ready_s']['max']:.2f} s | <= 5 s | "
        f"{r['ready_s']['median'] <= 5} |",
        f"| server resident memory after the load | {r['rss_mb']:.0f} MB | | |",
        f"| helpdesk p99 with 100% shadow sampling vs without | {hs['p99_ms']:.1f} vs {h['p99_ms']:.1f} ms "
        f"({shadow_ratio:.2f}x; {r['shadow_pairs']:.0f} pairs compared) | <= 1.20x | {shadow_ratio <= 1.2} |",
        *(protocol_lines(r["protocols"]) if "protocols" in r else []),
        MARK_END,
    ]
    replace_section(MARK_BEGIN, MARK_END, lines)


if __name__ == "__main__":
    main()
