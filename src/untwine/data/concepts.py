"""``concepts``: templated English sentences on a grid of known factors, generated on the fly.

The text counterpart of dSprites, untwine's own design for scoring language-model
activations (and the dictionaries learnt from them) against known concepts, as in
Makelov, Lange & Nanda 2024, "Towards Principled Evaluations of Sparse Autoencoders for
Interpretability and Control".  Every sentence is one point of a full grid of six
independent factors (last factor varying fastest, like every untwine grid dataset):

=========  ======  ==================================================================
factor     values  meaning
=========  ======  ==================================================================
subject    10      dog, teacher, child, farmer, doctor (animate); car, machine, boat,
                   clock, bridge (inanimate)
number     2       singular, plural (noun form, determiner and verb agree)
tense      3       past, present, future
negation   2       affirmative, negated ("not", with do-support where English needs it)
sentiment  3       negative, neutral, positive: the adjective's sentiment
topic      6       sports, food, music, science, weather, money: the topic of the object
=========  ======  ==================================================================

The grid holds 10 * 2 * 3 * 2 * 3 * 6 = 2,160 sentences, e.g. "After the storm, these
dogs did not seem awful." or "The clock will be lovely near the concert."

**Surface variation.**  So that no factor is one token, each sentence picks a surface
template (5: copula, "seem", "look", fronted place and fronted time phrases), a
determiner (3 per number), an adjective (4 per sentiment value) and an object noun (4
per topic) from a hash of ``(seed, grid index)`` (SplitMix64, independent bits for each
choice).  :meth:`ConceptSentences.observations` is therefore a pure function of the
factor rows and ``seed``: the same row always gives the same sentence, and a different
``seed`` gives another fixed rendering of the grid.  Every choice is made independently
of the factors, so no surface feature carries information about a factor other than
through the words that express it.

``observations`` returns a NumPy array of ``str`` (one sentence per row);
``observation_shape`` is ``()`` and ``modality`` is ``"text"``: image models refuse it,
``untwine lm activations --corpus concepts`` turns it into activations.
"""

from __future__ import annotations

import numpy as np

from untwine.data.base import GroundTruthDataset

#: (singular, plural) subject nouns; the first five are animate
SUBJECTS = (
    ("dog", "dogs"),
    ("teacher", "teachers"),
    ("child", "children"),
    ("farmer", "farmers"),
    ("doctor", "doctors"),
    ("car", "cars"),
    ("machine", "machines"),
    ("boat", "boats"),
    ("clock", "clocks"),
    ("bridge", "bridges"),
)
NUMBERS = ("singular", "plural")
TENSES = ("past", "present", "future")
NEGATIONS = ("affirmative", "negated")
SENTIMENTS = ("negative", "neutral", "positive")
TOPICS = ("sports", "food", "music", "science", "weather", "money")

#: adjectives for each sentiment value (fit animate and inanimate subjects)
ADJECTIVES = (
    ("terrible", "awful", "dreadful", "horrible"),
    ("ordinary", "typical", "plain", "average"),
    ("wonderful", "excellent", "lovely", "splendid"),
)
#: object nouns for each topic
OBJECTS = (
    ("match", "stadium", "tournament", "race"),
    ("dinner", "bakery", "kitchen", "feast"),
    ("concert", "orchestra", "song", "rehearsal"),
    ("experiment", "laboratory", "lecture", "telescope"),
    ("storm", "rain", "snowfall", "heatwave"),
    ("bank", "market", "auction", "payday"),
)
#: determiners for each number
DETERMINERS = (("the", "this", "my"), ("the", "these", "my"))
#: surface templates: {D} determiner, {S} subject, {V} verb group, {A} adjective, {O} object
TEMPLATES = (
    ("be", "{D} {S} {V} {A} near the {O}."),
    ("seem", "{D} {S} {V} {A} at the {O}."),
    ("be", "Near the {O}, {D} {S} {V} {A}."),
    ("look", "{D} {S} {V} {A} beside the {O}."),
    ("seem", "After the {O}, {D} {S} {V} {A}."),
)

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def verb_group(verb: str, number: int, tense: int, negated: bool) -> str:
    """The inflected verb group of a linking verb (``be``, ``seem``, ``look``)."""
    plural = number == 1
    if verb == "be":
        if tense == 2:
            return "will not be" if negated else "will be"
        form = (("was", "were"), ("is", "are"))[tense][int(plural)]
        return f"{form} not" if negated else form
    if tense == 2:
        return f"will not {verb}" if negated else f"will {verb}"
    if tense == 0:
        return f"did not {verb}" if negated else f"{verb}ed"
    if negated:
        return f"{'do' if plural else 'does'} not {verb}"
    return verb if plural else f"{verb}s"


