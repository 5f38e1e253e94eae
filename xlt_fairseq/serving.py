# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""An HTTP endpoint for a trained model (``xlt-serve``), on FastAPI + uvicorn.

``POST /tag``, ``/entities``, ``/classify``, ``/translate`` take
``{"texts": [...], "lang": "sw"}`` (``lang`` optional, checked against the task's
training languages as ``xlt-predict`` does; ``task`` optional: another tagging or
classification head) and answer a JSON list with one record per text, the records
``xlt-predict`` writes (``jsonl``; ``spans`` for ``/entities``). ``GET /health``
describes the model and counts requests and model calls.

Concurrent requests are batched dynamically: each request waits in an asyncio
queue; one collector takes the requests that arrive within ``max_wait_ms`` of the
first (up to ``max_batch`` texts), groups them by endpoint, task and language,
and runs one model call per group in a single worker thread (the model is never
called from two threads at once). Limits give a 4xx with a message: a body
over ``max_body_bytes`` or more than ``max_texts`` texts is 413, a text over
``max_chars`` characters is 413, a malformed body is 422.
"""

import asyncio
import concurrent.futures
import logging
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

# endpoint -> (default task, xlt-predict's output format)
ENDPOINTS = {
    "tag": ("ner", "jsonl"),
    "entities": ("ner", "spans"),
    "classify": ("sentiment", "jsonl"),
    "translate": ("translation", "jsonl"),
}
# which task kind each endpoint serves
ENDPOINT_KIND = {"tag": "tagging", "entities": "tagging", "classify": "classification", "translate": "translation"}


@dataclass
class ServeConfig:
    max_batch: int = 64  # texts in one model call
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_texts: int = 256  # texts in one request
    max_chars: int = 10_000  # characters of one text
    max_body_bytes: int = 4 * 1024 * 1024
    batch_size: int = 32  # the hub's batch size within a model call
    beam: int = 5
    max_len_a: float = 1.2
    max_len_b: int = 10


@dataclass
class _Pending:
    key: Tuple[str, str, Optional[str]]  # endpoint, task, lang
    texts: List[str]
    future: asyncio.Future


@dataclass
class Stats:
    requests: int = 0
    texts: int = 0
    model_calls: int = 0
    largest_call: int = 0
    errors: Dict[str, int] = field(default_factory=dict)


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Batcher:
    """Collects concurrent requests into model calls, run one at a time in one worker thread."""

    def __init__(self, hub, config: ServeConfig):
        self.hub = hub
        self.config = config
        self.stats = Stats()
        self.queue: Optional[asyncio.Queue] = None
        self.task: Optional[asyncio.Task] = None
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlt-model")

    async def start(self):
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._collect())

    async def stop(self):
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, endpoint: str, task: str, lang: Optional[str], texts: List[str]) -> List[dict]:
        self.stats.requests += 1
        self.stats.texts += len(texts)
        if not texts:
            return []
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending((endpoint, task, lang), texts, future))
        return await future

    async def _collect(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            n = len(batch[0].texts)
            deadline = loop.time() + self.config.max_wait_ms / 1000
            while n < self.config.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                n += len(item.texts)
            groups: Dict[tuple, List[_Pending]] = {}
            for item in batch:
                groups.setdefault(item.key, []).append(item)
            for key, items in groups.items():
                await self._run(loop, key, items)

    async def _run(self, loop, key, items: List[_Pending]):
        texts = [t for item in items for t in item.texts]
        try:
            records = await loop.run_in_executor(self.executor, self.predict, key, texts)
        except Exception as e:  # a request the model cannot serve, or a bug: each waiting client is told
            for item in items:
                if not item.future.done():
                    item.future.set_exception(e)
            return
        self.stats.model_calls += 1
        self.stats.largest_call = max(self.stats.largest_call, len(texts))
        start = 0
        for item in items:
            if not item.future.done():  # a client that went away
                item.future.set_result(records[start : start + len(item.texts)])
            start += len(item.texts)

    def predict(self, key, texts: List[str]) -> List[dict]:
        """One model call: xlt-predict's records of ``texts`` (in the worker thread)."""
        from .cli.predict import predict

        endpoint, task, lang = key
        c = self.config
        args = Namespace(
            lang=lang, batch_size=c.batch_size, beam=c.beam, nbest=1, max_len_a=c.max_len_a, max_len_b=c.max_len_b
        )
        return predict(self.hub, task, [{"text": t} for t in texts], args, ENDPOINTS[endpoint][1])


