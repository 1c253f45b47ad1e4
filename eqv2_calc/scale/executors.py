"""Where chunks run: in this process (`LocalExecutor`, no Ray needed) or on a pool of Ray actors
(`RayExecutor`, one model-holding worker per GPU or per `cpus_per_worker` cores).

Both answer the same calls: `submit(chunk, task)`; `wait()`, which returns one finished chunk as
`(chunk, results, None)` or `(chunk, None, reason)` when it failed (the runner decides on retries); and
`cancel()`, which drops every submitted chunk (after an interrupt), so the executor can serve a new run.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import ClusterError, WorkerError
from .jobs import Chunk
from .tasks import ItemResult, Task
from .worker import ModelWorker

Outcome = tuple[Chunk, list[ItemResult | str] | None, str | None]  # a chunk and its results, or why it failed
# Seconds to wait for a TCP connection to a cluster address before calling it unreachable (Ray itself
# retries for minutes), and for a pool of workers to load their model.
CONNECT_TIMEOUT_S = 5.0
WORKER_START_TIMEOUT_S = 600.0
# The node address of the cluster `--ray` starts on this machine: nothing outside it needs to reach it.
LOOPBACK = "127.0.0.1"
# Requests queued per worker: the next chunk is already there when one finishes, hiding the round trip.
REQUESTS_PER_WORKER = 2


class Executor(Protocol):
    slots: int  # chunks it takes at once

    def submit(self, chunk: Chunk, task: Task) -> None: ...

    def wait(self) -> Outcome: ...

    def cancel(self) -> None: ...


def _model_argument(model: str) -> str:
    """A checkpoint path made absolute (workers may run elsewhere); names and addresses as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def _check_loaded(errors: list[str | None], model: str) -> None:
    for error in errors:
        if error is not None:
            raise WorkerError(f"a worker could not load the model {model!r}: {error}")


class LocalExecutor:
    """Runs chunks one after another in this process with one `ModelWorker` (no Ray).

    `threads`: torch threads of this process (set for the whole process; None leaves them as they are).
    """

    slots = 1

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "float32", threads: int | None = None) -> None:
        self.worker = ModelWorker(_model_argument(model), device, dtype, threads)
        _check_loaded([self.worker.ready()], model)
        self.queue: deque[tuple[Chunk, Task]] = deque()

    def submit(self, chunk: Chunk, task: Task) -> None:
        self.queue.append((chunk, task))

    def wait(self) -> Outcome:
        chunk, task = self.queue.popleft()
        try:
            return chunk, self.worker.run(task, chunk.structures), None
        except Exception as exc:  # the runner retries or reports it
            return chunk, None, f"{type(exc).__name__}: {exc}"

    def cancel(self) -> None:
        self.queue.clear()

    def close(self) -> None:
        self.cancel()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("Ray is not installed: pip install 'eqv2-calc[ray]' (or run without --ray)") from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast on HOST:PORT or ray://HOST:PORT that takes no TCP connection."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ClusterError(f"Ray address {address!r}: {exc}; use HOST:PORT, ray://HOST:PORT or auto") from exc
    if not host or not port:
        raise ClusterError(f"Ray address {address!r} has no port; use HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach a Ray cluster at {address} ({exc}); is `ray start --head` running "
                           "there, and is the port open?") from exc


