"""How far annotators agree, and how far the auto-flagger agrees with them, for ``curator agreement``.

Three comparisons, each on what both sides actually judged:

- **decisions**: per pair of annotators, the trajectories both decided; each one's standing vote
  (``Store.standing_votes``: their latest live review that is not an adjudication), where only accept
  and reject are decisions (a skip is none). Percent agreement and Cohen's kappa per pair; over all
  annotators Krippendorff's alpha (nominal; a trajectory someone did not decide is missing for them)
  and the mean of the pairs' percent agreement.
- **error codes**: per pair and code, the messages of the trajectories both decided that could carry a
  code (assistant messages) or that either of the two tagged; each one's value is whether their latest
  human row for (message, code) is present. Only codes one of the two used.
- **flagger vs humans**: per code, the auto tags against the human judgement of a message: the latest
  human row for (message, code), by anyone, says yes or no (an un-tag of an auto tag is a no, as it hides
  it in ``effective_tags``); without one, a message of a trajectory a human decided is a no; a message no
  human looked at is left out.

Reviews and tags without an annotator belong to no one, so they take no part in the pairs (for the
flagger they are still human judgement). Tags on a whole trajectory rather than a message are not
counted: the review screen tags messages. Kappa and alpha are undefined when chance agreement is
certain (everyone gave one and the same value) or nothing overlaps: they are then None, with the reason
beside them. scikit-learn and krippendorff (the ``team`` extra) are imported only here, when asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from statistics import mean
from typing import Any, Hashable, Sequence

from .db import Store
from .errors import CuratorError

DECIDED = ("accept", "reject")
MISSING_LIBRARIES = "curator agreement needs scikit-learn and krippendorff: pip install 'tool-curator[team]'"

Unit = tuple[str, int]  # (trajectory id, message index)


@dataclass(frozen=True)
class TagRow:
    """One row of ``tags`` on a message, as the comparisons read it."""

    trajectory_id: str
    message_index: int
    code: str
    source: str
    present: bool
    annotator: str | None


@dataclass(frozen=True)
class Judgements:
    """Everything the comparisons read from the store."""

    #: trajectory -> annotator -> their standing accept or reject (named annotators, adjudications aside).
    votes: dict[str, dict[str, str]]
    #: trajectories with a standing accept or reject by anyone (adjudicators and unnamed reviewers too).
    human_decided: frozenset[str]
    #: every tag on a message, oldest first by time (the order in which a later row wins, as in the store's
    #: ``effective_tags``, whatever order merged stores came in).
    tags: list[TagRow]
    #: reviewed trajectory -> the indices of its assistant messages.
    assistant: dict[str, list[int]]


def require_libraries() -> None:
    """Refuse, in one line, when the ``team`` extra is not installed."""
    try:
        import krippendorff  # noqa: F401
        import sklearn.metrics  # noqa: F401
    except ImportError:
        raise CuratorError(MISSING_LIBRARIES) from None


def load_judgements(store: Store) -> Judgements:
    """Votes, tags and assistant messages of the reviewed trajectories, in three queries."""
    votes: dict[str, dict[str, str]] = {}
    human_decided: set[str] = set()
    for trajectory, standing in store.standing_votes().items():
        for vote in standing:
            if vote.decision in DECIDED:
                human_decided.add(trajectory)
                if vote.annotator is not None and not vote.adjudication:
                    votes.setdefault(trajectory, {})[vote.annotator] = vote.decision
    tags = [TagRow(t, i, code, source, bool(present), annotator) for t, i, code, source, present, annotator
            in store.conn.execute("SELECT trajectory_id, message_index, code, source, present, annotator FROM tags "
                                  "WHERE message_index IS NOT NULL ORDER BY created_at, id")]
    assistant: dict[str, list[int]] = {}
    for trajectory, index in store.conn.execute(
            "SELECT trajectory_id, idx FROM messages WHERE role = 'assistant' "
            "AND trajectory_id IN (SELECT trajectory_id FROM reviews) ORDER BY trajectory_id, idx"):
        assistant.setdefault(trajectory, []).append(index)
    return Judgements(votes, frozenset(human_decided), tags, assistant)


def store_agreement(store: Store) -> dict[str, Any]:
    """The whole report for ``store`` (see :func:`agreement`)."""
    require_libraries()
    return agreement(load_judgements(store))


def agreement(judgements: Judgements) -> dict[str, Any]:
    """``{"annotators", "decisions": {"pairs", "overall"}, "codes", "flagger"}``, JSON-ready."""
    people = annotators(judgements)
    pairs = [decision_pair(judgements, a, b) for a, b in combinations(people, 2)]
    latest = latest_human_tags(judgements)
    return {
        "annotators": people,
        "decisions": {"pairs": pairs, "overall": overall(judgements, people, pairs)},
        "codes": [row for a, b in combinations(people, 2) for row in code_pairs(judgements, latest, a, b)],
        "flagger": flagger_vs_humans(judgements),
    }


def annotators(judgements: Judgements) -> list[str]:
    """Every named annotator with a standing accept or reject, sorted."""
    return sorted({name for votes in judgements.votes.values() for name in votes})


def both_decided(judgements: Judgements, a: str, b: str) -> list[str]:
    return sorted(t for t, votes in judgements.votes.items() if a in votes and b in votes)


def decision_pair(judgements: Judgements, a: str, b: str) -> dict[str, Any]:
    trajectories = both_decided(judgements, a, b)
    first = [judgements.votes[t][a] for t in trajectories]
    second = [judgements.votes[t][b] for t in trajectories]
    return {"annotators": [a, b], **compare(first, second, DECIDED, "trajectories")}


def compare(first: Sequence[Hashable], second: Sequence[Hashable], labels: Sequence[Hashable], units: str,
            words: dict[Hashable, str] | None = None) -> dict[str, Any]:
    """n, percent agreement and Cohen's kappa of two annotators' values on the same units.

    Kappa is ``(po - pe) / (1 - pe)``: undefined when ``pe`` is 1, i.e. both gave every unit one and the
    same value, and then None with ``kappa_undefined`` saying so (as when there is nothing to compare).
    """
    n = len(first)
    if n == 0:
        return {"n": 0, "percent_agreement": None, "kappa": None, "kappa_undefined": f"no {units} both judged"}
    percent = 100 * sum(x == y for x, y in zip(first, second)) / n
    if len(set(first) | set(second)) == 1:
        value = (words or {}).get(first[0], first[0])
        return {"n": n, "percent_agreement": percent, "kappa": None,
                "kappa_undefined": f"both said {value} every time ({n} {units}): chance agreement is 1"}
    from sklearn.metrics import cohen_kappa_score

    kappa = float(cohen_kappa_score(list(first), list(second), labels=list(labels)))
    return {"n": n, "percent_agreement": percent, "kappa": kappa, "kappa_undefined": None}


def overall(judgements: Judgements, people: list[str], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Krippendorff's alpha over every annotator's votes and the mean pairwise percent agreement."""
    trajectories = sorted(judgements.votes)
    matrix = [[_code(judgements.votes[t].get(person)) for t in trajectories] for person in people]
    shared = [t for t in trajectories if len(judgements.votes[t]) >= 2]
    percents = [p["percent_agreement"] for p in pairs if p["n"]]
    alpha, undefined = krippendorff_alpha(matrix, [judgements.votes[t][p] for t in shared
                                                   for p in judgements.votes[t]])
    return {"annotators": len(people), "trajectories": len(shared), "krippendorff_alpha": alpha,
            "alpha_undefined": undefined, "mean_pairwise_percent_agreement": mean(percents) if percents else None}


