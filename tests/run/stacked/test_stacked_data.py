"""A group's batches: each member's are its solo run's."""

import torch

from rpn_exp.data.base import TensorBatches, standardize
from rpn_exp.run.stacked.data import MemberBatches, MemberLoader

K = 3


def member_splits():
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (50, 6), generator=g, dtype=torch.uint8), torch.arange(50) % 10) for _ in range(K)]


def test_member_batches_are_each_members_solo_batches():
    splits = member_splits()
    data = MemberBatches(splits, mean=[10.0, 20.0, 30.0], std=[2.0, 3.0, 4.0], seeds=[7, 8, 9], batch_size=16)
    members, epochs = [0, 2], [1, 4]
    stacked = list(data.batches(members, data.orders(epochs, members)))
    for position, k in enumerate(members):
        x, y = splits[k]
        solo = TensorBatches(x, y, 16, mean=data.mean[k].item(), std=data.std[k].item(), shuffle=True,
                             seed=data.seeds[k], epoch=lambda e=epochs[position]: e)
        for (xb, yb), (sx, sy) in zip(stacked, solo, strict=True):
            torch.testing.assert_close(xb[position], sx)
            assert torch.equal(yb[position], sy)
    assert [b[0].shape[1] for b in stacked] == [16, 16, 16, 2]
    unshuffled = next(iter(data.batches([1])))[0][0]
    torch.testing.assert_close(unshuffled, standardize(splits[1][0][:16], 20.0, 3.0))


def test_a_loader_draws_the_members_named_when_a_pass_starts_in_that_pass_order():
    data = MemberBatches(member_splits(), mean=[0.0] * K, std=[1.0] * K, seeds=[1, 2, 3], batch_size=16)
    members, epochs = [0, 1, 2], {0: 0, 1: 0, 2: 0}
    loader = MemberLoader(data, lambda: members, lambda named: [epochs[k] for k in named])
    first = [x for x, _ in loader]
    members[:], epochs[2] = [2], 3
    later = [x for x, _ in loader]
    assert len(loader) == 4 and first[0].shape[0] == 3 and later[0].shape[0] == 1
    expected = list(data.batches([2], data.orders([3], [2])))
    for x, (want, _) in zip(later, expected, strict=True):
        assert torch.equal(x, want)


def test_members_at_different_epochs_are_each_drawn_in_the_order_of_their_own_pass():
    data = MemberBatches(member_splits(), mean=[0.0] * K, std=[1.0] * K, seeds=[1, 2, 3], batch_size=16)
    loader = MemberLoader(data, lambda: [0, 2], lambda named: [5, 0])  # member 2 joined 5 epochs after member 0
    drawn = [x for x, _ in loader]
    for position, (k, epoch) in enumerate(((0, 5), (2, 0))):
        alone = [x[0] for x, _ in data.batches([k], data.orders([epoch], [k]))]
        for x, want in zip(drawn, alone, strict=True):
            assert torch.equal(x[position], want)
