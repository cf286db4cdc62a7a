"""A fake OpenAI-compatible chat-completions server for the LLM binding tests.

Its answers depend on the prompt, so chains behave like they would against a real model, and markers in the
customer message make it misbehave once (RATE: a 429, SLOW: sleep past the client's timeout, BROKEN: malformed
JSON until the schema retry) or always (NEVER: an answer that never validates, LEAK: a 401 echoing the key).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

SLOW_S = 1.5  # longer than the tests' timeout_s
KB_REFUND = "Refunds are accepted within 30 days of delivery."


@dataclass
class FakeLLM:
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def count(self, marker: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if marker is None or marker in r["messages"][0]["content"])

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, PlainTextResponse
        from starlette.routing import Route

        async def chat(request):
            body = await request.json()
            prompt = body["messages"][0]["content"]
            with self.lock:
                self.requests.append(body)
                self.auth.append(request.headers.get("authorization"))
                self.seen[prompt] += 1
                n = self.seen[prompt]
            message = prompt.rsplit("Customer message:", 1)[-1]
            if "LEAK" in message:
                return PlainTextResponse(f"bad credentials: {request.headers.get('authorization')}", status_code=401)
            if "RATE" in message and n == 1:
                return JSONResponse({"error": "slow down"}, status_code=429, headers={"retry-after": "0"})
            if "SLOW" in message and n == 1:
                await asyncio.sleep(SLOW_S)
            content = answer(body["messages"])
            return JSONResponse(
                {
                    "id": "fake",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split())},
                }
            )

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def answer(messages: list[dict[str, str]]) -> str:
    prompt = messages[0]["content"]
    message = prompt.rsplit("Customer message:", 1)[-1]
    retry = len(messages) > 1
    if "NEVER" in message:
        return '{"amount": "a lot", "order_id": null}'
    if "You are judging" in prompt:
        return judge_answer(prompt)
    if "BROKEN" in message and not retry:
        return "Sure! Here it is: {order_id: 12345, amount: }"
    if "Classify" in prompt:
        intent = "teleport" if "ALIEN" in message else "refund" if "refund" in message.lower() else "other"
        return json.dumps({"intent": intent, "confidence": 0.9})
    if "Extract the entities" in prompt:
        order = re.search(r"\b(\d{5})\b", message)
        email = re.search(r"[\w.+-]+@[\w-]+\.\w+", message)
        amount = re.search(r"\$(\d+(?:\.\d+)?)", message)
        found = {
            "order_id": order.group(1) if order else None,
            "email": email.group(0) if email else None,
            "amount": float(amount.group(1)) if amount else None,
        }
        return "Here you go:\n```json\n" + json.dumps(found) + "\n```"  # prose around JSON, as models do
    if "customer support agent" in prompt:
        order = re.search(r"Their order number: (\d{5})", prompt)
        reply = f"Thanks for reaching out{f' about order {order.group(1)}' if order else ''}. {KB_REFUND}"
        return json.dumps({"reply": reply, "escalate": "unacceptable" in message.lower()})
    return "I am not sure what you mean."


def judge_answer(prompt: str) -> str:
    """A scripted judge (prompts/helpdesk/judge/*.j2): fails a reply that states a number its facts do not hold,
    or that says "obviously"; JUDGE_GARBLED in the reply is an answer that never validates."""
    facts = prompt.split("Facts the reply was given:", 1)[-1].split("Customer message:", 1)[0]
    reply = prompt.rsplit("Reply:", 1)[-1].split("Answer with one JSON object", 1)[0]
    if "JUDGE_GARBLED" in reply:
        return "The reply looks fine to me, score: high"
    if "tone of a customer-support reply" in prompt:
        rude = "obviously" in reply.lower()
        return json.dumps({"score": 0.1 if rude else 0.9, "reason": "dismissive" if rude else "courteous"})
    unsupported = sorted(set(re.findall(r"\d+", reply)) - set(re.findall(r"\d+", facts)))
    if unsupported:
        return json.dumps({"score": 0.05, "reason": f"states {unsupported[0]}, which the facts do not"})
    return json.dumps({"score": 0.95, "reason": "consistent with the facts"})


@contextmanager
def serve(fake: FakeLLM, start_timeout_s: float = 10.0) -> Iterator[FakeLLM]:
    """Serve ``fake`` with uvicorn on a free 127.0.0.1 port in a background thread; stop it on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(fake.app(), log_level="warning", timeout_graceful_shutdown=1, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("fake LLM server did not start")
        time.sleep(0.02)
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=SLOW_S + 5)
        sock.close()
