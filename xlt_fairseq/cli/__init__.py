# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Command-line tools, one module per console script (setup.py's entry points):
``xlt-<name>`` runs ``xlt_fairseq.cli.<module>:main``; ``scripts/<module>.py`` is
the same ``main`` for a source checkout. Each ``main(argv=None)`` returns the exit
status: 0, or 1 after printing ``error: ...`` to stderr.
"""
