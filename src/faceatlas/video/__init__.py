"""Video: read clips (PyAV), track faces across sampled frames, recognise who appears when,
and collect a person's faces from a clip."""
