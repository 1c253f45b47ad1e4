"""Scale out: predictions and relaxations of many structures on model-holding workers, chunk by chunk.

    from eqv2_calc.scale import Job, LocalExecutor, RayExecutor, connect, predict_task, run_job

    job = Job(structures, labels, predict_task(), model="eqV2-demo-EMT", chunk_size=32)
    summary = run(job, "results/")                        # no Ray: this process
    summary = run(job, "results/", ray="auto")            # a Ray cluster; resumes: finished chunks are skipped
    print("\n".join(summary.lines()))

    connect("auto")                                       # or keep a pool of workers for several jobs
    with RayExecutor(job.model, workers=4) as executor:   # default: one worker per GPU
        summary = run_job(job, executor, "results/")

Ray is optional (`pip install eqv2-calc[ray]`); only `connect` and `RayExecutor` import it.
AdsorbML systems files: `eqv2_calc.scale.adsorb` (`read_systems`, `adsorb_task`).
"""

from .executors import LocalExecutor, RayExecutor, connect
from .jobs import Chunk, Job
from .runner import Summary, run, run_job
from .store import ResultStore
from .tasks import DEFAULT_CHUNK_SIZE, Task, predict_task, relax_task
from .worker import ModelWorker

__all__ = ["DEFAULT_CHUNK_SIZE", "Chunk", "Job", "LocalExecutor", "ModelWorker", "RayExecutor", "ResultStore",
           "Summary", "Task", "connect", "predict_task", "relax_task", "run", "run_job"]
