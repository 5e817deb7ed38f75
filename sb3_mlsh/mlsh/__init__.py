from sb3_mlsh.mlsh.mlsh import MLSH
from sb3_mlsh.mlsh.policies import MasterPolicy, MLSHPolicy

MlpPolicy = MLSHPolicy

__all__ = ["MLSH", "MLSHPolicy", "MasterPolicy", "MlpPolicy"]
