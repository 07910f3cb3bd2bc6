"""Fetch CIFAKE from Kaggle with kagglehub."""

from __future__ import annotations

from pathlib import Path

from fakelens.config import KAGGLE_HANDLE
from fakelens.errors import DownloadError


def download_cifake(to: Path | None = None) -> Path:
    """Download (or reuse kagglehub's cached copy of) CIFAKE; return the folder holding it."""
    import kagglehub

    try:
        path = kagglehub.dataset_download(KAGGLE_HANDLE, output_dir=str(to) if to else None)
    except Exception as exc:  # kagglehub raises network, auth and HTTP errors of many types
        raise DownloadError(
            f"could not download {KAGGLE_HANDLE} with kagglehub: {exc}. Check the network, "
            "and Kaggle credentials if it asks for them (KAGGLE_USERNAME / KAGGLE_KEY), or "
            "download the zip by hand and pass its path with --data."
        ) from exc
    return Path(path)
