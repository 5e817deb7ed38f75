from sb3_mlsh.mlsh.mlsh import MLSH
from sb3_mlsh.mlsh.policies import (
    CnnPolicy,
    MasterPolicy,
    MlpPolicy,
    MLSHCnnPolicy,
    MLSHMultiInputPolicy,
    MLSHPolicy,
    MultiInputPolicy,
)

__all__ = [
    "MLSH",
    "CnnPolicy",
    "MLSHCnnPolicy",
    "MLSHMultiInputPolicy",
    "MLSHPolicy",
    "MasterPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
]
