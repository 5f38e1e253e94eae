# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Command-line tools of the plugin, each a module with ``main(argv=None) -> int``
(installed as console scripts by ``pip install -e .``; ``scripts/*.py`` wrap them)."""
