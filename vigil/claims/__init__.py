"""Claims, pure: from an incident to a pre-filled, evidenced claim and its way to payment (no I/O)."""