def _silence_raylet_reports() -> None:
    """Drop the reports Ray's driver thread prints for the raylet ("A worker died or was killed ...", many
    lines each): the run's summary names the retried chunks and why. Other output of Ray is kept."""
    from ray._private import worker as ray_worker

    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "drops_raylet_reports", False):
        return

    def without_raylet(data: dict, *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            printer(data, *args, **kwargs)

    without_raylet.drops_raylet_reports = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = without_raylet


def _host(address: str) -> str | None:
    """The host of HOST:PORT or ray://HOST:PORT (None when it has none)."""
    return urlsplit(address if "://" in address else f"tcp://{address}").hostname


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def _on_loopback() -> Iterator[None]:
    """Keep a loopback node or cluster address on loopback while Ray starts or joins a cluster.

    Ray rewrites 127.0.0.1 to this machine's interface address (`services.resolve_ip_for_localhost`) except
    where it runs clusters of one machine only (its Windows/macOS switch, `ENABLE_RAY_CLUSTER`); off, a node
    started on 127.0.0.1 binds every gRPC server to loopback, and a loopback address is joined as given.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _use_local_token() -> None:
    """Present this machine's Ray token (~/.ray/auth_token) to a cluster on this machine, as Ray itself does
    for `address="auto"` (for an explicit address it never does): `ray start` turns token authentication on."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def connect(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = False) -> None:
    """Join a Ray cluster: None or 'local' starts one on this machine (`num_cpus` cores), listening on
    127.0.0.1 only; 'auto' joins the one `ray start` runs here, HOST:PORT or ray://HOST:PORT a remote one
    (a loopback HOST one on this machine, joined on loopback). No-op when already connected.
    `quiet`: Ray's own reports of dead workers are not printed (the summary of a run lists them)."""
    ray = _import_ray()
    if quiet:
        _silence_raylet_reports()
    if address not in (None, "local", "auto"):
        if os.path.exists(address):
            raise ClusterError(f"--ray got {address!r}, which is a file: put --ray after the structure files, "
                               "or write --ray=ADDRESS")
        _check_reachable(address)
    if ray.is_initialized():
        return
    try:
        if address in (None, "local"):
            with _on_loopback():
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _node_ip_address=LOOPBACK)
        elif _is_loopback(_host(address)):
            _use_local_token()
            with _on_loopback():
                ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        raise ClusterError(f"cannot join the Ray cluster {address!r}: {exc}{cause}") from exc


