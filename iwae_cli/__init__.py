"""iwae: reproduce and extend 'Importance Weighted Autoencoders' (Burda, Grosse, Salakhutdinov, ICLR 2016)."""

from iwae_cli.specs.saved_run import Run, load_run

__all__ = ["Run", "load_run"]
__version__ = "0.1.0"
