"""The per-image stages a stream may carry (which ones: its version's record in ``versions.py``).

Each module owns its stage's fit (encoder), write and read (the stream) and apply (both
sides): ``calibration`` (scale exponents and, in version 2, couplings; it writes the
other calibrated stages' weights in its rounds), ``linear`` (the linear prediction),
``scalecontext`` (the scale context) and ``previewfilter`` (the preview filter).
"""