def _code(decision: str | None) -> float:
    return float("nan") if decision is None else float(DECIDED.index(decision))


def krippendorff_alpha(matrix: list[list[float]], pairable: list[str]) -> tuple[float | None, str | None]:
    """Nominal alpha of an annotators × units matrix (NaN: missing), or None and why it is undefined.

    ``pairable`` holds the values on units at least two annotators judged, the only ones alpha reads.
    """
    if not pairable:
        return None, "no trajectory was decided by two annotators"
    if len(set(pairable)) == 1:
        return None, (f"every decision on the trajectories two or more annotators decided is {pairable[0]}: "
                      "expected disagreement is 0")
    import krippendorff

    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")), None


def latest_human_tags(judgements: Judgements) -> dict[tuple[str, Unit, str], bool]:
    """(annotator, message, code) -> whether that annotator's latest row for it is present."""
    latest: dict[tuple[str, Unit, str], bool] = {}
    for row in judgements.tags:
        if row.source == "human" and row.annotator is not None:
            latest[(row.annotator, (row.trajectory_id, row.message_index), row.code)] = row.present
    return latest


def code_pairs(judgements: Judgements, latest: dict[tuple[str, Unit, str], bool], a: str, b: str
               ) -> list[dict[str, Any]]:
    """Per code either of ``a`` and ``b`` used: their agreement on the messages they both could have tagged
    (``latest`` is :func:`latest_human_tags`)."""
    trajectories = set(both_decided(judgements, a, b))
    ours = {(who, unit, code): present for (who, unit, code), present in latest.items()
            if who in (a, b) and unit[0] in trajectories}
    units = sorted({(t, i) for t in trajectories for i in judgements.assistant.get(t, [])}
                   | {unit for _, unit, _ in ours})
    codes = sorted({code for (_, _, code), present in ours.items() if present})
    words = {True: "tagged", False: "not tagged"}
    return [{"annotators": [a, b], "code": code,
             **compare([ours.get((a, u, code), False) for u in units], [ours.get((b, u, code), False) for u in units],
                       (False, True), "messages", words)}
            for code in codes]


def flagger_vs_humans(judgements: Judgements) -> list[dict[str, Any]]:
    """Per code: tp, fp, fn, precision and recall of the auto tags on the messages humans judged."""
    auto = {(r.trajectory_id, r.message_index, r.code) for r in judgements.tags if r.source == "auto"}
    human = {(r.trajectory_id, r.message_index, r.code): r.present for r in judgements.tags if r.source == "human"}
    counts: dict[str, dict[str, int]] = {}
    for key in sorted(auto | set(human)):
        truth = human.get(key, False if key[0] in judgements.human_decided else None)
        if truth is None:
            continue
        outcome = ("tp" if truth else "fp") if key in auto else "fn" if truth else None
        if outcome:
            tally = counts.setdefault(key[2], {"tp": 0, "fp": 0, "fn": 0})
            tally[outcome] += 1
    return [{"code": code, **tally, "precision": _ratio(tally["tp"], tally["tp"] + tally["fp"]),
             "recall": _ratio(tally["tp"], tally["tp"] + tally["fn"])}
            for code, tally in sorted(counts.items())]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