class ConceptSentences(GroundTruthDataset):
    """Templated sentences on a grid of six known factors (see the module docstring)."""

    name = "concepts"
    factor_names = ("subject", "number", "tense", "negation", "sentiment", "topic")
    factor_sizes = (len(SUBJECTS), len(NUMBERS), len(TENSES), len(NEGATIONS), len(SENTIMENTS), len(TOPICS))
    observation_shape = ()
    binary = False
    modality = "text"
    #: names of each factor's values, in class-index order
    factor_values = (
        tuple(s for s, _ in SUBJECTS),
        NUMBERS,
        TENSES,
        NEGATIONS,
        SENTIMENTS,
        TOPICS,
    )

    def __init__(self, seed: int = 0) -> None:
        from untwine._checks import check_seed

        self.seed = check_seed(seed, "concepts: seed")

    def choices(self, factors) -> np.ndarray:
        """The surface choices of each row, ``[n, 4]``: template, determiner, adjective, object noun."""
        idx = self.index_of(factors).astype(np.uint64)
        h = _splitmix64(_splitmix64(np.uint64(self.seed)) ^ idx)
        sizes = (len(TEMPLATES), len(DETERMINERS[0]), len(ADJECTIVES[0]), len(OBJECTS[0]))
        out = np.empty((idx.shape[0], len(sizes)), dtype=np.int64)
        for j, s in enumerate(sizes):  # 16 independent bits for each choice
            out[:, j] = ((h >> np.uint64(16 * j)) & np.uint64(0xFFFF)).astype(np.int64) % s
        return out

    def observations(self, factors) -> np.ndarray:
        """One sentence per factor row: a NumPy array of ``str`` ``[n]`` (pure function of rows and seed)."""
        f = self.check_factors(factors)
        ch = self.choices(f)
        out = []
        for (subj, num, tense, neg, sent, topic), (t, d, a, o) in zip(f.tolist(), ch.tolist()):
            verb, pattern = TEMPLATES[t]
            s = pattern.format(
                D=DETERMINERS[num][d],
                S=SUBJECTS[subj][num],
                V=verb_group(verb, num, tense, bool(neg)),
                A=ADJECTIVES[sent][a],
                O=OBJECTS[topic][o],
            )
            out.append(s[0].upper() + s[1:])
        return np.asarray(out, dtype=str)

    def all_factors(self) -> np.ndarray:
        """Every grid row ``[num_samples, K]`` in grid order."""
        return self.factors_of(np.arange(self.num_samples))





def example_lines(dataset: ConceptSentences, *, cols: int = 10, seed: int = 0) -> list[str]:
    """Text for ``untwine datasets show concepts``: for each factor, sentences sweeping its values.

    As the image grid: a base factor row drawn with ``numpy.random.default_rng(seed)``, then
    for factor ``k`` up to ``cols`` of its values (all of them when it has fewer) with the
    other factors at the base row.
    """
    from untwine.errors import UntwineError

    if cols < 1:
        raise UntwineError(f"--cols must be at least 1, got {cols}")
    base = dataset.sample_factors(1, np.random.default_rng(seed))[0]
    lines = [f"{dataset.name}: {dataset.num_samples:,} sentences; base row {base.tolist()} (seed {seed})"]
    for k, (name, size) in enumerate(zip(dataset.factor_names, dataset.factor_sizes)):
        values = np.unique(np.round(np.linspace(0, size - 1, min(cols, size))).astype(np.int64))
        rows = np.repeat(base[None], len(values), 0)
        rows[:, k] = values
        lines.append(f"{name} ({size}):")
        for v, s in zip(values.tolist(), dataset.observations(rows).tolist()):
            lines.append(f"  {dataset.factor_values[k][v]:<12} {s}")
    return lines
__all__ = ["ConceptSentences", "example_lines", "verb_group"]
