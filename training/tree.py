"""iTool's step-wise tree over one assistant turn (its Monte Carlo tree search), without a model in it.

A node is one step of the turn: a run of tokens (a sentence, a tool's name, one parameter), cut where the
decoded text reaches a delimiter (:data:`DELIMITER`, iTool's split pattern); a path from the root is a
prefix of the turn, shared by everything below it. One search, :class:`training.search.Sampler` driving:

- **selection** (:meth:`Tree.select`): from the root, the open child of highest
  ``Q + c · p · sqrt(ln N / (1 + n))`` (iTool's UCT: ``Q`` the mean reward of the completions through the
  child, ``p`` the mean probability of its tokens under the policy, ``N`` and ``n`` the visits of the parent
  and the child) down to a node not expanded yet;
- **expansion**: the policy samples completions of the turn after the node's tokens, each added
  (:meth:`Tree.add`) as a chain of steps, a step already in the tree being the same node (so visits
  gather on the steps the policy repeats); past ``max_depth`` steps the rest of a completion is one step;
- **evaluation**: each completion is a whole turn, judged against the approved call (the error-type
  reward) — an exact value, so no rollout estimates it;
- **backup** (:meth:`Tree.backup`): its reward is added to every node of its chain.

The approved call can be added as one more chain (``Sampler`` adds it first): selection then expands its
prefixes too, and the policy's samples after the right tool's name show which parameter it gets wrong.
A fork (:meth:`Tree.forks`, a node with two children or more) is where a step-level pair can be made:
two steps after the same prefix.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

#: Where a step ends: after ``, `` (between a call's name and each parameter), ``. `` (a sentence), ``=`` or
#: ``(`` (a call written as ``name(key=value)``) — iTool's split pattern.
DELIMITER = re.compile(r", |\. |=|\(")


@dataclass(eq=False)
class Node:
    """A step of the turn and the statistics of the completions through it."""

    tokens: tuple[int, ...] = ()
    #: Each token's log-probability under the policy.
    logps: tuple[float, ...] = ()
    parent: "Node | None" = None
    depth: int = 0
    children: dict[tuple[int, ...], "Node"] = field(default_factory=dict)
    #: The completions (indices) that end at this node.
    ends: list[int] = field(default_factory=list)
    visits: int = 0
    value: float = 0.0
    #: The policy has sampled completions after this node.
    expanded: bool = False
    #: The step closes the turn (its last token is the end of turn).
    final: bool = False

    @property
    def q(self) -> float:
        """The mean reward of the completions through it (0 before any)."""
        return self.value / self.visits if self.visits else 0.0

    @property
    def prior(self) -> float:
        """The mean probability of its tokens (1 at the root)."""
        return math.exp(sum(self.logps) / len(self.logps)) if self.logps else 1.0

    def path(self) -> list["Node"]:
        """The nodes from the root's first step down to this one."""
        out: list[Node] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def ids(self) -> list[int]:
        """The turn's tokens up to the end of this step."""
        return [t for node in self.path() for t in node.tokens]

    def below(self) -> Iterator[int]:
        """Every completion through this node."""
        yield from self.ends
        for child in self.children.values():
            yield from child.below()


class Tree:
    """The steps of one turn the search has seen; completions are numbered in the order they are added."""

    def __init__(self, step_ends: Callable[[Sequence[int]], list[int]], max_depth: int, max_tokens: int,
                 exploration: float):
        #: Where each step of a run of tokens ends (exclusive token offsets, ascending).
        self.step_ends = step_ends
        self.max_depth, self.max_tokens, self.exploration = max_depth, max_tokens, exploration
        self.root = Node()
        #: The node each completion ends at.
        self.completions: list[Node] = []

    def add(self, start: Node, ids: Sequence[int], logps: Sequence[float], final: bool) -> int:
        """A completion of the turn after ``start``'s tokens (``ids``, ``logps``: what follows them), cut into
        steps; its index. ``final``: it ended with the end of turn."""
        node, begin = start, 0
        for end in self._cuts(start.depth, ids):
            key = tuple(ids[begin:end])
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = Node(key, tuple(logps[begin:end]), node, node.depth + 1)
            node, begin = child, end
        node.final = node.final or final
        node.ends.append(len(self.completions))
        self.completions.append(node)
        return len(self.completions) - 1

    def _cuts(self, depth: int, ids: Sequence[int]) -> list[int]:
        """The steps' ends, the last ones merged into one so that the chain stops at ``max_depth``."""
        ends = [e for e in self.step_ends(ids) if 0 < e < len(ids)] + [len(ids)] if ids else []
        room = max(self.max_depth - depth, 1)
        return ends[:room - 1] + ends[-1:] if len(ends) > room else ends

    def backup(self, completion: int, reward: float) -> None:
        """Add a judged completion's reward to every node from its end up to the root."""
        node: Node | None = self.completions[completion]
        while node is not None:
            node.visits += 1
            node.value += reward
            node = node.parent

    def open(self, node: Node) -> bool:
        """Whether the policy can still continue after this node (the turn goes on and there is room)."""
        return not node.final and node.depth < self.max_depth and len(node.ids()) < self.max_tokens

    def select(self) -> Node | None:
        """The node to expand next by UCT, or None when no node is left to expand."""
        node = self.root
        while node.expanded:
            options = [c for c in node.children.values() if self._expandable(c)]
            if not options:
                return None
            node = max(options, key=lambda c: self.uct(node, c))
        return node if self._expandable(node) else None

    def uct(self, parent: Node, child: Node) -> float:
        explore = math.sqrt(math.log(max(parent.visits, 1)) / (1 + child.visits))
        return child.q + self.exploration * child.prior * explore

    def _expandable(self, node: Node) -> bool:
        if not self.open(node):
            return False
        return not node.expanded or any(self._expandable(c) for c in node.children.values())

    def forks(self) -> Iterator[Node]:
        """Every node with two children or more, the root's side first."""
        stack = [self.root]
        while stack:
            node = stack.pop(0)
            if len(node.children) > 1:
                yield node
            stack.extend(node.children.values())

    def size(self) -> int:
        """The number of steps in the tree (the root not counted)."""
        stack, count = list(self.root.children.values()), 0
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
        return count
