"""Load test of ``gouache serve``: many concurrent clients on loopback, for a bounded time.

    python benchmarks/load_test.py                   # the shipped model: 50 clients, 30 s clean, then 30 s with
                                                     # 10% malformed pictures
    python benchmarks/load_test.py --model runs/x    # another model folder
    python benchmarks/load_test.py --tiny            # the tiny random test model

Starts the real server (``python -m gouache serve``) on a free 127.0.0.1 port and runs
``--clients`` asyncio+httpx clients (keep-alive connections, a quarter of the requests on the
streaming endpoint) for ``--duration`` seconds or ``--max-requests`` requests, twice: with well-formed
requests only, then with a ``--malformed-share`` of them carrying a malformed picture (a PNG with a
corrupt chunk as image or mask, a data: URL without its comma, a 13000x13000 header bomb, a mask of
another size). It prints a table, a column a phase: requests by answer (200, 4xx, 503, 5xx,
connection errors), latency of the accepted ones, the server's resident memory before and after.
Exits 1 if the server answered any 5xx, a connection failed, a malformed request was not answered 4xx,
a well-formed one was, or the server died.

``--oversized 8`` first sends 8 chunked bodies of ``--oversized-mib`` MiB at once
(no Content-Length, so only counting the bytes as they arrive can stop them) and
reports their answers and the server's memory after them.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROMPTS = ["red apple", "a smiling sun", "blue whale", "green frog", "yellow star", "pizza slice",
           "a cat face", "snowman", "rocket", "rainbow", "red heart", "banana"]


def build_tiny_model(folder: Path) -> Path:
    """A random 16x16 model folder, as the test suite's ``tiny_model_dir`` fixture builds it."""
    import torch
    from safetensors.torch import save_file

    from gouache.model.config import ModelConfig
    from gouache.model.unet import PRESETS, UNet
    from gouache.store.files import write_json

    cfg = ModelConfig(unet=PRESETS["tiny"])
    torch.manual_seed(0)
    net = UNet(cfg.unet)
    for p in net.parameters():  # zero-initialised output layers would paint flat grey
        p.data.add_(0.02 * torch.randn_like(p))
    folder.mkdir(parents=True, exist_ok=True)
    write_json(cfg.to_dict(), folder / "config.json")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "ema.safetensors")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int, field: str = "VmHWM") -> float | None:
    """The process's peak (VmHWM) or current (VmRSS) resident set, from /proc: no psutil needed."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def oversized_upload(port: int, mib: int) -> str:
    """POST ``mib`` MiB of JSON-ish body, chunked, until the server answers; return its status line.

    A blocking socket, so that a write the server refused (it closes once it has answered)
    still leaves the answer to be read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b'Transfer-Encoding: chunked\r\n\r\n3\r\n{"p\r\n')
        frame = b"10000\r\n" + b"a" * 65_536 + b"\r\n"
        try:
            for _ in range(mib * 16):
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer is there
                sock.sendall(frame)
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped listening: read what it said
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"
        except OSError as e:
            return type(e).__name__


