"""`make bench-serving`: the serving figures of BENCHMARKS.md, measured in one run against a throwaway store.

Publishes iris and helpdesk (full-size models) into a fresh workspace, promotes them, then:
- starts `release-assets serve` in a fresh process and times until `/readyz` answers 200 (several times);
- offers a steady load (open loop: each request is sent at its scheduled time, and its latency is counted from
  that time, so a slow server cannot hide queueing by slowing the generator) of 100 requests/s for 60 s to
  helpdesk, then the same with 100% shadow sampling, and to iris;
- finds saturation throughput with a closed loop of concurrent clients;
- measures, in one process, what routing and flag evaluation add to a direct `predict` call (interleaved);
- reads the server's resident memory from /proc.
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
    root, env = workspace()
    env = {**env, "RELEASE_ASSETS_STORE_ROOT": str(root / "store")}
    versions = _publish(env)
    results: dict = {"seconds": seconds, "versions": versions}

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
    (ROOT / "bench" / "serving_results.json").write_text(json.dumps(results, indent=1))
    write_section(results, started)
    print(json.dumps(results, indent=1))


MARK_BEGIN, MARK_END = "<!-- serving: bench/serving.py -->", "<!-- /serving -->"


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
        MARK_END,
    ]
    replace_section(MARK_BEGIN, MARK_END, lines)


if __name__ == "__main__":
    main()
