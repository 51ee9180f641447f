"""The kit's run profiles, in one place (and as hypothesis profiles ``rokt-<name>``).

``ci`` is chosen when the ``CI`` variable is set: a fixed seed (so a pull-request gate is
stable and a failure reproduces from the printed seed), bounded examples and a bounded shrink.
The kit registers its own ``ci`` rather than hypothesis' built-in one, which derandomises and
would hide the seed the kit promises to print. ``deadline`` is off everywhere: a sender's
latency is not the assertion; ``liveness.terminates`` is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, settings

#: The ``ci`` profile's fixed seed (overridable with --seed).
CI_SEED = 20261127


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int
    max_events: int
    max_faults: int
    case_deadline_s: float
    shrink_budget_s: float
    fixed_seed: int | None


PROFILES = {
    "dev": Profile("dev", 20, 120, 8, 30.0, 60.0, None),
    "ci": Profile("ci", 40, 250, 10, 30.0, 60.0, CI_SEED),
    "nightly": Profile("nightly", 400, 250, 16, 60.0, 600.0, None),
}


def register_hypothesis_profiles() -> None:
    """``rokt-dev``, ``rokt-ci``, ``rokt-nightly`` for partners' own hypothesis tests
    (``--rokt-profile NAME`` loads one)."""
    for profile in PROFILES.values():
        settings.register_profile(f"rokt-{profile.name}", hypothesis_settings(profile))


def default_profile() -> str:
    return "ci" if os.environ.get("CI") else "dev"


def hypothesis_settings(profile: Profile, max_examples: int | None = None) -> settings:
    return settings(
        max_examples=max_examples or profile.max_examples,
        deadline=None,
        database=None,
        print_blob=True,
        derandomize=False,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
