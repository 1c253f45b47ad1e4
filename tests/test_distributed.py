"""Scale-out engine (`eqv2_calc.scale`): local executor without Ray, Ray actors, retries, resume, bad input.

The Ray tests start one local cluster (`num_cpus=2`) with a pool of two CPU workers holding the demo
model, shared by the tests; small structures (bulk Cu, a 12-atom slab) and few relaxation steps.
"""

from __future__ import annotations

import csv
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111

from eqv2_calc.errors import ClusterError, ResultsDirError, WorkerError
from eqv2_calc.predict import DEMO_MODEL, predict
from eqv2_calc.relax import relax_many
from eqv2_calc.scale import Job, LocalExecutor, Task, connect, predict_task, relax_task, run_job
from eqv2_calc.scale.store import ResultStore
from eqv2_calc.scale.tasks import PREDICT_COLUMNS, predict_items

N_STRUCTURES, CHUNK_SIZE = 10, 2


def _structures() -> list:
    out = [bulk("Cu", "fcc", a=3.55 + 0.02 * i, cubic=i % 2 == 0) for i in range(N_STRUCTURES - 1)]
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    slab.rattle(0.05, seed=1)
    return [*out, slab]


def _job(task: Task | None = None, structures: list | None = None) -> Job:
    structures = structures or _structures()
    return Job(structures, [f"s{i}" for i in range(len(structures))], task or predict_task(batch_size=4), DEMO_MODEL,
               chunk_size=CHUNK_SIZE)


