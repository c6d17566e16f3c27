"""`vigil bench`: each stage's own ceiling, then the whole pipeline end to end, on this machine."""
