"""real_models.laws: the sampled laws are scdsim's own, and inverse-CDF draws are exact."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from real_models import laws  # noqa: E402
from scdsim.contrast import contrastive  # noqa: E402
from scdsim.distributions import softmax  # noqa: E402

pytestmark = pytest.mark.torch


def _logits(seed=0, shape=(3, 11), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 2.0).to(dtype)


def test_sampling_law_matches_hand_computed_top_k_top_p_law():
    # Hand-built law: temperature 2 on logits log([.4,.3,.2,.1]) gives weights sqrt(p);
    # top_k=3 drops the last; top_p=0.7 keeps the tokens until mass reaches 0.7.
    p = np.array([0.4, 0.3, 0.2, 0.1])
    logits = torch.tensor(np.log(p))
    w = np.sqrt(p[:3]) / np.sqrt(p[:3]).sum()  # after temperature 2 and top-k 3
    keep = np.cumsum(w) - w < 0.7
    expected = np.where(keep, w, 0.0) / np.where(keep, w, 0.0).sum()
    expected = np.append(expected, 0.0)
    got = laws.sampling_law(logits, temperature=2.0, top_k=3, top_p=0.7)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


def test_sampling_law_temperature_zero_is_exact_one_hot_argmax_first_on_ties():
    logits = torch.tensor([[0.0, 3.0, 3.0, -1.0], [5.0, 1.0, 2.0, 5.0]])
    got = laws.sampling_law(logits, temperature=0.0)
    np.testing.assert_array_equal(got.numpy(), [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sampling_law_of_half_precision_logits_is_float32(dtype):
    logits = _logits(dtype=dtype)
    got = laws.sampling_law(logits, temperature=0.8, top_p=0.9)
    assert got.dtype == torch.float32
    ref = laws.sampling_law(logits.double(), temperature=0.8, top_p=0.9)
    np.testing.assert_allclose(got.double().numpy(), ref.numpy(), atol=1e-6)


def test_sampling_law_min_p_and_epsilon_drop_exactly_the_small_tokens():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    got = laws.sampling_law(p.log(), min_p=0.35)  # keeps p >= 0.175
    np.testing.assert_allclose(got.numpy(), [0.625, 0.375, 0, 0], atol=1e-12)
    got = laws.sampling_law(p.log(), epsilon=0.1)  # keeps p >= 0.1
    np.testing.assert_allclose(got.numpy(), np.array([0.5, 0.3, 0.15, 0]) / 0.95, atol=1e-12)


@pytest.mark.parametrize("kw, match", [
    (dict(temperature=-0.5), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_k=0), "top_k"),
    (dict(epsilon=0.9), "epsilon"),
    (dict(min_p=1.5), "min_p"),
])
def test_sampling_law_bad_settings_raise_naming_the_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        laws.sampling_law(_logits(), **kw)


def test_contrast_law_is_scdsim_contrastive_bit_for_bit():
    e, a = _logits(1), _logits(2)
    for kw in [dict(), dict(plausibility=0.05, contrast=1.0, amateur_temperature=0.5,
                            form="ratio")]:
        got = laws.contrast_law(e, a, **kw)
        assert torch.equal(got, contrastive(e, a, **kw))


def test_contrast_law_by_hand_logit_form():
    e, a = _logits(3, shape=(7,)), _logits(4, shape=(7,))
    pe, pa = softmax(e).numpy(), softmax(a).numpy()
    keep = pe >= 0.1 * pe.max()
    w = np.where(keep, pe * (pe / pa) ** 0.5, 0.0)
    np.testing.assert_allclose(laws.contrast_law(e, a).numpy(), w / w.sum(), atol=1e-12)


def test_contrast_law_temperature_zero_is_one_hot_argmax_of_contrastive():
    e, a = _logits(5), _logits(6)
    got = laws.contrast_law(e, a, plausibility=0.2, contrast=0.7, temperature=0.0)
    idx = contrastive(e, a, plausibility=0.2, contrast=0.7).argmax(-1)
    np.testing.assert_array_equal(got.argmax(-1).numpy(), idx.numpy())
    np.testing.assert_array_equal(got.sum(-1).numpy(), np.ones(3))
    assert set(np.unique(got.numpy())) <= {0.0, 1.0}


def test_contrast_law_with_top_k_warps_the_contrastive_scores():
    e, a = _logits(7, shape=(9,)), _logits(8, shape=(9,))
    full = contrastive(e, a, plausibility=0.0).numpy()
    top2 = np.argsort(-full, kind="stable")[:2]
    expected = np.zeros(9)
    expected[top2] = full[top2] / full[top2].sum()
    got = laws.contrast_law(e, a, plausibility=0.0, top_k=2)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_greedy_token_is_first_argmax():
    assert laws.greedy_token(torch.tensor([1.0, 4.0, 4.0])).item() == 1


def test_draw_on_a_uniform_grid_reproduces_the_law_exactly_and_never_draws_zero_mass():
    # N midpoints u_k = (k + 1/2)/N: token x is drawn exactly N * p(x) times when N p is integral.
    p = torch.tensor([0.25, 0.0, 0.5, 0.0, 0.25], dtype=torch.float64)
    N = 64
    u = (torch.arange(N, dtype=torch.float64) + 0.5) / N
    tok = laws.draw(p.expand(N, 5), u)
    np.testing.assert_array_equal(np.bincount(tok.numpy(), minlength=5), [16, 0, 32, 0, 16])
    # Boundaries: u = 0 gives the first positive token; u just below 1 the last positive one.
    edge = laws.draw(p.expand(2, 5), torch.tensor([0.0, math.nextafter(1.0, 0.0)], dtype=torch.float64))
    np.testing.assert_array_equal(edge.numpy(), [0, 4])
    lead0 = torch.tensor([0.0, 0.0, 1.0, 0.0])
    assert laws.draw(lead0, torch.tensor(0.0)).item() == 2


def test_draw_rows_use_their_own_uniform():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=torch.float64)
    np.testing.assert_array_equal(laws.draw(p, torch.tensor([0.9, 0.1, 0.6])).numpy(), [0, 2, 1])


def test_draw_rejects_bad_uniforms():
    p = torch.tensor([[0.5, 0.5]])
    with pytest.raises(ValueError, match="u must lie"):
        laws.draw(p, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="u must have shape"):
        laws.draw(p, torch.tensor([0.1, 0.2]))