def check_request(hub, config: ServeConfig, endpoint: str, texts, task: Optional[str]) -> str:
    """The task of a request, or a :class:`RequestError`."""
    from .data.task_names import builtin_kind

    if len(texts) > config.max_texts:
        raise RequestError(413, f"{len(texts)} texts in one request; at most {config.max_texts}")
    for i, text in enumerate(texts):
        if len(text) > config.max_chars:
            raise RequestError(413, f"texts[{i}]: {len(text)} characters; at most {config.max_chars}")
    task = task or ENDPOINTS[endpoint][0]
    kind = ENDPOINT_KIND[endpoint]
    if kind == "translation":
        if hub.model.decoder is None:
            raise RequestError(422, "this model has no translation decoder")
        if task != "translation":
            raise RequestError(422, f"task {task!r}: /translate serves the translation task")
        return task
    if task not in hub.heads:
        raise RequestError(422, f"task {task!r}: the model has no such head (heads: {', '.join(hub.heads)})")
    if builtin_kind(task) != kind:
        raise RequestError(422, f"task {task!r} is not a {kind} task; /{endpoint} serves {kind} heads")
    return task


def create_app(hub, config: Optional[ServeConfig] = None):
    """The FastAPI application serving ``hub`` (an ``XLTModel``)."""
    from contextlib import asynccontextmanager

    from .optional import require

    fastapi = require("fastapi", "xlt-serve")
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict

    config = config or ServeConfig()
    batcher = Batcher(hub, config)

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        texts: List[str]
        lang: Optional[str] = None
        task: Optional[str] = None

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = fastapi.FastAPI(title="xlt_fairseq", lifespan=lifespan)
    app.state.batcher = batcher

    @app.middleware("http")
    async def limit_body(request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body of {length} bytes; at most {config.max_body_bytes}"}, status_code=413
            )
        return await call_next(request)

    def refuse(endpoint: str, status: int, message: str):
        batcher.stats.errors[str(status)] = batcher.stats.errors.get(str(status), 0) + 1
        return JSONResponse({"detail": message}, status_code=status)

    async def answer(endpoint: str, body: Body):
        try:
            task = check_request(hub, config, endpoint, body.texts, body.task)
            return await batcher.submit(endpoint, task, body.lang, body.texts)
        except RequestError as e:
            return refuse(endpoint, e.status, e.message)
        except ValueError as e:  # the hub's refusals (HubError) and input errors
            return refuse(endpoint, 422, str(e))

    for endpoint in ENDPOINTS:

        async def handler(body: Body, endpoint=endpoint):
            return await answer(endpoint, body)

        app.post(f"/{endpoint}", name=endpoint)(handler)

    @app.get("/health")
    async def health():
        s = batcher.stats
        return {
            "status": "ok",
            "heads": hub.heads,
            "translation": hub.model.decoder is not None,
            "languages": {task: hub.task_languages(task) for task in hub.task.corpus_keys},
            "max_positions": hub.max_pieces + 2,
            "limits": {"max_texts": config.max_texts, "max_chars": config.max_chars, "max_body_bytes": config.max_body_bytes},
            "stats": {
                "requests": s.requests,
                "texts": s.texts,
                "model_calls": s.model_calls,
                "largest_call": s.largest_call,
                "errors": dict(s.errors),
            },
        }

    return app


def make_server(app, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning"):
    """A ``uvicorn.Server`` of ``app`` (``server.run()`` blocks; ``server.run(sockets=[...])`` serves bound sockets)."""
    from .optional import require

    uvicorn = require("uvicorn", "xlt-serve")
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False))
