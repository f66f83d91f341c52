"""A small French/English sentiment lexicon for social posts and comments.

No sentiment model exists in the project yet (social listening will bring one); until then a
post scores (positive words - negative words) / words matched, in [-1, 1], 0 when no word
matches. Negations ("pas", "not", "never") flip the next word. Deliberately simple and
documented in docs/defection-and-needs.md; extra words come from ``[defection]
sentiment_words``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

import numpy as np

_POSITIVE_WORDS = """
bien bon bonne bons bonnes super excellent excellente parfait parfaite genial top merci ravi ravie
adore adorer aime aimer love loved lovely great good excellent perfect amazing awesome happy
satisfait satisfaite qualite beau belle beaux magnifique recommande recommend coeur cosy cozy
nice best fantastic wonderful thanks thank sympa agreable rapide fast detour chaleureux accueil
"""
_NEGATIVE_WORDS = """
mauvais mauvaise nul nulle decu decue decevant decevante deception horrible honte arnaque pire
probleme problemes retard retards casse cassee plainte jamais fini lent lente cher chere cheres
bad worse worst terrible awful disappointed disappointing poor broken late never slow refund
rembourse remboursement annule annuler cancel cancelled angry hate hideous scam rude chute
inadmissible inacceptable scandaleux fuir quitte quitter leaving left goodbye adieu
"""
_POSITIVE = frozenset(_POSITIVE_WORDS.split())
_NEGATIVE = frozenset(_NEGATIVE_WORDS.split())
_NEGATIONS = {"pas", "plus", "not", "no", "never", "jamais", "sans", "ni", "dont", "don't"}
_WORD = re.compile(r"[a-z']+")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def lexicon(extra: Mapping[str, float] | None = None) -> dict[str, float]:
    """Word -> polarity (+1 / -1), accents folded; ``extra`` adds or overrides words."""
    words = {w: 1.0 for w in _POSITIVE} | {w: -1.0 for w in _NEGATIVE}
    for word, value in (extra or {}).items():
        words[_fold(word)] = float(value)
    return words


def sentiment_scores(texts: Iterable[str | None],
                     extra: Mapping[str, float] | None = None) -> np.ndarray:
    """Polarity of each text in [-1, 1] (0 for empty texts or texts without lexicon words)."""
    words = lexicon(extra)
    out = []
    for text in texts:
        if not text:
            out.append(0.0)
            continue
        total, matched, flip = 0.0, 0, False
        for token in _WORD.findall(_fold(str(text))):
            value = words.get(token)
            if value is not None:
                total += -value if flip else value
                matched += 1
            flip = token in _NEGATIONS
        out.append(float(np.clip(total / matched, -1, 1)) if matched else 0.0)
    return np.asarray(out, dtype=float)
