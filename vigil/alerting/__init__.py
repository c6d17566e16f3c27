"""The alerting core: what an alert change means, who is told when, and in which words; no I/O, no clock."""
