"""iwae's Hydra configs, shipped as the package `iwae_cli.conf`. Hydra imports this package to read them, and
the import registers the resolvers they use for run directories (iwae_cli/specs/resolvers.py), so a config
composed by any route (the CLI, a launcher's job process, Hydra's compose API) resolves."""

import iwae_cli.specs.resolvers  # noqa: F401  (registers the resolvers)
