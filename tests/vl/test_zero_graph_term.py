"""vl.losses.zero_graph_term: the DDP trick (every parameter in the graph, zero-weighted) written once."""

import torch
from torch import nn

from vl.losses import zero_graph_term


def test_zero_with_every_parameter_in_the_graph():
    used, unused = nn.Linear(3, 2), nn.Linear(4, 1)
    loss = used(torch.ones(1, 3)).sum()
    total = loss + zero_graph_term(unused.parameters())
    assert total.item() == loss.item()
    total.backward()
    for p in unused.parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0
    assert used.weight.grad.abs().sum() > 0


def test_no_parameters_is_a_plain_zero():
    assert zero_graph_term([]) == 0.0
