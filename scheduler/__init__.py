"""The scheduler service: the escalation ladder's timers, the outreach sender, and the periodic jobs
(retention, device_offline), run by whichever scheduler process holds the leader lock."""
