"""Fan-out of a stage's independent tasks (a video to mine, a chunk of questions to verify or answer):
in this process (`executor: local`, the embedded default) or as Ray tasks (`executor: ray`, on the
cluster at `ray_address`, or on a Ray started in this process when there is none).

Tasks take ids, paths and plain settings, never models or sessions; each worker process opens the store
and loads a model once (`worker_store`, `worker_engine`) and writes its results to the store itself, in
one transaction that first checks the work is still to do, so a task retried after its node died never
writes a row twice. Ray retries a task whose worker or node died (`max_retries`), on any node alive;
tasks are spread over the nodes. Every finished task is recorded in the `tasks` table with its node.

Ray is used directly rather than through a Prefect task runner: the fan-out lives inside a stage, which
is already a Prefect task with its state in the UI, and Ray tasks need no Prefect API in the workers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from store import Store, open_store
from store.tasks import record_tasks
from videozero.errors import VideozeroError

T = TypeVar("T")
P = TypeVar("P")

RAY_MISSING = (
    "executor 'ray' needs Ray, which is not installed: pip install 'videozero[ray]', or set executor: local."
)
_STORES: dict[str, Store] = {}
_ENGINES: dict[str, Any] = {}
_KEPT: dict[str, tuple[tuple, Any]] = {}


@dataclass(frozen=True)
class Executor:
    """Where fanned-out tasks run: `local` (this process) or `ray` (at `address`, else a Ray of its own)."""

    kind: str = "local"
    address: str | None = None
    retries: int = 3
    engine: str = "transformers"
    gpus: float = 0.0

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"


@dataclass(frozen=True)
class TaskResult(Generic[T]):
    """A finished task's value, and where and how long it ran."""

    value: T
    node: str
    pid: int
    seconds: float


def node_name() -> str:
    """The Ray node this process runs on ('local' outside Ray)."""
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return "local"


def run_task(fn: Callable[[P], T], payload: P) -> TaskResult[T]:
    """Run one task here, timed, with where it ran."""
    started = time.perf_counter()
    value = fn(payload)
    return TaskResult(value, node_name(), os.getpid(), time.perf_counter() - started)


def store_url(store: Store) -> str:
    """The store's URL for a worker to open (password included: workers need it)."""
    return store.url.render_as_string(hide_password=False)


def worker_store(url: str) -> Store:
    """This process's store at `url`, opened once."""
    if url not in _STORES:
        _STORES[url] = open_store(url)
    return _STORES[url]


def worker_kept(kind: str, key: tuple, make: Callable[[], T]) -> T:
    """An object this process keeps for its next tasks (one per `kind`: the newest `key`), such as the
    videos a worker verified last, so consecutive chunks of one video load it once."""
    held = _KEPT.get(kind)
    if held is None or held[0] != key:
        _KEPT[kind] = (key, make())
    return _KEPT[kind][1]


def local_engine(path: str, engine: Any) -> None:
    """Let local tasks use `engine` (already loaded by the stage) as the model at `path`."""
    _ENGINES.clear()
    _ENGINES[path] = engine


def worker_engine(path: str, engine: str = "transformers") -> Any:
    """This process's generation engine (`transformers`, or `vllm` on a GPU) over the model at `path`,
    loaded once (the newest one only)."""
    if path not in _ENGINES:
        _ENGINES.clear()
        if engine == "vllm":
            from videozero.models.engines.vllm_engine import VLLMEngine

            _ENGINES[path] = VLLMEngine(path)
        else:
            from videozero.models.engines.transformers_engine import load_engine

            _ENGINES[path] = load_engine(path)
    return _ENGINES[path]


def fan_out(
    executor: Executor,
    fn: Callable[[P], T],
    payloads: Sequence[P],
    progress: Callable[[int, int], None] | None = None,
    store: Store | None = None,
) -> list[TaskResult[T]]:
    """`fn` over every payload, in order of the payloads; a task that raises stops the stage with its
    error (on Ray, once the other tasks have finished). Local tasks use the caller's `store` (and the
    engine it registered with `local_engine`) instead of opening their own."""
    if not executor.is_ray:
        url = store_url(store) if store is not None else None
        if url is not None:
            _STORES[url] = store
        try:
            out = []
            for i, p in enumerate(payloads):
                out.append(run_task(fn, p))
                if progress is not None:
                    progress(i + 1, len(payloads))
            return out
        finally:
            if url is not None:
                _STORES.pop(url, None)
            _ENGINES.clear()
            _KEPT.clear()
    ray = connect(executor)
    remote = ray.remote(run_task).options(
        num_cpus=1,
        num_gpus=executor.gpus,
        max_retries=executor.retries,
        retry_exceptions=False,
        scheduling_strategy="SPREAD",
    )
    refs = [remote.remote(fn, p) for p in payloads]
    pending, done = list(refs), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=None)
        done += len(ready)
        if progress is not None:
            progress(done, len(refs))
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else None
        raise (cause or VideozeroError(f"a Ray task failed: {str(exc).splitlines()[0]}")) from None
    except ray.exceptions.RayError as exc:
        raise VideozeroError(
            f"a Ray task could not finish ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}): check "
            "the cluster's nodes with `ray status`, then run the same command again to resume."
        ) from None


def connect(executor: Executor):
    """The `ray` module, connected to the executor's cluster (once per process)."""
    try:
        import ray
    except ImportError:
        raise VideozeroError(RAY_MISSING) from None
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # Ray's C++ warnings stay off the console
        try:
            ray.init(
                address=executor.address,
                logging_level=logging.ERROR,
                log_to_driver=False,
                include_dashboard=False,
                configure_logging=True,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = executor.address or "a Ray of its own"
            raise VideozeroError(
                f"cannot connect to the Ray cluster at {where} ({str(exc).splitlines()[0][:160]}): start it "
                "with `ray start --head`, or check ray_address."
            ) from None
    return ray


def record(
    store: Store,
    run_id: int | None,
    stage: str,
    executor: Executor,
    items: Sequence[str],
    results: Sequence[TaskResult],
) -> None:
    """The stage's finished tasks in the `tasks` table, in one transaction."""
    rows = [
        {
            "run_id": run_id,
            "stage": stage,
            "item": item[:2000],
            "executor": executor.kind,
            "node": r.node[:64],
            "pid": r.pid,
            "seconds": round(r.seconds, 4),
        }
        for item, r in zip(items, results, strict=True)
    ]
    with store.write() as s:
        record_tasks(s, rows)


def executor_of(config: Any) -> Executor:
    """The executor a run's settings name (`executor`, `ray_address`, `engine`, `ray_task_gpus`)."""
    return Executor(config.executor, config.ray_address, engine=config.engine, gpus=config.ray_task_gpus)
