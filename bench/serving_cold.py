"""`python bench/serving_cold.py`: serving the helpdesk release through onnxruntime vs through torch.

Publishes helpdesk (full-size models) into a throwaway store, promotes it, then for each runtime
(``RELEASE_ASSETS_MODEL_RUNTIME=onnx``, the default, and ``=torch``), interleaved so a burst of load from other
processes hits both:
- cold start: from starting `release-assets serve helpdesk` to the first answered POST /v1/helpdesk/predict
  (several starts each), with the server's resident memory and whether libtorch was mapped into it;
- per-request latency: one client sending requests back to back (no queueing: the server's own latency), p50/p99;
- steady load: open loop at 50 requests/s (latency from each request's scheduled time), p50/p99;
- in process: the intent model alone, one message at a time, as the p95_ms gate measures it (service latency).
Server and client share this machine's two cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, replace_section, workspace
from serving import CLI, MESSAGES, PY, ServerProcess, _free_port, _percentile, _steady

RUNTIMES = ("onnx", "torch")
RUNTIME_ENV = "RELEASE_ASSETS_MODEL_RUNTIME"


def _publish(env: dict[str, str]) -> str:
    out = subprocess.run([*CLI, "release", "helpdesk"], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-2000:])
    version = out.stdout.split("version: ")[1].split()[0]
    promote = [*CLI, "promote", "helpdesk", version, "--approved-by", "bench", "--reason", "onnx benchmark"]
    subprocess.run(promote, env=env, check=True, capture_output=True, cwd=ROOT)
    return version


class Server(ServerProcess):
    """`release-assets serve helpdesk`, timed from process start to its first answered predict (not /readyz, as
    the load figures wait for: the first answer includes loading the models, which is what a runtime changes)."""

    def __init__(self, env: dict[str, str], runtime: str) -> None:
        self.port = _free_port()
        self.start = time.perf_counter()
        cmd = [*CLI, "serve", "helpdesk", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd, env={**env, RUNTIME_ENV: runtime}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
        )
        self.predict_url = self.url("/v1/helpdesk/predict")
        body = {"message": MESSAGES[0], "user_id": "cold"}
        while True:
            if time.perf_counter() - self.start > 180:
                self.stop()
                raise RuntimeError("serve answered nothing in 180 s")
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.post(self.predict_url, json=body, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.cold_s = time.perf_counter() - self.start

    def torch_loaded(self) -> bool:
        return "libtorch" in Path(f"/proc/{self.proc.pid}/maps").read_text()


def _sequential(url: str, n: int) -> dict:
    """One client, one request at a time: each latency is the server's alone, with no queue in front of it."""
    latencies = []
    with httpx.Client(timeout=10) as client:
        for i in range(n):
            t0 = time.perf_counter()
            response = client.post(url, json={"message": MESSAGES[i % len(MESSAGES)], "user_id": f"u{i}"})
            latencies.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
    return {"requests": n, "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99)}


def _model_latency(env: dict[str, str], runtime: str) -> dict:
    """The intent model in a fresh process, one message at a time, as the model report's latency gate measures it."""
    code = (
        "import json, sys\n"
        "from release_assets.cli.inspect import release_store\n"
        "from release_assets.cli.serving import serving_cache\n"
        "from release_assets.evaluation.latency import measure_latency\n"
        "from release_assets.serving.loader import load_release\n"
        "loaded = load_release(release_store(), 'helpdesk', cache_dir=serving_cache())\n"
        "model = loaded._predictors['intent_model']\n"
        f"rows = [{{'text': m}} for m in {MESSAGES!r}] * 20\n"
        "m = measure_latency(lambda row: model.predict_proba([row]), rows)\n"
        "print(json.dumps({'predictor': type(model).__name__, **m}))\n"
    )
    out = subprocess.run(
        [PY, "-c", code], env={**env, RUNTIME_ENV: runtime}, capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    starts = int(os.environ.get("BENCH_COLD_STARTS", "3"))
    seconds = float(os.environ.get("BENCH_COLD_SECONDS", "30"))
    sequential = int(os.environ.get("BENCH_COLD_REQUESTS", "500"))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    root, env = workspace()
    env = {**env, "RELEASE_ASSETS_STORE_ROOT": str(root / "store")}
    results: dict = {"version": _publish(env), "seconds": seconds, "starts": starts}
    results["loadavg_1m"] = {"start": os.getloadavg()[0]}  # how busy the machine was, printed beside the figures
    cold: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for _ in range(starts):
        for runtime in RUNTIMES:  # interleaved: load from other processes falls on both
            server = Server(env, runtime)
            cold[runtime].append(server.cold_s)
            server.stop()
    for runtime in RUNTIMES:
        server = Server(env, runtime)
        try:
            _sequential(server.predict_url, 50)  # warm
            figures = {"sequential": _sequential(server.predict_url, sequential)}
            figures["steady"] = asyncio.run(_steady(server.predict_url, "helpdesk", 50, seconds))
            figures["rss_mb"] = server.rss_mb()
            figures["torch_loaded"] = server.torch_loaded()
        finally:
            server.stop()
        figures["cold_s"] = {"min": min(cold[runtime]), "median": statistics.median(cold[runtime])}
        figures["cold_s"]["max"] = max(cold[runtime])
        figures["model"] = _model_latency(env, runtime)
        results[runtime] = figures
    results["loadavg_1m"]["end"] = os.getloadavg()[0]
    (ROOT / "bench" / "serving_cold_results.json").write_text(json.dumps(results, indent=1))
    write_section(results, started)
    print(json.dumps(results, indent=1))


MARK_BEGIN, MARK_END = "<!-- onnx: bench/serving_cold.py -->", "<!-- /onnx -->"


def write_section(r: dict, started: str) -> None:
    o, t = r["onnx"], r["torch"]

    def both(f, unit: str = "ms", digits: int = 1) -> str:
        a, b = f(o), f(t)
        return f"{a:.{digits}f} {unit} | {b:.{digits}f} {unit} | {a / b:.2f}x"

    lines = [
        MARK_BEGIN,
        "## Serving through ONNX vs torch",
        "",
        f"Produced by `python bench/serving_cold.py` on {started}: helpdesk (full-size models) published and promoted "
        "in a throwaway store, served by `release-assets serve helpdesk` with `RELEASE_ASSETS_MODEL_RUNTIME=onnx` "
        "(the default: onnxruntime, one intra-op thread, `tokenizers` alone) and `=torch`. One run; server and "
        "client share the 2-core machine with whatever else runs there (the load averages below say how busy it "
        "was), so absolute figures are noisy; the ratio (ONNX / torch, starts interleaved) is the figure to read."
        + (
            f" 1-minute load average {r['loadavg_1m']['start']:.1f} when measuring began, "
            f"{r['loadavg_1m']['end']:.1f} at the end."
            if "loadavg_1m" in r
            else ""
        ),
        "",
        "| figure | ONNX | torch | ONNX / torch |",
        "|---|---|---|---|",
        f"| cold start: process start to first answered predict, median of {r['starts']} "
        f"(min-max ONNX {o['cold_s']['min']:.2f}-{o['cold_s']['max']:.2f} s, torch {t['cold_s']['min']:.2f}-"
        f"{t['cold_s']['max']:.2f} s) | " + both(lambda x: x["cold_s"]["median"], "s", 2) + " |",
        f"| per request, one client back to back ({o['sequential']['requests']} requests): p50 | "
        + both(lambda x: x["sequential"]["p50_ms"], "ms", 2)
        + " |",
        "| per request, one client back to back: p99 | " + both(lambda x: x["sequential"]["p99_ms"], "ms", 2) + " |",
        f"| steady 50 req/s for {r['seconds']:.0f} s (open loop): p50 | "
        + both(lambda x: x["steady"]["p50_ms"])
        + " |",
        "| steady 50 req/s (open loop): p99 | " + both(lambda x: x["steady"]["p99_ms"]) + " |",
        "| intent model alone, one message, service p50 (the report's latency measure) | "
        + both(lambda x: x["model"]["p50_ms"], "ms", 3)
        + " |",
        "| intent model alone, service p95 (what the `p95_ms` gate reads) | "
        + both(lambda x: x["model"]["p95_ms"], "ms", 3)
        + " |",
        "| server resident memory after the load | " + both(lambda x: x["rss_mb"], "MB", 0) + " |",
        f"| libtorch mapped into the server | {o['torch_loaded']} | {t['torch_loaded']} | |",
        f"| errors under steady load | {o['steady']['errors']} | {t['steady']['errors']} | |",
        MARK_END,
    ]
    replace_section(MARK_BEGIN, MARK_END, lines)


if __name__ == "__main__":
    main()
