"""The one training step (Eq. 5, backward, SGD) and the optimiser as fit and the benchmarks build them."""

from __future__ import annotations

import copy

import torch

from attnmel.config import LossConfig, OptimConfig
from attnmel.losses import attnmel_loss
from attnmel.models import create_model
from attnmel.runtime import Precision
from attnmel.step import load_optimizer_state, make_optimizer, make_scheduler, train_step


def test_optimizer_has_the_papers_settings_and_fuses_on_cuda_only():
    params = [torch.nn.Parameter(torch.zeros(3))]
    group = make_optimizer(params, OptimConfig(), torch.device("cpu")).param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.01, 0.9, True, 1e-4)
    assert not group["fused"]
    assert make_optimizer(params, OptimConfig(), torch.device("cuda")).param_groups[0]["fused"]
    assert not make_optimizer(params, OptimConfig(momentum=0.0), torch.device("cpu")).param_groups[0]["nesterov"]
    scheduler = make_scheduler(make_optimizer(params, OptimConfig(lr_step=2), torch.device("cpu")), OptimConfig(lr_step=2))
    assert (scheduler.step_size, scheduler.gamma) == (2, 0.1)


def test_a_fused_state_resumes_on_an_unfused_optimizer_with_its_momentum():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5))]
    fused = make_optimizer(params, OptimConfig(), torch.device("cuda"))  # fused (CPU kernels exist too)
    params[0].grad = torch.randn(5)
    fused.step()
    plain = make_optimizer(params, OptimConfig(), torch.device("cpu"))
    load_optimizer_state(plain, fused.state_dict())
    assert plain.param_groups[0]["fused"] is False  # this device's choice, not the saved one
    assert torch.equal(plain.state[params[0]]["momentum_buffer"], fused.state[params[0]]["momentum_buffer"])


def test_train_step_is_eq5_backward_and_one_sgd_step():
    torch.manual_seed(1)
    model = create_model("attnmel").train()
    reference = copy.deepcopy(model)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    rois = (torch.rand(4, 1, 32, 32) > 0.5).float()
    loss = LossConfig(lambda1=0.5, lambda2=0.25)
    torch.manual_seed(2)  # nothing random in the step; seeded anyway so the two runs see the same state
    terms = train_step(model, make_optimizer(model.parameters(), OptimConfig(), torch.device("cpu")), images, labels,
                       rois, loss=loss, precision=Precision())  # fmt: skip
    assert not any(t.requires_grad for t in terms)

    torch.manual_seed(2)
    out = reference(images)
    expected = attnmel_loss(out.logits, labels, (out.attn3, out.attn4), rois, lambda1=0.5, lambda2=0.25)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    optimizer.zero_grad()
    expected.total.backward()
    optimizer.step()
    for got, want in zip(terms, expected):
        torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-7)
    assert expected.dice3 > 0 and expected.total > expected.cls  # the ROI terms were in it
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
