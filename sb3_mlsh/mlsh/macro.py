"""The macro steps under way: per env, the master's last choice and what its N steps have earned so far."""

from dataclasses import dataclass

import numpy as np

from sb3_mlsh.common.observations import Observations, apply, put, take

# the master's transitions, as its buffer's add takes them: observations, choices, rewards, episode starts, values,
# log-probabilities
Transitions = tuple[Observations, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class MacroState:
    """
    Per env: the macro step under way (decision observation, choice, value, log-probability), its running reward,
    and whether any of its steps earned a reward (value bootstraps aside).

    A macro step begins when the env's master chooses (``begin``), adds each environment step's reward (``step``)
    and ends after ``macro_duration`` steps or with the episode (``ended``); it is then one transition of the
    master's buffer, and the master chooses again.
    """

    obs: Observations
    active: np.ndarray
    steps_left: np.ndarray
    reward: np.ndarray
    episode_start: np.ndarray
    value: np.ndarray
    log_prob: np.ndarray
    earned: np.ndarray

    @classmethod
    def empty(cls, obs: Observations, n_envs: int) -> "MacroState":
        """:return: A state for ``n_envs`` envs with observations shaped as ``obs``, before any decision."""
        return cls(
            obs=apply(np.zeros_like, obs),
            active=np.zeros(n_envs, dtype=np.int64),
            steps_left=np.zeros(n_envs, dtype=np.int64),
            reward=np.zeros(n_envs, dtype=np.float32),
            episode_start=np.zeros(n_envs, dtype=bool),
            value=np.zeros(n_envs, dtype=np.float32),
            log_prob=np.zeros(n_envs, dtype=np.float32),
            earned=np.zeros(n_envs, dtype=bool),
        )

    def begin(
        self,
        env_indices: np.ndarray,
        obs: Observations,
        choices: np.ndarray,
        values: np.ndarray,
        log_probs: np.ndarray,
        episode_start: np.ndarray,
        macro_duration: int,
    ) -> None:
        """
        Begin a macro step in each env of ``env_indices``, where the master chose ``choices``.

        :param obs: The decision observations, one row per env of ``env_indices``.
        :param values: The master's value estimates there.
        :param log_probs: The log-probabilities of its choices.
        :param episode_start: Whether an episode starts with the decision.
        :param macro_duration: Steps until the master chooses again (N).
        """
        put(self.obs, env_indices, obs)
        self.active[env_indices] = choices
        self.steps_left[env_indices] = macro_duration
        self.reward[env_indices] = 0.0
        self.earned[env_indices] = False
        self.episode_start[env_indices] = episode_start
        self.value[env_indices] = values
        self.log_prob[env_indices] = log_probs

    def step(self, rewards: np.ndarray) -> None:
        """One environment step in every env: its reward is added to the macro step's."""
        self.reward += rewards
        self.earned |= rewards != 0
        self.steps_left -= 1

    def ended(self, dones: np.ndarray) -> np.ndarray:
        """:return: The envs whose macro step ends at this step: ``macro_duration`` steps taken, or the episode ended."""
        return np.flatnonzero((self.steps_left <= 0) | dones)

    def transitions(self, env_indices: np.ndarray) -> "Transitions":
        """
        :return: The master's transitions of the macro steps ending in ``env_indices``: decision observations,
            choices, rewards, episode starts, values and log-probabilities.
        """
        return (
            take(self.obs, env_indices),
            self.active[env_indices],
            self.reward[env_indices],
            self.episode_start[env_indices],
            self.value[env_indices],
            self.log_prob[env_indices],
        )
