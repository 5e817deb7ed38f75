"""Every Python code block of README.md and docs/*.md runs as written, at a tiny budget."""

import re
from pathlib import Path

import pytest
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

ROOT = Path(__file__).parents[1]
# The order a reader follows: later pages load what earlier ones saved (e.g. "mlsh_bandits.zip")
PAGES = ["README.md", "docs/mlsh.md", "docs/evaluation.md", "docs/envs.md", "docs/zoo.md", "docs/results.md"]
ITERATIONS = 2  # every learn() stops after this many iterations: the budget the blocks shrink to


def python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / page).read_text(), flags=re.MULTILINE | re.DOTALL)


def test_every_page_with_code_is_tested():
    candidates = [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]
    pages = {str(path.relative_to(ROOT)) for path in candidates if "```python" in path.read_text()}
    assert pages <= set(PAGES)


def test_every_results_page_is_in_the_index():
    """reproduce.py and the benchmarks write a page per experiment; the docs site builds with -W, so one left out
    of docs/index.md's toctree fails CI."""
    entries = (ROOT / "docs/index.md").read_text().splitlines()
    pages = [*ROOT.glob("docs/results/*.md"), *ROOT.glob("docs/benchmarks/*.md")]
    missing = [
        str(page.relative_to(ROOT)) for page in pages if str(page.relative_to(ROOT / "docs").with_suffix("")) not in entries
    ]
    assert not missing, f"add these pages to docs/index.md's toctree: {missing}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("docs")


@pytest.fixture
def tiny_budget(monkeypatch, workdir):
    learn = OnPolicyAlgorithm.learn

    def shrunk(self, total_timesteps, *args, **kwargs):
        return learn(self, min(total_timesteps, ITERATIONS * self.n_steps * self.n_envs), *args, **kwargs)

    monkeypatch.setattr(OnPolicyAlgorithm, "learn", shrunk)
    monkeypatch.chdir(workdir)


@pytest.mark.filterwarnings("ignore:MLSH. the env has no task protocol")
@pytest.mark.parametrize("page", [page for page in PAGES if python_blocks(page)])
def test_page_code_runs(page, tiny_budget):
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(python_blocks(page), start=1):
        try:
            exec(compile(block, f"{page}, block {number}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{page}, Python block {number} failed:\n{block}") from error