class RayExecutor:
    """A pool of `ModelWorker` Ray actors; each loads the model once and serves many chunks.

    Args:
        model: registered name, hf:// address, URL or checkpoint path (readable where the workers run).
        workers: actors to start (default: one per GPU of the cluster when it has GPUs and `device` is
            not 'cpu', else one per `cpus_per_worker` cores).
        cpus_per_worker: cores reserved per actor; torch in the actor uses that many threads.
        gpus_per_worker: GPUs per actor (default 1 when workers run on GPUs, else 0).
        device, dtype: where and in which precision the model runs in each actor.
        max_replacements: actors started to replace dead ones before giving up (default 2 per worker).

    Raises:
        ClusterError: Ray is missing or not connected; WorkerError: the actors cannot be scheduled on
        the cluster's resources or cannot load the model.
    """

    def __init__(self, model: str, *, workers: int | None = None, cpus_per_worker: int = 1,
                 gpus_per_worker: float | None = None, device: str = "auto", dtype: str = "float32",
                 max_replacements: int | None = None) -> None:
        ray = self.ray = _import_ray()
        if not ray.is_initialized():
            raise ClusterError("Ray is not connected: call eqv2_calc.scale.connect() first")
        if cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker={cpus_per_worker} must be at least 1")
        resources = ray.cluster_resources()
        cluster_gpus, cluster_cpus = resources.get("GPU", 0), resources.get("CPU", 0)
        if gpus_per_worker is None:
            gpus_per_worker = 1 if cluster_gpus and device != "cpu" else 0
        if workers is None:
            workers = int(cluster_gpus // gpus_per_worker) if gpus_per_worker else int(cluster_cpus // cpus_per_worker)
        if workers < 1 or workers * cpus_per_worker > cluster_cpus or workers * gpus_per_worker > cluster_gpus:
            raise WorkerError(
                f"cannot place {max(workers, 1)} workers of {cpus_per_worker} CPUs and {gpus_per_worker} GPUs on a "
                f"cluster with {cluster_cpus:g} CPUs and {cluster_gpus:g} GPUs; lower --workers or the per-worker "
                "resources")
        self.model = model
        self.actor_class = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(ModelWorker)
        self.arguments = (_model_argument(model), device, dtype, cpus_per_worker)
        self.replacements_left = 2 * workers if max_replacements is None else max_replacements
        self.workers = [self._start() for _ in range(workers)]  # the first pool, checked below
        self.load = {worker: 0 for worker in self.workers}  # requests queued on each live worker
        self.loading: dict[Any, Any] = {}  # ready() request -> replacement still loading the model
        self.running: dict[Any, tuple[Chunk, Any]] = {}
        self.slots = REQUESTS_PER_WORKER * workers
        try:
            errors = ray.get([w.ready.remote() for w in self.workers], timeout=WORKER_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as exc:
            self.close()
            raise WorkerError(f"the workers did not load {model!r} within {WORKER_START_TIMEOUT_S:g} s") from exc
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise WorkerError(f"a worker died while loading {model!r}: {exc}") from exc
        try:
            _check_loaded(errors, model)
        except WorkerError:
            self.close()
            raise

    def _start(self) -> Any:
        return self.actor_class.remote(*self.arguments)

    def submit(self, chunk: Chunk, task: Task) -> None:
        self._admit(block=False)
        while not self.load and self.loading:  # every worker died: wait for a replacement to load the model
            self._admit(block=True)
        if not self.load:
            raise WorkerError(f"every worker died and {self.model!r} has no replacement left; see the summary")
        worker = min(self.load, key=self.load.get)
        self.load[worker] += 1
        self.running[worker.run.remote(task, chunk.structures)] = (chunk, worker)

    def _replace(self, dead: Any) -> None:
        if self.load.pop(dead, None) is None:
            return
        self.slots -= REQUESTS_PER_WORKER
        self._start_replacement()

    def _start_replacement(self) -> None:
        """Start a replacement; it gets chunks once its model is loaded (`_admit`), so that no chunk waits on
        a model load while a loaded worker could take it."""
        if self.replacements_left > 0:
            self.replacements_left -= 1
            worker = self._start()
            self.loading[worker.ready.remote()] = worker

    def _admit(self, *, block: bool) -> None:
        """Move replacements that finished loading into the pool (with `block`, wait for at least one)."""
        if not self.loading:
            return
        ray = self.ray
        ready, _ = ray.wait(list(self.loading), num_returns=1 if block else len(self.loading),
                            timeout=WORKER_START_TIMEOUT_S if block else 0)
        if block and not ready:
            raise WorkerError(f"no replacement worker loaded {self.model!r} within {WORKER_START_TIMEOUT_S:g} s")
        for ref in ready:
            worker = self.loading.pop(ref)
            try:
                error = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                error = f"died while loading: {str(exc).splitlines()[0]}"
            if error is None:
                self.load[worker] = 0
                self.slots += REQUESTS_PER_WORKER
            else:  # a replacement that cannot load the model: retire it, try another
                ray.kill(worker)
                self._start_replacement()

    def wait(self) -> Outcome:
        ray = self.ray
        self._admit(block=False)
        [ref], _ = ray.wait(list(self.running), num_returns=1)
        chunk, worker = self.running.pop(ref)
        try:
            results = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self._replace(worker)
            return chunk, None, f"worker died: {str(exc).splitlines()[0]}"
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            if isinstance(cause, WorkerError):  # a replacement that cannot load the model: retire it
                ray.kill(worker)
                self._replace(worker)
            elif worker in self.load:
                self.load[worker] -= 1
            return chunk, None, f"{type(cause).__name__}: {cause}"
        if worker in self.load:
            self.load[worker] -= 1
        return chunk, results, None

    def cancel(self) -> None:
        for ref in self.running:
            self.ray.cancel(ref)
        self.running.clear()
        self.load = dict.fromkeys(self.load, 0)

    def close(self) -> None:
        """Stop the actors (the cluster stays up)."""
        for worker in {*self.load, *self.workers, *self.loading.values()}:
            self.ray.kill(worker)
        self.load.clear()
        self.loading.clear()
        self.workers = []

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
