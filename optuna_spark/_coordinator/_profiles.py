"""Resource profiles as a run sees them: which ones have workers, and trials that wait for a
profile whose workers never came (Spark could not place its tasks)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from optuna_spark._coordinator._leases import LeaseTable
from optuna_spark.wire.spec import ProfileChoice

_logger = logging.getLogger(__name__)

#: Seconds a trial waits for a profile with no worker yet before the run says so.
PATIENCE = 120.0


class ProfileWatch:
    """The profiles whose workers have asked, and a warning, once per profile, for trials
    that wait ``PATIENCE`` seconds for a profile none of whose workers has asked yet (its
    tasks do not fit any executor, say: the run would wait for them for ever). Not
    thread-safe: the run's lock guards :meth:`check`."""

    def __init__(
        self, profiles: ProfileChoice | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._profiles = profiles
        self._clock = clock
        self._seen: set[str] = set()
        self._warned: set[str] = set()

    def saw(self, profile: str | None) -> None:
        """A worker of ``profile`` asks; one that serves none of the run's is refused."""
        if self._profiles is not None:
            self._profiles.check_worker(profile)
            self._seen.add(str(profile))

    def check(self, leases: LeaseTable) -> None:
        """Warn about trials parked too long for a profile that no worker has served."""
        if self._profiles is None:
            return
        now = self._clock()
        for trial_id in leases.parked_ids():
            lease = leases.lease_of(trial_id)
            profile = None if lease is None else lease.profile
            if lease is None or profile is None or profile in self._seen | self._warned:
                continue
            if now - lease.started >= PATIENCE:
                self._warned.add(profile)
                _logger.warning(
                    "Trials have waited %.0f s for a worker of resource profile %r, and none "
                    "has started: Spark may be unable to place its tasks (more resources than "
                    "any executor has, or taken by the other profiles' workers). Size the "
                    "profiles to fit the cluster together, or enable dynamic allocation.",
                    now - lease.started,
                    profile,
                )
