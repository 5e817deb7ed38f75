"""The README's main job, ``python -m sb3_mlsh.demo``, at a tiny budget: its output, its picture, its care for saved files."""

import pytest

from sb3_mlsh import MLSH
from sb3_mlsh.demo import binned, main


def test_demo_prints_tasks_a_verdict_table_and_writes_model_and_picture(tmp_path, capsys):
    path = tmp_path / "bandits.zip"
    main(["--timesteps", "24000", "--adaptation-timesteps", "1600", "--save-path", str(path), "--no-progress-bar"])
    output = capsys.readouterr().out
    assert (
        output.count("per episode; sub-policies used") == 2
    )  # one per task: 12 iterations of 2000 steps, W + U = 10 per task
    for row in ("sub-policy 0 alone", "sub-policy 1 alone", "MLSH fresh master, during the first 1600 steps",
                "PPO from scratch, during the first 1600 steps", "scripted: walks to the paying goal"):  # fmt: skip
        assert row in output
    assert "what PPO from scratch earned" in output
    assert len(output.splitlines()) < 30
    assert MLSH.load(path).num_timesteps == 24000
    assert (tmp_path / "bandits.png").stat().st_size > 10_000


def test_demo_never_overwrites_a_saved_model_unasked(tmp_path):
    path = tmp_path / "bandits.zip"
    path.write_bytes(b"earlier work")
    with pytest.raises(SystemExit):
        main(["--timesteps", "2000", "--save-path", str(path)])
    assert path.read_bytes() == b"earlier work"


def test_binned_episodes_of_one_vec_step_share_a_bin():
    import numpy as np

    steps = np.array([785, 790, 800, 1585, 1600])
    returns = np.array([1.0, 2.0, 3.0, 10.0, 20.0])
    mean_steps, mean_returns = binned(steps, returns, n_bins=2)
    assert mean_returns.tolist() == [2.0, 15.0]
