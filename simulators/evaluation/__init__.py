"""`vigil eval`: the labelled scenarios through the live pipeline, scored per rule."""
