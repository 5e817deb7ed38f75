"""Meta Learning Shared Hierarchies (MLSH) for Stable-Baselines3."""

from importlib.resources import files

from sb3_mlsh.callbacks import AdaptationEvalCallback
from sb3_mlsh.common.tasks import TaskSamplerWrapper
from sb3_mlsh.envs import register_envs
from sb3_mlsh.evaluation import AdaptationResult, evaluate_adaptation
from sb3_mlsh.mlsh import MLSH, MLSHCnnPolicy, MLSHMultiInputPolicy, MLSHPolicy

register_envs()

__version__ = files(__name__).joinpath("version.txt").read_text().strip()

__all__ = [
    "MLSH",
    "AdaptationEvalCallback",
    "AdaptationResult",
    "MLSHCnnPolicy",
    "MLSHMultiInputPolicy",
    "MLSHPolicy",
    "TaskSamplerWrapper",
    "__version__",
    "evaluate_adaptation",
]
