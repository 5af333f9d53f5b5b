"""iTool's step-wise tree (training/tree.py): steps, backup, UCT selection, forks — no model needed.

Token ids stand for themselves here: ``0`` ends a step (as ``, `` does in a real completion) and ``9`` is the
end of turn.
"""
from __future__ import annotations

import math

from training.tree import DELIMITER, Tree


def _ends(ids) -> list[int]:
    return [i + 1 for i, token in enumerate(ids) if token == 0]


def _tree(max_depth: int = 6, max_tokens: int = 64, exploration: float = 1.0) -> Tree:
    return Tree(_ends, max_depth, max_tokens, exploration)


def _add(tree: Tree, ids, reward: float, start=None, logp: float = -0.5) -> int:
    index = tree.add(start or tree.root, ids, [logp] * len(ids), final=ids[-1] == 9)
    tree.backup(index, reward)
    return index


def test_a_completion_is_a_chain_of_steps_and_a_repeated_step_is_the_same_node():
    tree = _tree()
    _add(tree, [1, 0, 2, 0, 9], 1.0)
    _add(tree, [1, 0, 3, 0, 9], -2.0)
    [name] = tree.root.children.values()  # both start with the step (1, 0)
    assert name.tokens == (1, 0) and name.visits == 2 and name.q == -0.5
    assert sorted(c.q for c in name.children.values()) == [-2.0, 1.0]
    assert tree.root.visits == 2 and tree.root.value == -1.0 and tree.size() == 5
    assert list(name.below()) == [0, 1] and tree.completions[1].ids() == [1, 0, 3, 0, 9]
    assert tree.completions[0].final and not name.final


def test_past_the_depth_the_rest_of_a_completion_is_one_step():
    tree = _tree(max_depth=2)
    end = tree.completions[_add(tree, [1, 0, 2, 0, 3, 0, 9], 1.0)]
    assert end.depth == 2 and end.tokens == (2, 0, 3, 0, 9)
    assert not tree.open(end)  # nothing follows a step at the depth


def test_selection_descends_by_uct_to_a_node_not_expanded_yet():
    tree = _tree(exploration=0.0)
    assert tree.select() is tree.root  # nothing expanded: the root
    tree.root.expanded = True
    _add(tree, [1, 0, 2, 9], 1.0)
    _add(tree, [4, 0, 5, 9], -2.0)
    good, bad = tree.root.children.values()
    assert tree.select() is good  # the highest Q, not expanded yet
    good.expanded = True
    # the best step's only child is the end of its turn: nothing to expand below it, so the other side
    [after_good] = good.children.values()
    assert after_good.final and tree.select() is bad


def test_exploration_prefers_the_less_visited_and_more_probable_step():
    tree = _tree(exploration=4.0)
    tree.root.expanded = True
    for _ in range(3):
        _add(tree, [1, 0, 2, 0, 9], 0.0, logp=-0.1)
    _add(tree, [4, 0, 5, 0, 9], 0.0, logp=-0.1)
    often, once = tree.root.children.values()
    assert tree.uct(tree.root, once) > tree.uct(tree.root, often) and tree.select() is once
    expected = 0.0 + 4.0 * math.exp(-0.1) * math.sqrt(math.log(4) / 2)
    assert math.isclose(tree.uct(tree.root, once), expected)


def test_a_tree_with_nothing_left_to_expand_selects_nothing():
    tree = _tree(max_tokens=3)
    tree.root.expanded = True
    _add(tree, [1, 9], 1.0)  # the turn ended
    _add(tree, [2, 0, 3, 3], -2.0)  # no room left after its first step: (2, 0) is 2 of 3 tokens, (3, 3) the third
    assert tree.select() is not None  # (2, 0) can still be continued
    tree.completions[1].parent.expanded = True
    assert tree.select() is None


def test_forks_are_the_nodes_with_two_steps_after_them_root_first():
    tree = _tree()
    _add(tree, [1, 0, 2, 0, 9], 1.0)
    _add(tree, [1, 0, 3, 0, 9], -0.25)
    _add(tree, [4, 0, 9], -1.5)
    forks = list(tree.forks())
    assert forks[0] is tree.root and [f.ids() for f in forks] == [[], [1, 0]]


def test_the_delimiters_are_itool_s():
    text = 'Sure. {"name": "getWeather", "arguments": {"city": "Oslo"}} or f(city="Oslo")'
    assert [m.group() for m in DELIMITER.finditer(text)] == [". ", ", ", "(", "="]
