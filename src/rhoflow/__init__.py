"""rhoflow: molecules in, electron-density datasets and trained models out."""

__version__ = "0.1.0"
