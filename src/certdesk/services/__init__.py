"""Use cases: each is one transaction plus one audit record per state change."""
