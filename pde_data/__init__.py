"""PDE problem families, random-field samplers, the generation pipeline, storage and loading."""
