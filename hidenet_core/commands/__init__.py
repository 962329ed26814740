"""Sub-commands of the ``hidenet`` command line (see ``hidenet_core.cli``)."""
