"""Detection rules: plain data judged by generic evaluators, with no broker or database inside."""
