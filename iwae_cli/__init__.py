"""iwae: reproduce and extend 'Importance Weighted Autoencoders' (Burda, Grosse, Salakhutdinov, ICLR 2016)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iwae_cli.specs.saved_run import Run, load_run

__all__ = ["Run", "load_run"]
__version__ = "0.2.0"  # pyproject.toml reads it from here; CHANGELOG.md says what changed


def __getattr__(name: str) -> Any:
    """`iwae_cli.Run` and `iwae_cli.load_run`, imported on first use: they pull in torch (seconds), which every
    import of a submodule would otherwise pay, `iwae --help` included."""
    if name in __all__:
        from iwae_cli.specs import saved_run

        return getattr(saved_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
