"""The normative codec: every module here defines the bytes of a ``.hdn`` stream.

Any edit in this package (and in ``hidenet_core/predictors/``, whose interpolation and
weights define every prediction) can change what a stream holds or decodes to. The
golden streams (``tests/golden/``, ``tests/core/codec/test_golden.py``) fail on such a
change: make it a new format version instead (``versions.py``, docs/format.md,
"Versions, golden streams and compatibility").

- ``versions``: the format table, one record per version;
- ``container``: the header and chunks, ``HdnFormatError``;
- ``entropy``, ``codelength``: range coding and the code length it pays;
- ``pyramid``: the odd/even split and merge;
- ``loop``: one level from the next, the closed loop both sides run;
- ``reconstruction``: the picture after each chunk, as both sides hold it, and what is shown of it;
- ``encoder``, ``decoder``: whole streams (the decoder never imports the encoder);
- ``stages``: the per-image stages, each one module that owns its fit, write, read and apply;
- ``fixedpoint``, ``tablecoder``, ``intervals``: integer tables, the compiled rANS of the values,
  the refinement of intervals; ``compiled``: numba as the codec uses it, ``warmup`` loads every
  compiled loop at once.

Nothing here imports the tools, the commands or the server (checked by ``lint-imports``).
"""
