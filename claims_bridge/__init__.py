"""Claims bridge: turns incidents from `vigil.incidents` into pre-filled claims and delivers them.

Not built yet: the detection issue puts incidents on the topic; the claims issue consumes them.
"""
