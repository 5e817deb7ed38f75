"""examples/: each script runs as a user would run it, at a tiny budget."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def test_every_example_is_tested():
    assert {path.name for path in EXAMPLES.glob("*.py")} == {
        "meta_train_bandits.py",
        "custom_task_distribution.py",
        "transfer_frozen_subpolicies.py",
        "minigrid_goal_cells.py",  # run by test_adapters_minigrid.py, with the minigrid extra
        "metaworld_ml1.py",  # run by test_adapters_metaworld.py, with the metaworld extra
    }


def test_meta_train_then_transfer(tmp_path):
    output = run("meta_train_bandits.py", "--timesteps", "4000", "--adaptation-timesteps", "1600", cwd=tmp_path)
    assert output.count("reward during the first 1600 steps") == 2
    output = run("transfer_frozen_subpolicies.py", "mlsh_bandits_example.zip", "--timesteps", "2000", cwd=tmp_path)
    assert "the fresh master over frozen sub-policies returns" in output


def test_custom_task_distribution(tmp_path):
    output = run(
        "custom_task_distribution.py", "--timesteps", "14000", cwd=tmp_path
    )  # 7 iterations: W + U = 6, then a second task
    assert "tasks sampled: 2" in output
