"""CLEVR-like data: scene sampling, Mitsuba rendering, the on-disk dataset format and the named data presets."""
