"""Seeded synthetic company: org chart, workforce with planted attrition drivers, posts, complaints, repost cascades.

No real data links HR records, internal posts and social spread, so we simulate one company whose generating
parameters are known (written to truth.json): models are then checked against the truth, not just a holdout score.
Everything is vectorized numpy (5000 people x 365 days well under a minute) and a function of the seed alone
(plus the workplace corpus the texts are drawn from). The equations are documented in data/README.md.

A package of its own, not part of features/: it is a data source for the CLI, the tests, the benches and the
notebooks, and the bento (which ships features/ and serving/) has no use for it. It may import features
(contracts, settings, loaders); features, training and serving do not import it (the CLI does, lazily).
Modules, each depending only on those above it: truth (the planted parameters), org (the org chart), workforce
(the people simulation), cascades (reposts), texts (posts and complaints), output (`generate`, the tables and
truth.json). Names with a leading underscore are shared inside the package only.
"""
from synthetic.output import generate, yearly_attrition_rate
from synthetic.texts import FALLBACK_CORPUS
from synthetic.truth import HAZARD_BETA

__all__ = ["FALLBACK_CORPUS", "HAZARD_BETA", "generate", "yearly_attrition_rate"]
