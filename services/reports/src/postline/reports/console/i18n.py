"""The console's words in English and Japanese: ``locales/<language>.yaml``, one flat mapping
of keys to texts each (``{name}`` placeholders filled by :meth:`Words.__call__`).

A key missing from a language falls back to English (a test keeps both complete).
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from typing import Any

import yaml

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "ja")


@cache
def catalog(language: str) -> dict[str, str]:
    text = resources.files("postline.reports.console").joinpath(f"locales/{language}.yaml")
    loaded = yaml.safe_load(text.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in loaded.items()}


class Words:
    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "en"
        self._texts = catalog(self.language)
        self._english = catalog("en")

    def __call__(self, key: str, **values: Any) -> str:
        text = self._texts.get(key) or self._english.get(key)
        if text is None:
            logger.warning("console text %s is missing", key)
            return key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._texts or key in self._english
