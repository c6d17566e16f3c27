"""Claims bridge: incidents from `vigil.incidents` become pre-filled, evidenced claims, delivered once to the insurer.

A consumer stores each incident; a builder decides, once the loss has settled, whether a claim is owed
and opens it; workers deliver confirmed claims to the insurer's webhook and send the member's notices.
They meet only through PostgreSQL, so any number of bridges may run side by side.
"""
