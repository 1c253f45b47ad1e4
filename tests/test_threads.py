"""`eqv2` sets OMP_WAIT_POLICY=PASSIVE unless the user chose a policy, and `--threads N` sets torch's threads."""

from __future__ import annotations

import os

import torch

from eqv2_calc.threads import configure


def test_wait_policy_default_user_choice_and_threads(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    configure()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    try:
        configure(1)
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_cli_refuses_zero_threads(capsys):
    from eqv2_calc.cli import main

    assert main(["demo", "--threads", "0"]) == 2
    assert "--threads 0 must be at least 1" in capsys.readouterr().err
