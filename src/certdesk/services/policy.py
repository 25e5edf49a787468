"""The configured rules of the notice (`[policy]`) as the domain's policies, built in one place
so every use case and page judges with the same renewal window."""

from __future__ import annotations

import datetime as dt

from certdesk.config import Config
from certdesk.domain.renewal import RenewalPolicy


def renewal_policy(config: Config) -> RenewalPolicy:
    """The renewal window of `policy.renewal_window_days`."""
    return RenewalPolicy(dt.timedelta(days=config.policy.renewal_window_days))