def _table(directory: Path) -> list[dict]:
    with open(directory / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _energies(directory: Path) -> np.ndarray:
    return np.array([float(row["energy_eV"]) for row in _table(directory)])


def _same_table(directory: Path, reference: Path) -> None:
    """Same rows and columns; numbers equal to float32 noise (threaded sums are not bitwise reproducible)."""
    rows, expected = _table(directory), _table(reference)
    assert [(r["index"], r["structure"], r["chunk"], r["error"]) for r in rows] == \
        [(r["index"], r["structure"], r["chunk"], r["error"]) for r in expected]
    np.testing.assert_allclose(_energies(directory), _energies(reference), atol=1e-5)


@pytest.fixture(scope="module")
def local():
    threads = torch.get_num_threads()
    yield LocalExecutor(DEMO_MODEL, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def local_predict(tmp_path_factory, local) -> Path:
    """A finished local predict run: the reference table."""
    directory = tmp_path_factory.mktemp("local")
    run_job(_job(), local, directory, progress=False)
    return directory


# --- without Ray ---------------------------------------------------------------------------------------


def test_local_run_matches_predict_without_ray(local, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails: the local path must not need it
    summary = run_job(_job(), local, tmp_path, progress=False)
    assert summary.status == "complete" and summary.completed_chunks == N_STRUCTURES // CHUNK_SIZE
    rows = _table(tmp_path)
    assert [int(r["index"]) for r in rows] == list(range(N_STRUCTURES))
    reference = predict(_structures(), DEMO_MODEL, device="cpu", progress=False)
    np.testing.assert_allclose(_energies(tmp_path), [p.energy for p in reference], atol=1e-5)
    with pytest.raises(ClusterError, match="pip install 'eqv2-calc\\[ray\\]'"):
        connect()


def test_rerun_skips_finished_chunks(local, local_predict):
    before = (local_predict / "results.csv").read_text()
    summary = run_job(_job(), local, local_predict, progress=False)
    assert summary.completed_chunks == 0 and summary.skipped_chunks == summary.chunks
    assert (local_predict / "results.csv").read_text() == before


def test_interrupted_run_resumes_to_the_same_table(local, local_predict, tmp_path, monkeypatch):
    write = ResultStore.write
    calls = []

    def interrupt_after_two(self, chunk, results):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(chunk.id)
        return write(self, chunk, results)

    monkeypatch.setattr(ResultStore, "write", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_job(_job(), local, tmp_path, progress=False)
    assert len(_table(tmp_path)) == 2 * CHUNK_SIZE  # what was stored is merged and kept
    monkeypatch.setattr(ResultStore, "write", write)
    summary = run_job(_job(), local, tmp_path, progress=False)
    assert summary.skipped_chunks == 2 and summary.completed_chunks == summary.chunks - 2
    _same_table(tmp_path, local_predict)


def test_bad_structure_is_reported_and_skipped(local, tmp_path):
    structures = _structures()[:4]
    structures[1].positions[0, 0] = np.nan
    summary = run_job(_job(structures=structures), local, tmp_path, progress=False)
    rows = _table(tmp_path)
    assert len(rows) == 4 and "NaN" in rows[1]["error"] and rows[1]["energy_eV"] == ""
    assert all(r["energy_eV"] and not r["error"] for r in rows if r["index"] != "1")
    assert [label for label, _ in summary.failed_structures] == ["s1"]


def test_results_directory_of_another_job_is_refused(local, local_predict):
    with pytest.raises(ResultsDirError, match="another job"):
        run_job(_job(relax_task(steps=3)), local, local_predict, progress=False)


def test_checkpoint_a_worker_cannot_load(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WorkerError, match="could not load the model .*broken.pt"):
        LocalExecutor(str(broken))


def test_unreachable_cluster_address():
    pytest.importorskip("ray")
    with pytest.raises(ClusterError, match="cannot reach a Ray cluster at 127.0.0.1:1"):
        connect("127.0.0.1:1")


def test_cli_predict_results_directory_and_resume(tmp_path, capsys):
    from ase.io import write

    from eqv2_calc.cli import main

    write(tmp_path / "a.xyz", _structures()[:3])
    args = ["predict", str(tmp_path / "a.xyz"), "--results", str(tmp_path / "out"), "--chunk-size", "2", "--quiet",
            "--device", "cpu"]
    assert main(args) == 0
    assert "complete: 3 structures in 2 chunks" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 chunks computed" in capsys.readouterr().out
    assert [r["structure"] for r in _table(tmp_path / "out")] == [f"{tmp_path / 'a.xyz'}:{i}" for i in range(3)]
    assert main(["predict", str(tmp_path / "a.xyz"), "--ray"]) == 2
    assert "--ray needs --results DIR" in capsys.readouterr().err


def test_cli_adsorb_systems_file_skips_bad_rows(tmp_path, capsys):
    from ase.io import write

    from eqv2_calc.cli import main

    write(tmp_path / "Cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True))
    (tmp_path / "systems.csv").write_text("bulk,miller,adsorbate\nCu.cif,1 1 1,*O\nCu.cif,1 1 1,*NOPE\n"
                                          "missing.cif,111,*O\nCu.cif,0 0 0,*O\nCu.cif,1,1,1,*O\n")
    code = main(["adsorb", "--systems", str(tmp_path / "systems.csv"), "--results", str(tmp_path / "out"),
                 "--num-random", "1", "--steps", "3", "--min-slab-size", "4", "--min-ab", "5", "--quiet",
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1  # the screen ran, but rows were skipped
    assert "row 3 skipped: unknown adsorbate '*NOPE'" in err and "row 4 skipped: " in err and "missing.cif" in err
    assert "row 5 skipped: miller '0 0 0'" in err and "row 6 skipped: 5 fields but 3 columns; quote" in err
    [row] = _table(tmp_path / "out")
    assert row["structure"] == "row 2: Cu.cif (1,1,1) *O" and not row["error"] and int(row["valid"]) >= 1
    assert float(row["best_adsorption_energy_eV"]) < 0  # O binds on Cu with the EMT demo model


# --- on a local Ray cluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    connect(num_cpus=2)
    yield ray
    ray.shutdown()


def test_quiet_drops_ray_worker_death_reports(ray_cluster, capsys):
    from ray._private import worker as ray_worker

    connect(quiet=True)
    ray_worker.print_to_stdstream({"lines": ["A worker died or was killed"], "pid": "raylet", "is_err": False}, False)
    ray_worker.print_to_stdstream({"lines": ["a worker's own line"], "pid": 12, "is_err": False}, False)
    out = capsys.readouterr().out
    assert "a worker's own line" in out and "worker died" not in out


def _listening_addresses(pids: set[int]) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids}


def test_local_cluster_listens_on_loopback_only(ray_cluster):
    """The cluster `--ray` starts (gcs_server, raylet, agents, workers: this process's descendants) binds no socket
    beyond 127.0.0.1."""
    psutil = pytest.importorskip("psutil")
    assert ray_cluster.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray_cluster.get(ray_cluster.remote(lambda: 7).remote()) == 7  # a worker process is up
    me = psutil.Process()
    addresses = _listening_addresses({me.pid, *(p.pid for p in me.children(recursive=True))})
    assert addresses and addresses <= {"127.0.0.1", "::ffff:127.0.0.1"}


def _stop_processes_naming(text: str) -> None:
    """Stop the processes whose command line names `text` (the Ray head a test started) and their children."""
    import psutil

    heads = [p for p in psutil.process_iter(["cmdline"]) if p.pid != os.getpid()
             and any(text in part for part in p.info["cmdline"] or [])]
    procs = {q.pid: q for p in heads for q in (p, *p.children(recursive=True))}
    for proc in procs.values():
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.wait_procs(list(procs.values()), timeout=10)[1]:
        proc.kill()


def test_join_a_cluster_started_on_loopback():
    """`ray start --head --node-ip-address 127.0.0.1` then `--ray 127.0.0.1:PORT` joins on loopback (Ray rewrites a
    loopback address to the interface address, and asks a cluster `ray start` made for the local token)."""
    import shutil
    import subprocess
    import tempfile

    pytest.importorskip("psutil")
    ray_cli = shutil.which("ray") or pytest.skip("no ray command")
    with socket.socket() as probe:  # a port free right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="eqv2ray")  # short: Ray's socket paths live under it
    try:
        subprocess.run([ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                        "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats",
                        "--temp-dir", temp_dir], check=True, capture_output=True, timeout=120)
        script = ("import ray; from eqv2_calc.scale import connect; connect(%r); "
                  "print(ray.get_runtime_context().gcs_address, ray.get(ray.remote(lambda: 7).remote()))"
                  % f"127.0.0.1:{port}")
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.split()[-2:] == [f"127.0.0.1:{port}", "7"]
    finally:
        _stop_processes_naming(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_checkpoint_a_worker_cannot_load(ray_cluster, tmp_path):
    from eqv2_calc.scale import RayExecutor

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WorkerError, match="could not load the model .*broken.pt.*CheckpointError"):
        RayExecutor(str(broken), workers=2)
    with pytest.raises(WorkerError, match="cannot place 3 workers"):
        RayExecutor(DEMO_MODEL, workers=3)


@pytest.fixture(scope="module")
def pool(ray_cluster):
    from eqv2_calc.scale import RayExecutor

    with RayExecutor(DEMO_MODEL, workers=2, device="cpu") as executor:
        yield executor


def test_ray_run_matches_single_process(pool, local_predict, tmp_path):
    summary = run_job(_job(), pool, tmp_path / "predict", progress=False)
    assert summary.status == "complete" and not summary.retried
    _same_table(tmp_path / "predict", local_predict)

    run_job(_job(relax_task(steps=4)), pool, tmp_path / "relax", progress=False)
    reference = relax_many(_structures(), DEMO_MODEL, steps=4, device="cpu", progress=False)
    np.testing.assert_allclose(_energies(tmp_path / "relax"), [r.energy for r in reference], atol=1e-4)
    assert [int(r["steps"]) for r in _table(tmp_path / "relax")] == [r.steps for r in reference]


def _predict_or_die(calc, structures, *, marker: str, batch_size: int):
    """`predict_items`, but the first worker to meet a structure marked 'die' kills itself (once)."""
    import ray

    if any(atoms.info.get("die") for atoms in structures) and not os.path.exists(marker):
        Path(marker).touch()
        ray.kill(ray.get_runtime_context().current_actor)
    return predict_items(calc, structures, batch_size=batch_size)


def test_worker_killed_mid_run_gives_every_result_once(pool, local_predict, tmp_path):
    ray_cluster = pytest.importorskip("ray")
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    structures = _structures()
    structures[6].info["die"] = True  # chunk 3 of 5
    task = Task(_predict_or_die, PREDICT_COLUMNS, {"marker": str(tmp_path / "killed"), "batch_size": 4})
    summary = run_job(_job(task, structures), pool, tmp_path / "run", progress=False)
    assert (tmp_path / "killed").exists()
    assert summary.status == "complete" and 3 in summary.retried
    assert all("worker died" in reason for reasons in summary.retried.values() for reason in reasons)
    _same_table(tmp_path / "run", local_predict)


def test_ray_interrupted_run_resumes_to_the_same_table(pool, local_predict, tmp_path, monkeypatch):
    write = ResultStore.write

    def interrupt_after_one(self, chunk, results):
        if self.done():
            raise KeyboardInterrupt
        return write(self, chunk, results)

    monkeypatch.setattr(ResultStore, "write", interrupt_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_job(_job(), pool, tmp_path, progress=False)
    monkeypatch.setattr(ResultStore, "write", write)
    first = _table(tmp_path)
    assert len(first) == CHUNK_SIZE
    summary = run_job(_job(), pool, tmp_path, progress=False)
    assert summary.skipped_chunks == 1 and summary.completed_chunks == summary.chunks - 1
    kept = {r["index"] for r in first}  # the chunk stored before the interrupt (either worker's) is kept as it was
    assert [r for r in _table(tmp_path) if r["index"] in kept] == first
    _same_table(tmp_path, local_predict)


def test_ray_adsorb_systems_match_local(pool, local, tmp_path):
    from ase.io import write

    from eqv2_calc.scale.adsorb import adsorb_task, read_systems

    write(tmp_path / "Cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True))
    (tmp_path / "systems.csv").write_text("bulk,miller,adsorbate\nCu.cif,\"(1,1,1)\",*O\nCu.cif,100,*H\n")
    bulks, labels, skipped = read_systems(tmp_path / "systems.csv")
    assert not skipped
    job = Job(bulks, labels, adsorb_task(num_random=1, steps=3, min_slab_size=4.0, min_ab=5.0), DEMO_MODEL)
    assert job.chunk_size == 1
    run_job(job, pool, tmp_path / "ray", progress=False)
    run_job(job, local, tmp_path / "local", progress=False)
    ray_rows, local_rows = _table(tmp_path / "ray"), _table(tmp_path / "local")
    assert [(r["structure"], r["placements"], r["error"]) for r in ray_rows] == \
        [(r["structure"], r["placements"], r["error"]) for r in local_rows]
    np.testing.assert_allclose([float(r["best_energy_eV"]) for r in ray_rows],
                               [float(r["best_energy_eV"]) for r in local_rows], atol=1e-4)


# --- job fingerprints: a results directory never mixes two jobs ------------------------------------------


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished run of two structures with a checkpoint file `model.pt` (the seeded small stand-in)."""
    import shutil

    from eqv2_calc.scale import run

    root = tmp_path_factory.mktemp("fingerprint")
    shutil.copy(Path(__file__).parent / "data" / "ckpt_small.pt", root / "model.pt")
    job = Job(_structures()[:2], ["a", "b"], predict_task(batch_size=2), str(root / "model.pt"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EQV2_CACHE", str(root / "cache"))  # the file hash cache
        run(job, root / "out", device="cpu", progress=False)
    return root, job


def test_rerun_of_another_job_is_refused_and_leaves_the_directory(small_run, tmp_path, monkeypatch):
    import shutil

    from eqv2_calc.scale import run

    root, job = small_run
    monkeypatch.setenv("EQV2_CACHE", str(tmp_path / "cache"))
    before = _snapshot(root / "out")
    structures = _structures()[:2]
    structures[1].positions[0, 2] += 0.01
    others = {"structures: 2 both, with other": Job(structures, ["a", "b"], job.task, job.model),
              "settings: batch_size 2 there, 3 now": Job(job.structures, ["a", "b"], predict_task(3),
                                                                  job.model)}
    for why, other in others.items():
        with pytest.raises(ResultsDirError, match=f"{why}.*--results NEWDIR.*--overwrite"):
            run(other, root / "out", device="cpu", progress=False)
    # `./job.extxyz` or `job.extxyz`: other labels, same job
    assert Job(job.structures, ["./a", "b"], job.task, "./" + os.path.relpath(job.model)).fingerprint() == \
        job.fingerprint()
    replaced = tmp_path / "model.pt"
    shutil.copy(root / "model.pt", replaced)
    shutil.copy(Path(__file__).parent / "data" / "ckpt_small_gate.pt", root / "model.pt")  # retrained in place
    try:
        with pytest.raises(ResultsDirError, match="model weights: .*model.pt.*(the checkpoint was replaced)"):
            run(Job(job.structures, job.labels, job.task, job.model), root / "out", device="cpu", progress=False)
    finally:
        shutil.copy(replaced, root / "model.pt")
    assert _snapshot(root / "out") == before


def test_overwrite_starts_over(small_run, tmp_path):
    import shutil

    from eqv2_calc.scale import run

    root, job = small_run
    shutil.copytree(root / "out", tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    other = Job(job.structures[:1], ["a"], job.task, job.model)
    summary = run(other, tmp_path / "out", device="cpu", progress=False, overwrite=True)
    assert summary.completed_chunks == 1 and summary.skipped_chunks == 0
    assert len(_table(tmp_path / "out")) == 1 and (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_model_fingerprint_by_content(tmp_path, monkeypatch, small_potential):
    from eqv2_calc.hub import load_registry
    from eqv2_calc.scale.fingerprint import file_sha256, model_fingerprint

    monkeypatch.setenv("EQV2_CACHE", str(tmp_path))
    entry = load_registry().get(DEMO_MODEL)
    assert {model_fingerprint(key) for key in entry.keys} == {f"sha256:{entry.sha256}"}  # aliases: one model
    path = tmp_path / "w.pt"
    path.write_bytes(b"one")
    first = file_sha256(path)
    assert file_sha256(path) == first and (tmp_path / "file_sha256.json").is_file()  # cached by path+size+mtime
    path.write_bytes(b"other")
    assert file_sha256(path) != first
    before = model_fingerprint(small_potential)
    with torch.no_grad():
        next(small_potential.parameters()).add_(1e-3)
    try:
        assert model_fingerprint(small_potential) != before
    finally:
        with torch.no_grad():
            next(small_potential.parameters()).sub_(1e-3)


def test_cli_ray_refusal_comes_before_any_worker(small_run, tmp_path, monkeypatch, capsys):
    from ase.io import write

    from eqv2_calc.cli import main
    from eqv2_calc.scale import runner

    def no_cluster(*args, **kwargs):
        raise AssertionError("Ray was joined or a worker started before the results directory was checked")

    monkeypatch.setenv("EQV2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner, "connect", no_cluster)
    monkeypatch.setattr(runner, "RayExecutor", no_cluster)
    root, _ = small_run
    write(tmp_path / "a.xyz", _structures()[3:4])
    before = _snapshot(root / "out")
    assert main(["predict", str(tmp_path / "a.xyz"), "--model", str(root / "model.pt"), "--results",
                 str(root / "out"), "--ray", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds the results of another job: structures: 2 there, 1 now" in err and "--overwrite" in err
    assert _snapshot(root / "out") == before
