"""
MLSH over several processes and machines with ``torch.distributed``: each process owns some of the run's task
groups (their envs and masters), the sub-policies are shared.

    torchrun --nproc-per-node=2 -m sb3_mlsh.distributed --env AntTwoWalk-v0 --n-task-groups 4 -n 20000000 \\
        --save-path runs/ant

``meta_train`` is the same from Python (in every process of a process group); ``DistributedMLSH`` is the
algorithm, for a loop of one's own.
"""

from sb3_mlsh.distributed.mlsh import CollectiveError, DistributedMLSH, checkpoint_file, latest_checkpoint
from sb3_mlsh.distributed.run import meta_train

__all__ = ["CollectiveError", "DistributedMLSH", "checkpoint_file", "latest_checkpoint", "meta_train"]
