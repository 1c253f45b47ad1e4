"""`run_job`: send a job's unfinished chunks to an executor, store each as it finishes, retry failures.

Retries: a chunk whose worker died or raised is queued again, at the front, (the Ray executor hands it to
another worker, or to a replacement once that has loaded the model) up to `max_retries` times; after that it
is reported as failed and left for the next run.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from .executors import Executor, LocalExecutor, RayExecutor, connect
from .jobs import Job
from .store import ResultStore

DEFAULT_MAX_RETRIES = 2
MAX_LISTED = 20  # report lines of one kind; summary.json and the table's error column hold them all


def _listed(lines: list[str]) -> list[str]:
    more = len(lines) - MAX_LISTED
    return lines[:MAX_LISTED] + ([f"... and {more} more (summary.json)"] if more > 0 else [])


@dataclass
class Summary:
    """What one run of a job did.

    Attributes:
        structures, chunks: size of the job.
        skipped_chunks: chunks already in the results directory (not run again).
        completed_chunks: chunks computed and stored by this run.
        retried: chunk id -> the reason of each failed attempt that was retried or given up.
        failed_chunks: chunk id -> last reason, for chunks still missing (re-run the command to retry).
        failed_structures: (label, reason) of structures the model refused (their table row has `error`).
        status: 'complete', 'incomplete' (failed chunks) or 'interrupted'.
        wall_s: seconds; structures_per_s: structures computed by this run per second.
    """

    directory: str
    structures: int
    chunks: int
    skipped_chunks: int = 0
    completed_chunks: int = 0
    retried: dict[int, list[str]] = field(default_factory=dict)
    failed_chunks: dict[int, str] = field(default_factory=dict)
    failed_structures: list[tuple[str, str]] = field(default_factory=list)
    status: str = "complete"
    wall_s: float = 0.0
    structures_per_s: float = 0.0

    def lines(self) -> list[str]:
        """A human-readable report."""
        out = [f"{self.status}: {self.structures} structures in {self.chunks} chunks; {self.completed_chunks} chunks "
               f"computed ({self.structures_per_s:.2f} structures/s over {self.wall_s:.1f} s), {self.skipped_chunks} "
               "already done"]
        out += _listed([f"chunk {k} retried after: {'; '.join(reasons)}" for k, reasons in self.retried.items()])
        out += _listed([f"chunk {k} FAILED (re-run the command to retry it): {reason}"
                        for k, reason in self.failed_chunks.items()])
        out += _listed([f"structure {label} failed: {reason}" for label, reason in self.failed_structures])
        out.append(f"results: {os.path.join(self.directory, 'results.csv')}, "
                   f"{os.path.join(self.directory, 'structures.extxyz')}")
        return out


def run_job(job: Job, executor: Executor, directory: str | os.PathLike | ResultStore, *,
            max_retries: int = DEFAULT_MAX_RETRIES, progress: bool = True, overwrite: bool = False) -> Summary:
    """Run the chunks of `job` not yet in `directory` (a path, or the job's `ResultStore`) on `executor`;
    write each chunk as it finishes.

    Re-running with the same job and directory skips finished chunks; a directory of another job raises
    `ResultsDirError` (what differs) and is left as it was, unless `overwrite` (start over). The summary is
    also written to `directory/summary.json`, and the merged table (results.csv, structures.extxyz) is
    rebuilt at the end, also after an interrupt (Ctrl-C).
    """
    from tqdm.auto import tqdm

    store = directory if isinstance(directory, ResultStore) else ResultStore(directory, job, overwrite=overwrite)
    chunks = job.chunks()
    done = store.done()
    summary = Summary(str(store.directory), len(job.structures), len(chunks), skipped_chunks=len(done))
    pending = deque(c for c in chunks if c.id not in done)
    computed, in_flight, start = 0, 0, time.perf_counter()
    bar = tqdm(total=len(job.structures), initial=sum(len(c.indices) for c in chunks if c.id in done),
               unit="structure", disable=None if progress else True)
    try:
        while pending or in_flight:
            while pending and (in_flight < executor.slots or not in_flight):  # raises if no worker is left
                executor.submit(pending.popleft(), job.task)
                in_flight += 1
            chunk, results, reason = executor.wait()
            in_flight -= 1
            if results is not None:
                if store.write(chunk, results):
                    summary.completed_chunks += 1
                    computed += len(chunk.indices)
                    bar.update(len(chunk.indices))
                continue
            summary.retried.setdefault(chunk.id, []).append(reason)
            if len(summary.retried[chunk.id]) <= max_retries:
                pending.appendleft(chunk)  # first in line: the tail of a job does not wait on a retried chunk
            else:
                summary.failed_chunks[chunk.id] = reason
        summary.status = "incomplete" if summary.failed_chunks else "complete"
    except BaseException as exc:  # Ctrl-C, or an executor with no worker left: keep what is stored
        summary.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "incomplete"
        executor.cancel()
        raise
    finally:
        bar.close()
        summary.wall_s = time.perf_counter() - start
        summary.structures_per_s = computed / summary.wall_s if summary.wall_s > 0 else 0.0
        summary.failed_structures = store.merge()
        store.write_summary(asdict(summary))
    return summary


def run(job: Job, directory: str | os.PathLike, *, ray: str | None = None, workers: int | None = None,
        cpus_per_worker: int = 1, device: str = "auto", max_retries: int = DEFAULT_MAX_RETRIES,
        progress: bool = True, overwrite: bool = False) -> Summary:
    """`run_job` on a fresh executor, closed afterwards: without `ray`, in this process (no Ray needed);
    with `ray` ('local' starts a cluster here, 'auto', HOST:PORT or ray://HOST:PORT joins one), on
    `workers` Ray workers (see `RayExecutor`). The results directory is checked (and a directory of another
    job refused) before Ray is joined or any worker loads the model. `progress=False` also keeps Ray's
    reports of dead workers out of the output (the summary lists the retried chunks and why)."""
    store = ResultStore(directory, job, overwrite=overwrite)
    if ray is None:
        executor = LocalExecutor(job.model, device=device, dtype=job.dtype)
    else:
        connect(ray, quiet=not progress)
        executor = RayExecutor(job.model, workers=workers, cpus_per_worker=cpus_per_worker, device=device,
                               dtype=job.dtype)
    with executor:
        return run_job(job, executor, store, max_retries=max_retries, progress=progress)
