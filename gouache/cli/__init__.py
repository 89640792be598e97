"""The ``gouache`` command: argparse lives here and nowhere else in the package."""
from gouache.cli.main import run

__all__ = ["run"]