def oversized_uploads(port: int, count: int, mib: int) -> Counter:
    with ThreadPoolExecutor(count) as pool:
        return Counter(pool.map(oversized_upload, [port] * count, [mib] * count))


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def malformed_bodies(size: int) -> dict[str, dict]:
    """Requests whose start picture or mask is malformed (each must be answered 4xx), by name."""
    from PIL import Image

    b64 = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    noise = _png(Image.effect_noise((size, size), 60).convert("RGB"))
    at = noise.find(b"IDAT") + 8
    corrupt = b64(noise[:at] + bytes([noise[at] ^ 0xFF]) + noise[at + 1:])  # a corrupt chunk (and its CRC)
    good = b64(noise)
    bomb = b64(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", (13000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
               + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))
    small = b64(_png(Image.new("L", (size // 2, size // 2), 255)))
    base = {"prompt": "red apple", "seed": 1}
    return {"corrupt image": {**base, "image": corrupt}, "corrupt mask": {**base, "image": good, "mask": corrupt},
            "no comma": {**base, "image": "data:image/png;base64" + good},
            "no comma mask": {**base, "image": good, "mask": "data:image/png;base64" + good},
            "header bomb": {**base, "image": bomb}, "header bomb mask": {**base, "image": good, "mask": bomb},
            "mask size": {**base, "image": good, "mask": small}}


OUTCOMES = ("200", "4xx", "503", "5xx", "connection error")


@dataclass
class Tally:
    """One phase's answers: (well-formed or malformed, outcome) -> count."""

    counts: Counter = field(default_factory=Counter)
    images: int = 0
    ok_latency: list[float] = field(default_factory=list)  # seconds, of the well-formed requests answered 200

    def sent(self, kind: str | None = None) -> int:
        return sum(n for (k, _), n in self.counts.items() if kind in (None, k))

    def count(self, outcome: str, kind: str | None = None) -> int:
        return sum(n for (k, o), n in self.counts.items() if o == outcome and kind in (None, k))


async def one_request(http: httpx.AsyncClient, body: dict, stream: bool) -> tuple[int, dict, int]:
    """POST one job; return (status, headers, pictures received)."""
    if not stream:
        r = await http.post("/api/generate", json=body)
        return r.status_code, dict(r.headers), len(r.json()["images"]) if r.status_code == 200 else 0
    async with http.stream("POST", "/api/generate/stream", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code, dict(r.headers), 0
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("result", "error"):
                data = json.loads(line[5:])
                return (200, dict(r.headers), len(data["images"])) if event == "result" else (data["status"], {}, 0)
    return 599, {}, 0  # the stream ended without a result


def outcome(status: int) -> str:
    return "200" if status == 200 else "503" if status == 503 else "4xx" if 400 <= status < 500 else "5xx"


async def client(http: httpx.AsyncClient, tally: Tally, deadline: float, args: argparse.Namespace,
                 rng: random.Random, malformed: list[dict], share: float) -> None:
    while time.monotonic() < deadline and tally.sent() < args.max_requests:
        kind = "malformed" if rng.random() < share else "well-formed"
        if kind == "malformed":
            body = rng.choice(malformed)
        else:
            body = {"prompt": rng.choice(PROMPTS), "seed": rng.randrange(10_000), "num_images": rng.choice((1, 1, 1, 2))}
            if args.steps is not None:
                body["steps"] = args.steps
        stream = rng.random() < 0.25
        start = time.perf_counter()
        try:
            status, headers, n = await one_request(http, body, stream)
        except httpx.HTTPError:
            tally.counts[kind, "connection error"] += 1
            await asyncio.sleep(0.2)
            continue
        tally.counts[kind, outcome(status)] += 1
        if status == 200 and kind == "well-formed":
            tally.images += n
            tally.ok_latency.append(time.perf_counter() - start)
        elif status == 503:
            retry = float(headers.get("retry-after", 1))
            await asyncio.sleep(min(retry, 1.0) * rng.uniform(0.5, 1.0))  # back off, a little


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


async def run_clients(url: str, args: argparse.Namespace, malformed: list[dict],
                      share: float) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits, trust_env=False) as http:
        start = time.monotonic()
        deadline = start + args.duration
        tasks = [client(http, tally, deadline, args, random.Random(k), malformed, share)
                 for k in range(args.clients)]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.duration + args.timeout + 10)
        return tally, time.monotonic() - start


def start_server(args: argparse.Namespace, model: Path | None, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gouache", "serve", *(["--model", str(model)] if model else []), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--queue-size", str(args.queue_size),
           "--max-batch", str(args.max_batch), "--threads", str(args.threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode} before it was ready")
        try:
            return httpx.get(url + "/api/info", timeout=2, trust_env=False).raise_for_status().json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def report(args, info, phases: dict[str, tuple[Tally, float, float | None, float | None]], health: dict,
           rss: dict, alive: bool) -> None:
    """One column a phase: (tally, seconds, RSS before, RSS after)."""
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    mib = lambda v: f"{v:.0f}" if v is not None else "?"  # noqa: E731
    batches = health.get("batches", 0)
    print(f"\nclients {args.clients}; model {args.model or ('tiny random' if args.tiny else 'shipped')} "
          f"({info['image_size']}x{info['image_size']}), default sampler{f', {args.steps} steps' if args.steps else ''}; "
          f"queue {args.queue_size}, max batch {args.max_batch}, {args.threads} thread(s)")
    rows: list[tuple[str, list[str]]] = [
        ("seconds", [f"{elapsed:.1f}" for _, elapsed, _, _ in phases.values()]),
        ("requests sent (malformed)", [f"{t.sent()} ({t.sent('malformed')})" for t, *_ in phases.values()]),
        ("200", [f"{t.count('200')} ({t.images} pictures)" for t, *_ in phases.values()]),
        ("4xx (of the malformed)", [f"{t.count('4xx')} ({t.count('4xx', 'malformed')})" for t, *_ in phases.values()]),
        *[(name, [str(t.count(name)) for t, *_ in phases.values()]) for name in ("503", "5xx", "connection error")],
        ("latency of a 200, p50 / p99", [f"{ms(percentile(t.ok_latency, 50))} / {ms(percentile(t.ok_latency, 99))}"
                                         for t, *_ in phases.values()]),
        ("server RSS before / after, MiB", [f"{mib(before)} / {mib(after)}" for _, _, before, after in phases.values()]),
    ]
    names = list(phases)
    width = max(len(name) for name, _ in rows)
    cols = [max(len(n), *(len(r[1][k]) for r in rows)) for k, n in enumerate(names)]
    print("| " + " | ".join(["metric".ljust(width), *(n.ljust(c) for n, c in zip(names, cols))]) + " |")
    print("|" + "|".join(["-" * (width + 2), *("-" * (c + 2) for c in cols)]) + "|")
    for name, values in rows:
        print("| " + " | ".join([name.ljust(width), *(v.ljust(c) for v, c in zip(values, cols))]) + " |")
    if args.oversized:
        print(f"{args.oversized} chunked {args.oversized_mib} MiB bodies: {dict(rss['oversized'])}; "
              f"server RSS after them {mib(rss['after_oversized'])} MiB")
    print(f"server batches {batches} ({health.get('served', 0) / max(1, batches):.2f} jobs a batch); "
          f"peak RSS (VmHWM) {mib(rss['peak'])} MiB; alive afterwards: {'yes' if alive else 'NO'}")


def failures(phases: dict[str, tuple[Tally, float, float | None, float | None]], alive: bool) -> list[str]:
    out = []
    for name, (t, *_) in phases.items():
        bad = {"5xx": t.count("5xx"), "connection errors": t.count("connection error"),
               "malformed requests not answered 4xx": t.sent("malformed") - t.count("4xx", "malformed"),
               "well-formed requests answered 4xx": t.count("4xx", "well-formed")}
        out += [f"{name}: {n} {what}" for what, n in bad.items() if n]
        if t.count("200") == 0:
            out.append(f"{name}: nothing was served")
    return out + ([] if alive else ["the server died"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    p.add_argument("--tiny", action="store_true", help="the tiny random test model instead")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load, each phase")
    p.add_argument("--malformed-share", type=float, default=0.1,
                   help="share of malformed pictures in the second phase (0: only the first)")
    p.add_argument("--max-requests", type=int, default=20_000, help="stop a phase after this many requests")
    p.add_argument("--steps", type=int, default=None, help="sampling steps per request (default: sampler's)")
    p.add_argument("--queue-size", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="server torch threads")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a request may take")
    p.add_argument("--startup-timeout", type=float, default=300.0)
    p.add_argument("--oversized", type=int, default=0, help="first send this many chunked oversized bodies")
    p.add_argument("--oversized-mib", type=int, default=200, help="MiB in each oversized body")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gouache-load-") as tmp:
        model = build_tiny_model(Path(tmp) / "tiny") if args.tiny else args.model
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "server.log"
        proc = start_server(args, model, port, log)
        phases: dict[str, tuple[Tally, float, float | None, float | None]] = {}
        health: dict = {}
        try:
            info = wait_ready(url, proc, args.startup_timeout)
            rss = {"ready": rss_mib(proc.pid, "VmRSS")}
            if args.oversized:
                rss["oversized"] = oversized_uploads(port, args.oversized, args.oversized_mib)
                rss["after_oversized"] = rss_mib(proc.pid, "VmRSS")
            malformed = list(malformed_bodies(info["image_size"]).values())
            plan = {"well-formed": 0.0}
            if args.malformed_share > 0:
                plan[f"{args.malformed_share:.0%} malformed"] = args.malformed_share
            for name, share in plan.items():
                if proc.poll() is not None:
                    break
                print(f"server {url} (pid {proc.pid}): {name}, {args.clients} clients for {args.duration:.0f} s",
                      flush=True)
                before = rss_mib(proc.pid, "VmRSS")
                tally, elapsed = asyncio.run(run_clients(url, args, malformed, share))
                phases[name] = (tally, elapsed, before, rss_mib(proc.pid, "VmRSS"))
            alive = proc.poll() is None
            health = httpx.get(url + "/api/health", timeout=10, trust_env=False).json() if alive else {}
            rss["peak"] = rss_mib(proc.pid, "VmHWM")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        report(args, info, phases, health, rss, alive)
        failed = failures(phases, alive)
        if failed:
            print("\nFAILED: " + "; ".join(failed) + "\n--- server log (tail) ---\n"
                  + "\n".join(log.read_text().splitlines()[-30:]), file=sys.stderr)
            return 1
        print("\nOK: no 5xx, no connection errors, every malformed request a 4xx, the server stayed up")
        return 0


if __name__ == "__main__":
    sys.exit(main())
